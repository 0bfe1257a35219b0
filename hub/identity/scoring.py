"""Pure identity rules: comparable features of a person record, their comparison and the points (no I/O)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

from schemas.events import PersonRecord
from schemas.normalize import address_key, fold_kanji, kana_key, name_key, phone_key

# --------------------------------------------------------------------------- thresholds
#: points per feature comparison (log-odds-like; positive = same person)
WEIGHTS: dict[str, dict[str, float]] = {
    "birth": {"agree": 3.0, "differ": -10.0},
    "name": {"exact": 4.0, "folded": 3.0, "differ": -2.0},
    "kana": {"agree": 4.0, "similar": 2.0, "differ": -8.0},
    "sex": {"agree": 1.0, "differ": -8.0},
    "address": {"agree": 2.0, "differ": -1.0},
    "phone": {"agree": 2.0},
    "household": {"same": 2.0},
}
#: auto link at or above (needs equal birth dates, no contradiction, and MARGIN over the runner-up)
LINK = 7.0
#: review queue at or above (the record gets its own hub person meanwhile)
REVIEW = 3.0
#: the best candidate must beat the second by this much to link automatically
MARGIN = 3.0
#: cap on rows read per blocking query (common names without a birth date)
BLOCK_LIMIT = 50
#: features whose disagreement alone rules out "same person"
HARD = ("birth", "sex", "kana")



# --------------------------------------------------------------------------- features and scoring
@dataclass(frozen=True, slots=True)
class Features:
    """Comparable keys of one person record (no raw names)."""

    name_key: str | None
    folded_key: str | None
    kana_key: str | None
    birth_date: date | None
    sex: str | None  # male | female, else None
    address_key: str | None
    phone_key: str | None
    resident_no: str | None = None
    #: other names the registry knows the person by (旧氏, 通称, 外国人 names): (name, folded, kana) keys
    alt_names: tuple[tuple[str | None, str | None, str | None], ...] = ()


def _opt(value: str | None) -> str | None:
    return value if value else None


def features_of(person: PersonRecord, address_prefixes: Sequence[str] = ()) -> Features:
    nk = _opt(name_key(person.name))
    sex = person.sex.value if person.sex.value in ("male", "female") else None
    return Features(
        name_key=nk,
        folded_key=fold_kanji(nk) if nk else None,
        kana_key=_opt(kana_key(person.kana)) if person.kana else None,
        birth_date=person.birth_date,
        sex=sex,
        address_key=_opt(address_key(person.address, address_prefixes)) if person.address else None,
        phone_key=phone_key(person.phone),
        resident_no=person.resident_no,
    )

_LOOSE_KANA = str.maketrans({"ヂ": "ジ", "ヅ": "ズ", "ヴ": "ブ", "ヲ": "オ", "ー": ""})


def _kana_loose(k: str) -> str:
    return k.translate(_LOOSE_KANA).replace("ウ", "").replace("オ", "")


def compare(a: Features, b: Features) -> dict[str, str]:
    """Which features agree, feature → agree / differ / … / unknown (the evidence; no values)."""
    if a.alt_names or b.alt_names:
        return compare_names(a, b)
    ev: dict[str, str] = {}
    ev["birth"] = _eq(a.birth_date, b.birth_date)
    if a.name_key and b.name_key:
        ev["name"] = "exact" if a.name_key == b.name_key else "folded" if a.folded_key == b.folded_key else "differ"
    else:
        ev["name"] = "unknown"
    ev["kana"] = _eq(a.kana_key, b.kana_key)
    if ev["kana"] == "differ" and a.kana_key and b.kana_key and _kana_loose(a.kana_key) == _kana_loose(b.kana_key):
        ev["kana"] = "similar"
    ev["sex"] = _eq(a.sex, b.sex)
    ev["address"] = _address_eq(a.address_key, b.address_key)
    ev["phone"] = _eq(a.phone_key, b.phone_key)
    return ev


def name_variants(f: Features) -> list[Features]:
    """The record as written, then once per other name it is known by (no other names of its own)."""
    plain = replace(f, alt_names=())
    return [plain] + [replace(plain, name_key=n, folded_key=fo, kana_key=k) for n, fo, k in f.alt_names]


def compare_names(a: Features, b: Features) -> dict[str, str]:
    """:func:`compare` with the name and reading of the best-matching name variant of each side: an
    agency may record the 旧氏 or the 通称 (a variant is evidence, never a contradiction of its own)."""
    best: dict[str, str] | None = None
    for x in name_variants(a):
        for y in name_variants(b):
            ev = compare(x, y)
            if best is None or points(ev) > points(best):
                best = ev
    assert best is not None
    return best


def _eq(a: object, b: object) -> str:
    if a is None or b is None:
        return "unknown"
    return "agree" if a == b else "differ"


def _address_eq(a: str | None, b: str | None) -> str:
    """Equal keys, or one is the other with a city prefix left on (みなと市中央1-2-3 / 中央1-2-3)."""
    if a is None or b is None:
        return "unknown"
    short, long_ = sorted((a, b), key=len)
    return "agree" if short == long_ or (len(short) >= 4 and long_.endswith(short)) else "differ"


def points(evidence: dict[str, str]) -> float:
    return sum(WEIGHTS.get(k, {}).get(v, 0.0) for k, v in evidence.items())


def contradicts(evidence: dict[str, str]) -> bool:
    """A hard contradiction: birth date, sex or reading known on both sides and different."""
    return any(evidence.get(k) == "differ" for k in HARD)


def number_fits(evidence: dict[str, str], a: Features | None = None, b: Features | None = None) -> bool:
    """A resident number is trusted for a record when nothing contradicts it and the name agrees
    (exactly or folded), or the reading does (a homophone slip), or the part of the name written in
    kana is the other side's reading (高橋ヨシオ for 髙橋 義雄). Another name with nothing to confirm it
    is someone else's number typed by mistake (a twin's, a sibling's): not trusted."""
    if contradicts(evidence):
        return False
    if evidence.get("name") != "differ" or evidence.get("kana") in ("agree", "similar"):
        return True
    return a is not None and b is not None and (_kana_written(a, b) or _kana_written(b, a))


_KANA_RUN = re.compile(r"^[ァ-ヶー]{2,}|[ァ-ヶー]{2,}$")


def _kana_written(a: Features, b: Features) -> bool:
    """``a``'s name is written (in part) in kana, and that part is how ``b``'s reading begins or ends."""
    if not a.name_key or not b.kana_key:
        return False
    name = kana_key(a.name_key)
    if name == b.kana_key:
        return True
    for m in _KANA_RUN.finditer(name):
        part = m.group()
        if (m.start() == 0 and b.kana_key.startswith(part)) or (m.end() == len(name) and b.kana_key.endswith(part)):
            return True
    return False
