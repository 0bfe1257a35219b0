"""Real-world variance on top of the adversarial set: changed surnames, birth-date slips, registry glyphs.

Deterministic for a seed (issue 11, item 6). :func:`add_variance` rewrites the agency records of the
adversarial set (tests/unit/identity_adversarial.py): about 8% of registered people changed their
surname (marriage, divorce) and most of their agency records still hold the earlier one; about 6% of
the other agency records of registered people carry a birth-date slip (one day off, or month and day
swapped), never onto another person's reading and birth date (no matcher could tell those apart).
:func:`variance_set` also gives the registry 外字 glyphs (tests/unit/identity_glyphs.py). People
outside the registry (住登外者) are the set's unregistered homes: seen only by the agencies.
"""

from __future__ import annotations

import random
from datetime import timedelta

from schemas.events import PersonRecord
from unit.identity_adversarial import AdversarialData, generate
from unit.identity_glyphs import with_registry_glyphs

NEW_SURNAMES = [("新田", "ニッタ"), ("大江", "オオエ"), ("丸山", "マルヤマ"), ("野口", "ノグチ"), ("千葉", "チバ"),
                ("岩崎", "イワサキ"), ("杉山", "スギヤマ"), ("北村", "キタムラ"), ("今井", "イマイ"),
                ("河野", "コウノ")]


def add_variance(data: AdversarialData, rng: random.Random, *, surname_rate: float = 0.08,
                 slip_rate: float = 0.06) -> dict[str, str]:
    """Changed surnames and birth slips in the agency records (in place); record → ``surname`` /
    ``one_day`` / ``swapped``."""
    humans = {h.pid: h for home in data.homes for h in home.members}
    registered = sorted(h.pid for home in data.homes if home.registered for h in home.members)
    chosen = [p for p in registered if rng.random() < surname_rate]
    changed = {pid: NEW_SURNAMES[i % len(NEW_SURNAMES)] for i, pid in enumerate(chosen)}
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
        if r < slip_rate and p.birth_date:
            b = p.birth_date
            if rng.random() < 0.5 or b.day > 12 or b.day == b.month:
                new, kind = b + timedelta(days=1), "one_day"
            else:
                new, kind = b.replace(month=b.day, day=b.month), "swapped"
            if (h.given_kana, new) in taken:
                return p
            kinds[p.record] = kind
            return p.model_copy(update={"birth_date": new})
        return p

    data.observations[:] = [(mutate(o[0]), o[1], o[2]) if isinstance(o, tuple) else o for o in data.observations]
    return kinds


def variance_set(seed: int = 11, rounds: int = 60) -> tuple[AdversarialData, dict[str, str]]:
    """The adversarial set with registry glyph variants, changed surnames and slips; and what changed.

    The registry holds the current surname, the changed agency records another one."""
    data = generate(seed=seed, rounds=rounds)
    rng = random.Random(seed * 7 + 3)
    kinds = add_variance(data, rng)
    data.registry[:], _ = with_registry_glyphs(data.registry, seed=seed)
    return data, kinds
