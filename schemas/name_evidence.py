"""Evidence about one person seen twice with real-world variance: changed surnames and birth-date slips.

Pure functions over keys, no I/O; the hub's scorer calls them (issue 11, items 2 and 3). They only
*classify* what differs, they never decide: a changed surname is a known pattern that still needs
the resident number or a reviewer, and a birth date one day off or with month and day swapped is
weaker evidence, not a veto, only when name, reading and address or phone all agree.

* :func:`birth_slip` — ``agree``, ``one_day`` (e.g. 5月3日/5月4日), ``swapped`` (3月5日/5月3日, same
  year), ``differ`` or ``unknown``.
* :func:`name_parts` / :func:`reading_parts` — (family, given) keys of a name and of its reading
  (given part None when the source wrote no separator).
* :func:`align_parts` — a name or reading written without a separator split by the other side's
  given name and its reading.
* :func:`compare_parts` — ``same``, ``folded``, ``surname_differs`` (given name *and* its reading
  agree, family differs: marriage, divorce, 旧氏), ``given_differs`` (same family, different
  given name: a sibling, a twin), ``differ`` or ``unknown``.
* :func:`slip_counts` — whether a birth slip may count as weak agreement given the rest of the
  evidence (never for a different given name: twins and siblings are never slips).
* :func:`household_member` — a changed surname corroborated by the household the record names (a
  kodomo guardian's 世帯番号, a houkatsu 同居家族 entry) instead of an address (``household: member``).
* a changed surname with a given-name homophone (鈴木 裕子 for 佐藤 祐子, same reading, at the same
  place): ``name: surname_and_given_kanji_differ``, never linked without a reviewer.
* :func:`variance_evidence` — the hub's evidence dict (feature → agree/differ/…) rewritten with
  these patterns, with :data:`VARIANCE_WEIGHTS` for the new values and :data:`REVIEW_REASONS`
  for the reviewer; what may link automatically is in :func:`may_autolink`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from schemas.normalize import fold_kanji, kana_key, name_key, split_name

__all__ = [
    "REVIEW_REASONS",
    "VARIANCE_WEIGHTS",
    "BirthComparison",
    "NameParts",
    "PartsComparison",
    "align_parts",
    "birth_slip",
    "compare_parts",
    "household_member",
    "may_autolink",
    "name_parts",
    "reading_parts",
    "slip_birth_dates",
    "slip_counts",
    "surname_change_corroborated",
    "variance_evidence",
]

BirthComparison = Literal["agree", "one_day", "swapped", "differ", "unknown"]
PartsComparison = Literal["same", "folded", "surname_differs", "given_differs", "differ", "unknown"]


def birth_slip(a: date | None, b: date | None) -> BirthComparison:
    """How two birth dates compare, naming the two keying slips that are common in the feeds.

    ``one_day``: one day apart (a neighbouring key, a midnight birth). ``swapped``: same year, month
    and day exchanged (1944-03-05 / 1944-05-03). Anything else that differs is ``differ``.
    """
    if a is None or b is None:
        return "unknown"
    if a == b:
        return "agree"
    if abs(a - b) == timedelta(days=1):
        return "one_day"
    if a.year == b.year and a.month == b.day and a.day == b.month:
        return "swapped"
    return "differ"


def slip_birth_dates(b: date) -> list[date]:
    """The dates a keying slip of ``b`` would give (one day either side, month and day swapped), for
    finding candidates: blocking on (birth date, reading) never finds a slipped record otherwise."""
    out = [b - timedelta(days=1), b + timedelta(days=1)]
    if b.day <= 12 and b.day != b.month:
        out.append(b.replace(month=b.day, day=b.month))
    return out


@dataclass(frozen=True, slots=True)
class NameParts:
    """Keys of one person's name split into family and given parts (None where unknown)."""

    family: str | None
    given: str | None
    family_kana: str | None = None
    given_kana: str | None = None


def name_parts(name: str, family: str | None = None, given: str | None = None) -> tuple[str | None, str | None]:
    """(family, given) name keys: from the source's own columns when it has them, else split on a space."""
    if family is None and given is None:
        family, given = split_name(name)
    return ((name_key(family) or None) if family else None, (name_key(given) or None) if given else None)


