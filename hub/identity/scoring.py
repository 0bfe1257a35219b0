"""Pure identity rules: comparable features of a person record, their comparison and the points (no I/O)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

from schemas.events import PersonRecord, ResidentObservedV1
from schemas.name_evidence import (
    REVIEW_REASONS,
    VARIANCE_WEIGHTS,
    NameParts,
    birth_slip,
    may_autolink,
    name_parts,
    reading_parts,
    variance_evidence,
)
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
for _feature, _values in VARIANCE_WEIGHTS.items():  # changed surnames, birth slips (issue 11)
    WEIGHTS[_feature].update(_values)
#: a registry 旧氏 matching the surname an agency still holds: as good as a folded name
WEIGHTS["name"]["former_surname"] = 3.0
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
    family_key: str | None = None
    given_key: str | None = None
    family_kana: str | None = None
    given_kana: str | None = None
    #: 旧氏 (a registry event's former surname) and its reading: a second family name
    former_family_key: str | None = None
    former_family_kana: str | None = None
    #: a row of the registry (``residents``), not an agency record
    registry: bool = False
    #: other names the registry knows the person by (旧氏, 通称, 外国人 names): (name, folded, kana) keys
    alt_names: tuple[tuple[str | None, str | None, str | None], ...] = ()

    def parts(self) -> NameParts:
        return NameParts(self.family_key, self.given_key, self.family_kana, self.given_kana)


def _opt(value: str | None) -> str | None:
    return value if value else None


def features_of(person: PersonRecord, address_prefixes: Sequence[str] = ()) -> Features:
    nk = _opt(name_key(person.name))
    sex = person.sex.value if person.sex.value in ("male", "female") else None
    family, given = name_parts(person.name, person.family_name, person.given_name)
    family_kana, given_kana = reading_parts(person.kana)
    return Features(
        name_key=nk,
        folded_key=fold_kanji(nk) if nk else None,
        kana_key=_opt(kana_key(person.kana)) if person.kana else None,
        birth_date=person.birth_date,
        sex=sex,
        address_key=_opt(address_key(person.address, address_prefixes)) if person.address else None,
        phone_key=phone_key(person.phone),
        resident_no=person.resident_no,
        family_key=family,
        given_key=given,
        family_kana=family_kana,
        given_kana=given_kana,
    )


def features_of_resident(ev: ResidentObservedV1, address_prefixes: Sequence[str] = ()) -> Features:
    """:func:`features_of` the registry's resident, with the event's 旧氏 (``former_surname`` and its
    reading, when the registry extract carries them) as a second family name."""
    f = features_of(ev.resident, address_prefixes)
    former, former_kana = getattr(ev, "former_surname", None), getattr(ev, "former_surname_kana", None)
    return replace(f, former_family_key=_opt(name_key(former)) if former else None,
                   former_family_kana=_opt(kana_key(former_kana)) if former_kana else None)

_LOOSE_KANA = str.maketrans({"ヂ": "ジ", "ヅ": "ズ", "ヴ": "ブ", "ヲ": "オ", "ー": ""})


def _kana_loose(k: str) -> str:
    return k.translate(_LOOSE_KANA).replace("ウ", "").replace("オ", "")


def compare(a: Features, b: Features, *, same_household: bool = False) -> dict[str, str]:
    """Which features agree, feature → agree / differ / … / unknown (the evidence; no values).

    A changed surname (given name and its reading agree, the family name differs) and a birth-date
    slip (one day off, month and day swapped, with name, reading and address or phone agreeing) are
    named by :func:`schemas.name_evidence.variance_evidence` instead of counted as differences; a
    registry 旧氏 is a second family name (``name: former_surname``). A side with other names
    (:attr:`Features.alt_names`: 旧氏, 通称, 外国人 names) is compared by its best-matching variant
    (:func:`compare_names`). ``same_household``: the record comes with the household ``b`` lives in
    (``household: same``, a place like an agreeing address for the variance patterns)."""
    if a.alt_names or b.alt_names:
        return compare_names(a, b, same_household=same_household)
    ev = _plain(a, b)
    if same_household:
        ev["household"] = "same"
    if ev["name"] == "differ":
        former = _former_agrees(a, b)
        former = _former_agrees(b, a) if former is None else former
        if former is not None:
            ev["name"] = "former_surname"
            if ev["kana"] == "differ" and former:
                ev["kana"] = "agree"
    return variance_evidence(ev, a.parts(), b.parts(), a.birth_date, b.birth_date)


def compare_rows(query: Features, rows: Sequence[Features], *, same_household: bool = False) -> list[dict[str, str]]:
    """:func:`compare` against every row of one candidate person, with a birth slip carried over.

    Once one row names the slip (name, reading and address or phone agreeing), another row of the
    same person with the same name and the true birth date but no address to confirm it is the same
    slip, not a contradiction; and once a row agrees on the birth date, the person's own rows that
    carry a slip of it (same name, reading not differing) do not veto either. A different name, a
    different reading or a different sex is never carried over, so twins and namesakes keep the veto.
    ``same_household``: the candidate lives in the household the record names (:func:`compare`).
    """
    evs = [compare(query, r, same_household=same_household) for r in rows]
    named = {e["birth"] for e in evs if e["birth"].startswith("slip_")}
    anchored = any(e["birth"] == "agree" and not contradicts(e) and e["name"] in ("exact", "folded") for e in evs)
    if not named and not anchored:
        return evs
    for e, r in zip(evs, rows, strict=True):
        slip = f"slip_{birth_slip(query.birth_date, r.birth_date)}"
        if (e["birth"] == "differ" and (slip in named or (anchored and slip != "slip_differ"))
                and e["name"] in ("exact", "folded") and e["kana"] in ("agree", "unknown") and e["sex"] != "differ"):
            e["birth"] = slip
    return evs


def _former_agrees(reg: Features, other: Features) -> bool | None:
    """``reg`` carries a 旧氏 and ``other``'s name is that surname with ``reg``'s given name: None when
    not, else whether the reading agrees that way too (False when it cannot be told)."""
    if not reg.former_family_key or not reg.given_key or not other.family_key or not other.given_key:
        return None
    if (reg.former_family_key, reg.given_key) != (other.family_key, other.given_key) and (
            fold_kanji(reg.former_family_key), fold_kanji(reg.given_key)) != (
            fold_kanji(other.family_key), fold_kanji(other.given_key)):
        return None
    if reg.former_family_kana and reg.given_kana and other.family_kana and other.given_kana:
        if (reg.former_family_kana, reg.given_kana) != (other.family_kana, other.given_kana):
            return None  # written like the former name, read otherwise: not that name
        return True
    return False


def _plain(a: Features, b: Features) -> dict[str, str]:
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
    """The record as written, then once per other name it is known by (no other names of its own).

    Another name is kept as whole keys, without a separator: its parts are the whole name and reading
    as the family part, which :func:`schemas.name_evidence.align_parts` splits by the other side's given
    name, so a changed surname is seen against a 通称 or a foreign resident's name too (an agency's
    金田 花子 against the registry's 通称 山本 花子), never the main name's parts with another name."""
    plain = replace(f, alt_names=())
    return [plain] + [replace(plain, name_key=n, folded_key=fo, kana_key=k, family_key=n, given_key=None,
                              family_kana=k, given_kana=None)
                      for n, fo, k in f.alt_names]


def compare_names(a: Features, b: Features, *, same_household: bool = False) -> dict[str, str]:
    """:func:`compare` with the name and reading of the best-matching name variant of each side: an
    agency may record the 旧氏 or the 通称 (a variant is evidence, never a contradiction of its own)."""
    best: dict[str, str] | None = None
    for x in name_variants(a):
        for y in name_variants(b):
            ev = compare(x, y, same_household=same_household)
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


def reasons(evidence: dict[str, str]) -> list[str]:
    """What a reviewer should know about this evidence beyond the points (Japanese; no personal data)."""
    return [REVIEW_REASONS[(k, v)] for k, v in evidence.items() if (k, v) in REVIEW_REASONS]


def may_link(query: Features, evidence: dict[str, str], rows: Sequence[Features]) -> bool:
    """Whether the best evidence against a candidate person (of ``rows``) may link without a reviewer.

    * the variance patterns (:func:`schemas.name_evidence.may_autolink`): a changed surname links
      through the resident number (:func:`number_fits`) or when birth date, sex, given name and its
      reading and the address or phone agree; a birth slip only with address or phone agreeing and
      the sex not differing;
    * people outside the registry (住登外者): a record without a resident number attaches to a
      registry resident only when name (exact, folded or the registry's 旧氏) *and* reading agree;
      a record without a reading (name agreeing), or with a homophone of the name (reading agreeing,
      a keying slip of the kanji), only where the resident lives where the record says (the
      household the source names, the address or the phone). A namesake born the same day elsewhere,
      with name and birth date in common and nothing else, is reviewed, never attached.
    """
    if not may_autolink(evidence):
        return False
    if query.resident_no is not None or not any(r.registry for r in rows):
        return True
    if evidence.get("name") == "surname_differs":  # corroborated where the person lives (may_autolink)
        return not any(r.former_family_key for r in rows)  # a known 旧氏 that is not this one: review
    name = evidence.get("name") in ("exact", "folded", "former_surname")
    kana = evidence.get("kana")
    if name and kana == "agree":
        return True
    where = (evidence.get("household") in ("same", "member") or evidence.get("address") == "agree"
             or evidence.get("phone") == "agree")
    return where and ((name and kana == "unknown") or (kana == "agree" and evidence.get("name") == "differ"))


def number_misnames(evidence: dict[str, str]) -> bool:
    """The record's resident number names a resident born on another day (``evidence`` is the record
    against that resident): a number typed or picked wrongly (a namesake, a parent of the same name
    picked from a list), which another candidate agreeing on everything the record shows, the birth
    date among it, may overrule (:func:`overrules_number`). A number naming someone born the same
    day (a twin) is not overruled: who is meant waits for a reviewer."""
    return evidence.get("birth") == "differ"


def overrules_number(evidence: dict[str, str]) -> bool:
    """A candidate whose registry number differs from the record's may still link when the record's
    number names someone born on another day (:func:`number_misnames`) and this candidate agrees on
    what links without any number: name (exact or folded), reading, birth date and the address or
    phone, the sex not differing. A record without reading, or with another name, never qualifies."""
    return (evidence.get("name") in ("exact", "folded") and evidence.get("kana") == "agree"
            and evidence.get("birth") == "agree" and evidence.get("sex") != "differ"
            and "agree" in (evidence.get("address"), evidence.get("phone")))


def points(evidence: dict[str, str]) -> float:
    return sum(WEIGHTS.get(k, {}).get(v, 0.0) for k, v in evidence.items())


def contradicts(evidence: dict[str, str]) -> bool:
    """A hard contradiction: birth date, sex or reading known on both sides and different."""
    return any(evidence.get(k) == "differ" for k in HARD)


def number_fits(evidence: dict[str, str], a: Features | None = None, b: Features | None = None) -> bool:
    """A resident number is trusted for a record when nothing contradicts it (a birth-date keying slip
    with name and reading agreeing is no contradiction here) and the name agrees
    (exactly or folded), or the reading does (a homophone slip), or the part of the name written in
    kana is the other side's reading (高橋ヨシオ for 髙橋 義雄). Another name with nothing to confirm it
    is someone else's number typed by mistake (a twin's, a sibling's): not trusted."""
    if contradicts(evidence):
        return _slip_with_number(evidence, a, b)
    if evidence.get("name") == "surname_differs":  # a changed surname: birth date and given name agree
        return may_autolink(evidence, resident_no_agrees=True)
    if evidence.get("name") != "differ" or evidence.get("kana") in ("agree", "similar"):
        return True
    return a is not None and b is not None and (_kana_written(a, b) or _kana_written(b, a))


def _slip_with_number(evidence: dict[str, str], a: Features | None, b: Features | None) -> bool:
    """The resident number agrees and the only contradiction is a birth-date keying slip (one day off,
    month and day swapped) while the name (exact or folded) and the reading agree, and the address or
    the phone agrees: the same person. Without that, the record may as well be a namesake born a day
    apart who carries the resident's number by mistake (a wrong pick from a list of equal names). The
    household the record names being the resident's (``household: same``) counts as the address: no
    namesake born a day apart lives in the same household."""
    if a is None or b is None or birth_slip(a.birth_date, b.birth_date) not in ("one_day", "swapped"):
        return False
    rest = {k: v for k, v in evidence.items() if k != "birth"}
    return (not contradicts(rest) and evidence.get("name") in ("exact", "folded")
            and evidence.get("kana") in ("agree", "similar")
            and ("agree" in (evidence.get("address"), evidence.get("phone"))
                 or evidence.get("household") in ("same", "member")))


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
