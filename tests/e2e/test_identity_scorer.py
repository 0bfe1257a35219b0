"""The pairwise scorer counts what it claims to, checked against a brute-force count."""

from __future__ import annotations

from itertools import combinations

from hypothesis import given
from hypothesis import strategies as st
from identity_scorer import missed_pairs, pairwise_counts, pairwise_scores, wrong_pairs


def _brute(predicted: dict[str, str], truth: dict[str, str]) -> tuple[int, int, int]:
    pp = tp = both = 0
    for a, b in combinations(sorted(truth), 2):
        same_pred = a in predicted and b in predicted and predicted[a] == predicted[b]
        same_true = truth[a] == truth[b]
        pp += same_pred
        tp += same_true
        both += same_pred and same_true
    return pp, tp, both


def test_perfect_and_empty() -> None:
    truth = {"a": "1", "b": "1", "c": "2"}
    assert pairwise_scores(dict(truth), truth) == (1.0, 1.0)
    assert pairwise_scores({}, {}) == (1.0, 1.0)


def test_false_merge_costs_precision_missed_link_costs_recall() -> None:
    truth = {"a": "1", "b": "1", "c": "2"}
    assert pairwise_scores({"a": "x", "b": "x", "c": "x"}, truth) == (1 / 3, 1.0)
    assert pairwise_scores({"a": "x", "b": "y", "c": "z"}, truth) == (1.0, 0.0)
    assert wrong_pairs({"a": "x", "b": "x", "c": "x"}, truth) == [("a", "c"), ("b", "c")]
    assert missed_pairs({"a": "x", "b": "y"}, truth) == [("a", "b")]


def test_missing_records_are_singletons() -> None:
    truth = {"a": "1", "b": "1"}
    assert pairwise_scores({"a": "x"}, truth) == (1.0, 0.0)


labels = st.sampled_from("pqrs")


@given(st.dictionaries(st.sampled_from("abcdefgh"), st.tuples(labels, labels)))
def test_matches_brute_force(rows: dict[str, tuple[str, str]]) -> None:
    predicted = {r: p for r, (p, _) in rows.items()}
    truth = {r: t for r, (_, t) in rows.items()}
    assert pairwise_counts(predicted, truth) == _brute(predicted, truth)