def reading_parts(kana: str | None) -> tuple[str | None, str | None]:
    """(family, given) reading keys, split on the first space of either width; given None without one."""
    if not kana or not kana.strip():
        return None, None
    family, given = split_name(kana)
    return kana_key(family) or None, (kana_key(given) or None) if given else None


def _same(a: str | None, b: str | None) -> bool | None:
    if a is None or b is None:
        return None
    return a == b or fold_kanji(a) == fold_kanji(b)


def _split_like(whole: str | None, given: str | None, other_given: str | None) -> tuple[str | None, str | None]:
    """``whole`` (a name or reading written without a separator) split where ``other_given`` ends it:
    (family, given); unchanged when it has a given part already or does not end that way."""
    if whole is None or given is not None or not other_given or len(whole) <= len(other_given):
        return whole, given
    folded_whole, folded_given = fold_kanji(whole), fold_kanji(other_given)
    same_length = len(folded_whole) == len(whole) and len(folded_given) == len(other_given)
    if whole.endswith(other_given) or (same_length and folded_whole.endswith(folded_given)):
        return whole[: -len(other_given)], whole[-len(other_given):]
    return whole, given


def align_parts(a: NameParts, b: NameParts) -> tuple[NameParts, NameParts]:
    """Both names with a side written without a separator split by the other side's given name and its
    reading (サトウハナコ against ニッタ ハナコ → サトウ / ハナコ), so a changed surname is still seen.

    Only for telling which part differs: a split that the given name's writing *and* reading support
    is what :func:`compare_parts` needs to say ``surname_differs``; a name that does not end with the
    other's given name (or reading) stays unsplit and is ``unknown`` there, as before."""
    def split(x: NameParts, y: NameParts) -> NameParts:
        family, given = _split_like(x.family, x.given, y.given)
        family_kana, given_kana = _split_like(x.family_kana, x.given_kana, y.given_kana)
        return NameParts(family, given, family_kana, given_kana)

    return split(a, b), split(b, a)


def compare_parts(a: NameParts, b: NameParts) -> PartsComparison:
    """Compare two split names (and their readings where both sides have them).

    ``surname_differs`` needs the given name to agree in writing (exactly or folded) *and* in
    reading where both readings are known, and the family name to differ in writing and reading:
    a different given name is never a changed surname. ``given_differs``: the family agrees and the
    given name differs in writing or reading (siblings, twins). ``unknown`` when either side lacks
    a part needed to tell.
    """
    family = _same(a.family, b.family)
    given = _same(a.given, b.given)
    family_kana = None if a.family_kana is None or b.family_kana is None else a.family_kana == b.family_kana
    given_kana = None if a.given_kana is None or b.given_kana is None else a.given_kana == b.given_kana
    if family is None or given is None:
        return "unknown"
    if given and given_kana is not False:
        if family and family_kana is not False:
            exact = a.family == b.family and a.given == b.given
            return "same" if exact else "folded"
        if not family and family_kana is not True:
            return "surname_differs"
        return "differ"
    if family and family_kana is not False:
        return "given_differs"
    return "differ"


def slip_counts(
    birth: BirthComparison,
    name: Literal["exact", "folded", "private_use", "differ", "unknown"],
    kana: Literal["agree", "similar", "differ", "unknown"],
    address: Literal["agree", "differ", "unknown"],
    phone: Literal["agree", "differ", "unknown"],
    household: Literal["same", "unknown"] = "unknown",
) -> bool:
    """True when a birth slip (``one_day`` / ``swapped``) may count as weak agreement instead of a veto.

    Only with the whole name agreeing (exactly or folded), the reading agreeing exactly, and the
    address, the phone or the household agreeing (``household="same"``: the record comes with the
    household the candidate lives in, a kodomo record's 世帯番号 or a houkatsu 同居家族 entry of the
    subject's household). In that household a record without a reading (同居家族 entries have none)
    counts too (:func:`household_member`). Twins (same household, different given names) fail the name test;
    namesakes (same name, different household and phone) fail the place test.
    """
    if birth not in ("one_day", "swapped") or name not in ("exact", "folded"):
        return False
    if household == "same":
        return kana in ("agree", "unknown")
    return kana == "agree" and "agree" in (address, phone)


