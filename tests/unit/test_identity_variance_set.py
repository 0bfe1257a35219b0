"""Identity resolution on the variance set (registry glyphs, changed surnames, birth slips, 住登外者), SQLite.

Replaces the in-memory patch of tests/unit/variance_simulation.py now that the hub scores these
patterns itself (issue 11, item 6). Besides precision and recall as resolved, it measures recall after a
reviewer who decides every pending pair correctly: changed surnames without a resident number may only
link through a reviewer, so they count as *reviewed-correct* pairs, not as automatic links.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from e2e.identity_scorer import missed_pairs, pairwise_scores, wrong_pairs
from hub.db import Base, make_engine
from hub.identity.resolver import persons_export
from hub.identity.review import ReviewError, decide_review, list_reviews
from unit.identity_adversarial import AdversarialData
from unit.identity_variance import variance_set
from unit.test_identity_adversarial import resolve_all


def oracle_review(s: Session, truth: dict[str, str]) -> tuple[int, int]:
    """Decide every pending pair as the truth says (link / keep apart); (linked, kept apart)."""
    linked = kept = 0
    for view in list_reviews(s):
        pred = {record: person for record, person, _ in persons_export(s)}
        same = any(truth.get(r) == truth.get(view.record) for r, p in pred.items()
                   if p == view.candidate_person and r != view.record)
        try:
            decide_review(s, view.id, "link" if same else "keep_apart", "oracle")
        except ReviewError:
            continue
        linked, kept = linked + same, kept + (not same)
    s.commit()
    return linked, kept


def measure(tmp_path: Path, data: AdversarialData, name: str) -> dict[str, float]:
    engine = make_engine(f"sqlite:///{tmp_path / f'{name}.sqlite'}")
    Base.metadata.create_all(engine)
    try:
        with Session(engine) as s:
            pred = resolve_all(s, data)
            precision, recall = pairwise_scores(pred, data.truth)
            wrong = wrong_pairs(pred, data.truth, limit=5)
            missed = missed_pairs(pred, data.truth, limit=100_000)
            reviews = list_reviews(s)
            waiting = {r.record for r in reviews}
            linked, kept = oracle_review(s, data.truth)
            after = {record: person for record, person, _ in persons_export(s)}
            p_after, r_after = pairwise_scores(after, data.truth)
    finally:
        engine.dispose()
    return {"records": len(data.truth), "precision": precision, "recall": recall, "wrong": len(wrong),
            "reviews": len(reviews), "missed": len(missed),
            "missed_waiting": sum(a in waiting or b in waiting for a, b in missed),
            "linked_by_review": linked, "kept_apart_by_review": kept,
            "precision_after_review": p_after, "recall_after_review": r_after}


def test_variance_set_never_merges_wrongly_and_sends_the_rest_to_review(tmp_path: Path) -> None:
    """Glyphs, changed surnames, slips and 住登外者: precision 1.0 before and after a correct reviewer.

    Floors are the measured values (seed 11: recall 0.961, 35 reviews = 0.9% of 3,726 records, recall
    0.976 after review) less a little; issue 11's recall goal (0.99) is not reached on this set: a
    changed surname links without a resident number only when the address or phone corroborates it,
    a birth slip without address or phone to confirm it stays a contradiction, and records that
    arrived before the corroborating one keep their own person (README, identity table).
    """
    data, kinds = variance_set(seed=11, rounds=60)
    assert Counter(kinds.values()).keys() >= {"surname", "one_day", "swapped"}
    m = measure(tmp_path, data, "variance")
    print(f"variance set: changes {dict(Counter(kinds.values()))}; {m}")
    assert m["wrong"] == 0 and m["precision"] == 1.0
    assert m["precision_after_review"] == 1.0
    assert m["reviews"] <= 0.02 * m["records"]
    assert m["recall"] >= 0.955
    assert m["recall_after_review"] >= 0.97
    assert m["linked_by_review"] > 0  # the changed surnames a reviewer links


@pytest.mark.parametrize("seed", [3, 29])
def test_variance_set_other_seeds_keep_precision(tmp_path: Path, seed: int) -> None:
    """Other seeds of the variance set: not one record pair wrongly merged."""
    data, _ = variance_set(seed=seed, rounds=25)
    m = measure(tmp_path, data, f"variance-{seed}")
    print(f"variance set seed {seed}: {m}")
    assert m["wrong"] == 0 and m["precision"] == 1.0
