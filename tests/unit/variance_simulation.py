"""Measure the proposed hub scoring of issue 11 (schemas.name_evidence) before the hub adopts it.

Not a test: a script for the hub-side follow-up. It adds changed surnames (8% of registered people;
their agency records keep the earlier surname) and birth-date slips (one day off, month/day swapped;
never onto another person's reading and birth date) to the adversarial set, and resolves it with the
hub as it is ("stock") or with hub.identity patched *in memory* ("patched": variance_evidence in
compare, VARIANCE_WEIGHTS, may_autolink, slip_birth_dates in blocking). From the repository root:

    PYTHONPATH=.:tests .venv/bin/python tests/unit/variance_simulation.py stock|patched [seed]

It reaches into hub.identity internals (compare, _score, _block_condition), so it follows the hub
refactor or is dropped once the hub implements the proposal.
"""

from __future__ import annotations

import random
import sys
import tempfile
from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_
from sqlalchemy.orm import Session

import hub.identity as hi
from e2e.identity_scorer import missed_pairs, pairwise_scores, wrong_pairs
from hub.db import Base, make_engine
from schemas.events import PersonRecord
from schemas.name_evidence import (
    VARIANCE_WEIGHTS,
    NameParts,
    may_autolink,
    name_parts,
    reading_parts,
    slip_birth_dates,
    variance_evidence,
)
from unit.identity_adversarial import AdversarialData, generate
from unit.test_identity_adversarial import resolve_all

NEW = [("新田", "ニッタ"), ("大江", "オオエ"), ("丸山", "マルヤマ"), ("野口", "ノグチ"), ("千葉", "チバ"),
       ("岩崎", "イワサキ"), ("杉山", "スギヤマ"), ("北村", "キタムラ"), ("今井", "イマイ"), ("河野", "コウノ")]


def add_variance(data: AdversarialData, rng: random.Random) -> dict[str, str]:
    """Changed surnames and birth slips in the agency records; record → what was changed."""
    humans = {h.pid: h for home in data.homes for h in home.members}
    registered = sorted(h.pid for home in data.homes if home.registered for h in home.members)
    changed = {pid: NEW[i % len(NEW)] for i, pid in enumerate([p for p in registered if rng.random() < 0.08])}
    taken = {(h.given_kana, h.birth) for h in humans.values()}
    kinds: dict[str, str] = {}

    def mutate(p: PersonRecord) -> PersonRecord:
        pid = data.truth.get(p.record)
        h = humans.get(pid or "")
        if h is None or pid not in registered or data.scenario.get(p.record) in ("wrong_no", "twins_wrong_no"):
            return p
        r = rng.random()
        if pid in changed and p.kana and r < 0.7:  # the agency still holds the earlier surname
            fam, fam_kana = changed[pid]
            kinds[p.record] = "surname"
            return p.model_copy(update={"name": f"{fam}　{h.given}", "kana": f"{fam_kana} {h.given_kana}",
                                        "family_name": None, "given_name": None})
        if r < 0.06 and p.birth_date:
            b = p.birth_date
            if rng.random() < 0.5 or b.day > 12 or b.day == b.month:
                new, kind = b + timedelta(days=1), "one_day"
            else:
                new, kind = b.replace(month=b.day, day=b.month), "swapped"
            if (h.given_kana, new) in taken:  # on another person's reading and birth: no matcher can tell
                return p
            kinds[p.record] = kind
            return p.model_copy(update={"birth_date": new})
        return p

    data.observations[:] = [(mutate(o[0]), o[1], o[2]) if isinstance(o, tuple) else o for o in data.observations]
    return kinds


def patch_hub() -> None:
    """hub.identity with the proposal of schemas.name_evidence, in memory only."""
    parts: dict[tuple[Any, ...], NameParts] = {}
    features_of, compare, score, block = (hi.features_of, hi.compare, hi.IdentityService._score,
                                          hi.IdentityService._block_condition)

    def features_of_(person: PersonRecord, address_prefixes: Any = ()) -> hi.Features:
        f = features_of(person, address_prefixes)
        fam, giv = name_parts(person.name, person.family_name, person.given_name)
        parts.setdefault((f.name_key, f.kana_key), NameParts(fam, giv, *reading_parts(person.kana)))
        return f

    def compare_(a: hi.Features, b: hi.Features) -> dict[str, str]:
        ev = compare(a, b)
        pa, pb = parts.get((a.name_key, a.kana_key)), parts.get((b.name_key, b.kana_key))
        return ev if pa is None or pb is None else variance_evidence(ev, pa, pb, a.birth_date, b.birth_date)

    def score_(self: hi.IdentityService, *args: Any) -> hi.Candidate:
        c = score(self, *args)
        if not may_autolink(c.evidence):
            c.may_autolink = False
        elif c.evidence.get("birth", "").startswith("slip_") and not c.contradiction:
            c.birth_agrees = True  # a slip that may link stands in for the birth date in _choose
        return c

    def block_(table: Any, f: hi.Features) -> Any:
        cond = block(table, f)
        if f.birth_date is not None and f.kana_key:
            extra = and_(table.birth_date.in_(slip_birth_dates(f.birth_date)), table.kana_key == f.kana_key)
            cond = extra if cond is None else or_(cond, extra)
        return cond

    hi.features_of, hi.compare = features_of_, compare_  # type: ignore[assignment]
    hi.IdentityService._score = score_  # type: ignore[method-assign]
    hi.IdentityService._block_condition = staticmethod(block_)  # type: ignore[method-assign,assignment]
    for k, v in VARIANCE_WEIGHTS.items():
        hi.WEIGHTS[k].update(v)


def main(mode: str, seed: int) -> None:
    data = generate(seed=seed, rounds=60)
    kinds = add_variance(data, random.Random(3))
    if mode == "patched":
        patch_hub()
    with tempfile.TemporaryDirectory() as d:
        engine = make_engine(f"sqlite:///{d}/m.sqlite")
        Base.metadata.create_all(engine)
        with Session(engine) as s:
            pred = resolve_all(s, data)
            reviews = hi.list_reviews(s)
        engine.dispose()
    precision, recall = pairwise_scores(pred, data.truth)
    missed = Counter(kinds.get(a, kinds.get(b, "other")) for a, b in missed_pairs(pred, data.truth, 100_000))
    print(f"{mode} seed {seed}: changed {dict(Counter(kinds.values()))}; records {len(data.truth)}; "
          f"precision {precision:.4f} recall {recall:.4f}; reviews {len(reviews)} "
          f"{dict(Counter(kinds.get(r.record, 'other') for r in reviews))}; missed pairs by change {dict(missed)}; "
          f"wrong {wrong_pairs(pred, data.truth, 3)}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 11)