#: Points for the evidence values :func:`variance_evidence` introduces (same scale as the hub's
#: WEIGHTS: birth agree 3 / differ -10, name exact 4 / folded 3 / differ -2, kana agree 4 / differ -8).
VARIANCE_WEIGHTS: dict[str, dict[str, float]] = {
    "birth": {"slip_one_day": -1.0, "slip_swapped": -1.0},
    "name": {"surname_differs": 1.0, "private_use": 2.0, "surname_and_given_kanji_differ": 0.0},
    "kana": {"given_agrees": 2.0},
    # the household the record names, and in it the one member of that given name and birth date, or of
    # that whole name and a slip of the birth date (:func:`household_member`): the shared household (2)
    # and, as a reading would (4), the name identifies the member
    "household": {"member": 4.0},
}

#: Japanese reasons a reviewer sees for each introduced value (no personal data).
REVIEW_REASONS: dict[tuple[str, str], str] = {
    ("name", "surname_differs"): "氏が異なる（婚姻・離婚・旧氏の可能性）",
    ("birth", "slip_one_day"): "生年月日が1日違い（入力誤りの可能性）",
    ("birth", "slip_swapped"): "生年月日の月と日が入れ替わっている（入力誤りの可能性）",
    ("name", "private_use"): "外字を含むため氏名の一部を照合できない",
    ("name", "surname_and_given_kanji_differ"): "氏が異なり名の漢字も異なる（名の読み・生年月日・住所等は一致）",
}


def variance_evidence(
    evidence: dict[str, str], a: NameParts, b: NameParts, a_birth: date | None, b_birth: date | None
) -> dict[str, str]:
    """The hub's evidence with changed surnames and birth slips named instead of counted as differences.

    ``evidence`` is what the hub's ``compare`` returns (``birth``/``name``/``kana``/``sex``/``address``/
    ``phone``). Rewrites, each only where the plain comparison said ``differ``:

    * name differs and the whole reading does not agree (a reading that agrees is a homophone, 斎藤/
      齊藤, not a changed surname), but :func:`compare_parts` says ``surname_differs`` → ``name:
      surname_differs`` and ``kana: given_agrees`` (no longer a veto; the reading of the given name
      agrees, so it is not "differ");
    * birth differs by one of the two slips and :func:`slip_counts` holds (on the *original*
      name/reading/address/phone evidence) → ``birth: slip_one_day`` / ``slip_swapped``.

    Everything else is returned unchanged, so twins, siblings and namesakes keep their vetoes.
    """
    ev = dict(evidence)
    a, b = align_parts(a, b)
    reading_agrees = ev.get("kana") in ("agree", "similar")  # a homophone (斎藤/齊藤), not a changed surname
    if ev.get("name") == "differ" and not reading_agrees:
        parts = compare_parts(a, b)
        if parts == "surname_differs":
            ev["name"] = "surname_differs"
            if ev.get("kana") == "differ" and a.given_kana is not None and a.given_kana == b.given_kana:
                ev["kana"] = "given_agrees"
            if household_member(ev):
                ev["household"] = "member"
        elif parts == "differ" and _surname_and_given_kanji_differ(a, b, ev):
            ev["name"], ev["kana"] = "surname_and_given_kanji_differ", "given_agrees"
    if ev.get("birth") == "differ":
        slip = birth_slip(a_birth, b_birth)
        name = evidence.get("name", "unknown")
        kana = evidence.get("kana", "unknown")
        if slip in ("one_day", "swapped") and slip_counts(
            slip, name, kana, evidence.get("address", "unknown"), evidence.get("phone", "unknown"),  # type: ignore[arg-type]
            evidence.get("household", "unknown"),  # type: ignore[arg-type]
        ):
            ev["birth"] = f"slip_{slip}"
            if household_member(ev):
                ev["household"] = "member"
    return ev


