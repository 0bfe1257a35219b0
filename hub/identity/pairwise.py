"""Pairwise precision and recall of a clustering of record keys into persons, against the truth (pure).

A pair of records is *predicted* together when both carry the same predicted person, and
*truly* together when both carry the same true person. Precision = true pairs among predicted
pairs, recall = predicted pairs among true pairs, over every record the truth knows (a record
missing from ``predicted`` is a cluster of its own). Counting is done per cluster intersection,
so it is linear in the number of records, not quadratic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pairwise_counts(predicted: Mapping[str, str], truth: Mapping[str, str]) -> tuple[int, int, int]:
    """(pairs predicted together, pairs truly together, pairs both) over the records of ``truth``."""
    pred = {r: predicted.get(r, f"\0missing:{r}") for r in truth}
    both = sum(_pairs(n) for n in Counter((pred[r], truth[r]) for r in truth).values())
    predicted_pairs = sum(_pairs(n) for n in Counter(pred.values()).values())
    true_pairs = sum(_pairs(n) for n in Counter(truth.values()).values())
    return predicted_pairs, true_pairs, both


def pairwise_scores(predicted: Mapping[str, str], truth: Mapping[str, str]) -> tuple[float, float]:
    """(precision, recall) over all record pairs; 1.0 when there is nothing to get wrong."""
    predicted_pairs, true_pairs, both = pairwise_counts(predicted, truth)
    precision = both / predicted_pairs if predicted_pairs else 1.0
    recall = both / true_pairs if true_pairs else 1.0
    return precision, recall


def wrong_pairs(predicted: Mapping[str, str], truth: Mapping[str, str], limit: int = 20) -> list[tuple[str, str]]:
    """Some record pairs predicted together that are truly apart (for failure messages)."""
    by_pred: dict[str, list[str]] = {}
    for r in truth:
        if r in predicted:
            by_pred.setdefault(predicted[r], []).append(r)
    out: list[tuple[str, str]] = []
    for records in by_pred.values():
        for i, a in enumerate(records):
            out.extend((a, b) for b in records[i + 1 :] if truth[a] != truth[b])
            if len(out) >= limit:
                return out[:limit]
    return out


def missed_pairs(predicted: Mapping[str, str], truth: Mapping[str, str], limit: int = 20) -> list[tuple[str, str]]:
    """Some record pairs truly together that were predicted apart."""
    by_true: dict[str, list[str]] = {}
    for r, p in truth.items():
        by_true.setdefault(p, []).append(r)
    out: list[tuple[str, str]] = []
    for records in by_true.values():
        for i, a in enumerate(records):
            pa = predicted.get(a)
            out.extend((a, b) for b in records[i + 1 :] if pa is None or pa != predicted.get(b))
            if len(out) >= limit:
                return out[:limit]
    return out


def score_run(predicted: Mapping[str, str], truth: Mapping[str, str], pending_reviews: int | None = None,
              ) -> dict[str, float | int | None]:
    """Precision, recall, F1 and the review queue's share of the records, as ``tsunagu identity score`` prints."""
    precision, recall = pairwise_scores(predicted, truth)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    records = len(truth)
    return {
        "records": records,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "missed_pairs": len(missed_pairs(predicted, truth, limit=10**9)),
        "wrong_pairs": len(wrong_pairs(predicted, truth, limit=10**9)),
        "unresolved_records": sum(1 for r in truth if r not in predicted),
        "reviews": pending_reviews,
        "review_share": round(pending_reviews / records, 4) if pending_reviews is not None and records else None,
    }