def _surname_and_given_kanji_differ(a: NameParts, b: NameParts, ev: dict[str, str]) -> bool:
    """A changed surname *and* a given name written with other kanji of the same reading (裕子 for 祐子):
    the family name differs in writing and reading, the given name in writing only (its reading known
    on both sides and equal), while the birth date and the address, phone or household agree and the
    sex does not differ. Two variances at once leave only the given name's reading of the name: never
    linked without a reviewer (:func:`may_autolink`), and without a shared place not even proposed (it
    stays a reading veto, so a same-day-born namesake of the reading elsewhere is not queued)."""
    if a.family is None or b.family is None or a.given is None or b.given is None:
        return False
    if _same(a.family, b.family) or _same(a.given, b.given):
        return False
    if a.family_kana is None or b.family_kana is None or a.family_kana == b.family_kana:
        return False
    if a.given_kana is None or a.given_kana != b.given_kana:
        return False
    where = "agree" in (ev.get("address"), ev.get("phone")) or ev.get("household") == "same"
    return ev.get("birth") == "agree" and ev.get("sex") != "differ" and where


def household_member(evidence: dict[str, str]) -> bool:
    """The record names the household the candidate lives in (``household: same``: a kodomo guardian with
    the child's 世帯番号, a houkatsu 同居家族 entry of the subject's household) and identifies one member
    of it, the sex not differing and the reading not differing (agreeing, or unknown: 同居家族 entries
    have none):

    * a changed surname: the birth date and the given name agree, the family name differs. In one
      household a given name and a birth date name one member (twins have other given names, a parent
      and a child of one name are decades apart), so the other surname is that member's earlier one
      (旧氏): a mother the child-agency still knows by her maiden name;
    * a birth slip: the whole name agrees (exactly or folded) and the birth date is one day off or has
      month and day swapped. Two members of one name born a day apart do not occur (one 戸籍 never
      holds one given name twice)."""
    if evidence.get("household") != "same" or evidence.get("sex") == "differ":
        return False
    if evidence.get("name") == "surname_differs":
        return evidence.get("birth") == "agree" and evidence.get("kana") in ("given_agrees", "unknown")
    return (evidence.get("name") in ("exact", "folded") and evidence.get("birth", "").startswith("slip_")
            and evidence.get("kana") in ("agree", "unknown"))


def may_autolink(evidence: dict[str, str], *, resident_no_agrees: bool = False) -> bool:
    """Whether evidence carrying a variance pattern may still link without a reviewer.

    A changed surname links through an agreeing resident number (with birth date agreeing and the
    given name agreeing in writing and reading), or without one when it is corroborated where the
    person lives (:func:`surname_change_corroborated`: birth date, given name and its reading and
    the address or the phone agree, the sex does not differ) or by the household the record names
    (:func:`household_member`). A changed surname with a given-name homophone never links. A birth
    slip (which :func:`variance_evidence` only names when the whole name and the reading agree, or in
    the named household the name) links when the sex does not differ and the address, the phone or
    the household agrees, or the resident number agrees: two people of one name and reading born a
    day apart at one address do not occur (siblings in one 戸籍 never share a given name).
    Evidence without these patterns: True (the hub's usual thresholds decide).
    """
    if evidence.get("name") == "surname_and_given_kanji_differ":
        return False  # two variances at once: a reviewer decides
    if evidence.get("name") == "surname_differs":
        if evidence.get("household") == "member":
            return True
        given = evidence.get("birth") == "agree" and evidence.get("kana") == "given_agrees"
        return given and (resident_no_agrees or surname_change_corroborated(evidence))
    if evidence.get("birth", "").startswith("slip_"):
        where = (evidence.get("address") == "agree" or evidence.get("phone") == "agree"
                 or evidence.get("household") in ("same", "member"))
        return resident_no_agrees or (where and evidence.get("sex") != "differ")
    return True


def surname_change_corroborated(evidence: dict[str, str]) -> bool:
    """A changed surname that may link without a resident number: birth date, the given name in
    writing and reading, and the address or the phone agree, and the sex does not differ.

    Only another name's family part differs. A twin or a sibling has another given name, a namesake
    another birth date or address, so neither reaches this; someone else would need the same given
    name, reading, birth date and sex *and* live at the same address (or answer the same phone)
    under another surname, and not be in the registry under it (a registered one scores higher on
    their own row and wins the margin). Anything less still goes to review with the reason
    "surname differs".
    """
    return (evidence.get("name") == "surname_differs" and evidence.get("kana") == "given_agrees"
            and evidence.get("birth") == "agree" and evidence.get("sex") != "differ"
            and "agree" in (evidence.get("address"), evidence.get("phone")))
