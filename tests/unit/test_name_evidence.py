"""Changed surnames and birth-date slips are classified, while twins and namesakes never look like them."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from schemas.name_evidence import (
    REVIEW_REASONS,
    VARIANCE_WEIGHTS,
    NameParts,
    birth_slip,
    compare_parts,
    may_autolink,
    name_parts,
    reading_parts,
    slip_birth_dates,
    slip_counts,
    variance_evidence,
)
from schemas.normalize import fold_kanji, name_key

FAMILIES = [("山田", "ヤマダ"), ("鈴木", "スズキ"), ("髙橋", "タカハシ"), ("渡邊", "ワタナベ"), ("斎藤", "サイトウ"),
            ("斉藤", "サイトウ"), ("佐藤", "サトウ"), ("田中", "タナカ")]
GIVENS = [("花子", "ハナコ"), ("太郎", "タロウ"), ("次郎", "ジロウ"), ("裕子", "ユウコ"), ("祐子", "ユウコ"),
          ("一郎", "イチロウ"), ("美咲", "ミサキ")]
births = st.dates(min_value=date(1920, 1, 1), max_value=date(2024, 12, 31))


def parts(family: tuple[str, str], given_: tuple[str, str]) -> NameParts:
    f, g = name_parts(f"{family[0]}　{given_[0]}")
    fk, gk = reading_parts(f"{family[1]} {given_[1]}")
    return NameParts(f, g, fk, gk)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (date(1944, 5, 3), date(1944, 5, 3), "agree"),
        (date(1944, 5, 3), date(1944, 5, 4), "one_day"),
        (date(1944, 12, 31), date(1945, 1, 1), "one_day"),
        (date(1944, 3, 5), date(1944, 5, 3), "swapped"),
        (date(1944, 5, 3), date(1945, 3, 5), "differ"),
        (date(1944, 5, 5), date(1944, 5, 7), "differ"),
        (None, date(1944, 5, 3), "unknown"),
    ],
)
def test_birth_slip_names_one_day_and_swapped(a: date | None, b: date | None, expected: str) -> None:
    """One day apart and month/day exchanged in the same year are the two named slips; the rest differ."""
    assert birth_slip(a, b) == expected
    assert birth_slip(b, a) == expected


def test_changed_surname_is_its_own_pattern() -> None:
    """Same given name and reading, different surname and reading: surname_differs (marriage, 旧氏)."""
    assert compare_parts(parts(FAMILIES[0], GIVENS[0]), parts(FAMILIES[1], GIVENS[0])) == "surname_differs"
    assert compare_parts(parts(FAMILIES[2], GIVENS[1]), parts(("高橋", "タカハシ"), GIVENS[1])) == "folded"
    assert compare_parts(parts(FAMILIES[0], GIVENS[0]), parts(FAMILIES[0], GIVENS[0])) == "same"


def test_homophone_given_names_are_not_a_changed_surname() -> None:
    """裕子/祐子 read alike but are different names: with a different surname that is simply differ."""
    assert compare_parts(parts(FAMILIES[0], GIVENS[3]), parts(FAMILIES[1], GIVENS[4])) == "differ"


def test_distinct_legal_surnames_with_one_reading_are_not_the_same_name() -> None:
    """斎藤/斉藤 (one reading サイトウ) are different legal names, never same or folded."""
    assert compare_parts(parts(FAMILIES[4], GIVENS[0]), parts(FAMILIES[5], GIVENS[0])) == "differ"


def test_parts_without_a_separator_are_unknown() -> None:
    """A name written without a space has no known given part: nothing is claimed about surnames."""
    f, g = name_parts("山田花子")
    assert compare_parts(NameParts(f, g), parts(FAMILIES[1], GIVENS[0])) == "unknown"
    assert name_parts("山田花子", family="山田", given="花子") == ("山田", "花子")


@given(st.sampled_from(FAMILIES), st.sampled_from(GIVENS), st.sampled_from(GIVENS), births,
       st.sampled_from(["agree", "unknown"]))
def test_twins_are_never_a_slip_nor_a_changed_surname(family: tuple[str, str], g1: tuple[str, str],
                                                       g2: tuple[str, str], born: date, phone: str) -> None:
    """Twins (same family, birth and address, different given names) are given_differs and no slip counts."""
    assume(fold_kanji(name_key(g1[0])) != fold_kanji(name_key(g2[0])))
    a, b = parts(family, g1), parts(family, g2)
    assert compare_parts(a, b) == "given_differs"
    for other in (born, born + timedelta(days=1)):
        assert not slip_counts(birth_slip(born, other), "differ", "differ" if g1[1] != g2[1] else "agree",
                               "agree", phone)  # type: ignore[arg-type]


@given(st.sampled_from(FAMILIES), st.sampled_from(GIVENS), births, births)
def test_namesakes_elsewhere_never_count_a_slip(family: tuple[str, str], given_: tuple[str, str],
                                                 b1: date, b2: date) -> None:
    """Namesakes (same name and reading, different household and phone) never turn a birth slip into agreement."""
    slip = birth_slip(b1, b2)
    assert not slip_counts(slip, "exact", "agree", "differ", "differ")
    assert not slip_counts(slip, "exact", "agree", "differ", "unknown")


@given(st.sampled_from(FAMILIES), st.sampled_from(GIVENS), births, st.sampled_from(["one_day", "swapped"]),
       st.sampled_from([("agree", "unknown"), ("unknown", "agree"), ("agree", "agree")]))
def test_a_slip_with_everything_else_agreeing_counts(family: tuple[str, str], given_: tuple[str, str], born: date,
                                                     kind: str, where: tuple[str, str]) -> None:
    """The same person keyed with a one-day or swapped birth date, name, reading and address or phone agreeing."""
    other = born + timedelta(days=1) if kind == "one_day" else None
    if kind == "swapped":
        assume(born.day <= 12 and born.day != born.month)
        other = born.replace(month=born.day, day=born.month)
    slip = birth_slip(born, other)
    assert slip == kind
    assert compare_parts(parts(family, given_), parts(family, given_)) == "same"
    assert slip_counts(slip, "exact", "agree", *where)  # type: ignore[arg-type]
    assert not slip_counts(slip, "exact", "similar", *where)  # type: ignore[arg-type]
    assert not slip_counts("differ", "exact", "agree", *where)  # type: ignore[arg-type]


@given(st.sampled_from(FAMILIES), st.sampled_from(FAMILIES), st.sampled_from(GIVENS))
def test_surname_differs_only_when_the_surname_really_differs(f1: tuple[str, str], f2: tuple[str, str],
                                                               given_: tuple[str, str]) -> None:
    """For any two surnames and one given name: surname_differs exactly when surname writing and reading differ."""
    got = compare_parts(parts(f1, given_), parts(f2, given_))
    same_writing = fold_kanji(name_key(f1[0])) == fold_kanji(name_key(f2[0]))
    if same_writing:
        assert got in ("same", "folded")
    elif f1[1] == f2[1]:
        assert got == "differ"  # 斎藤/斉藤: same reading, different writing
    else:
        assert got == "surname_differs"


def _ev(**kw: str) -> dict[str, str]:
    base = {"birth": "agree", "name": "exact", "kana": "agree", "sex": "agree", "address": "unknown",
            "phone": "unknown"}
    return {**base, **kw}


def test_variance_evidence_names_a_changed_surname_and_sends_it_to_review() -> None:
    """山田花子 → 鈴木花子 (given name and reading agree): surname_differs; review unless the number agrees or
    the address (or phone) corroborates it."""
    a, b = parts(FAMILIES[0], GIVENS[0]), parts(FAMILIES[1], GIVENS[0])
    ev = variance_evidence(_ev(name="differ", kana="differ", address="agree"), a, b, date(1980, 1, 2), date(1980, 1, 2))
    assert ev["name"] == "surname_differs" and ev["kana"] == "given_agrees"
    assert may_autolink(ev)  # corroborated: birth date, given name and reading, address agree
    assert not may_autolink({**ev, "address": "unknown"})
    assert not may_autolink({**ev, "address": "differ", "phone": "unknown"})
    assert not may_autolink({**ev, "sex": "differ"})
    assert may_autolink({**ev, "address": "unknown"}, resident_no_agrees=True)
    assert REVIEW_REASONS[("name", "surname_differs")].startswith("氏が異なる")
    assert all(set(VARIANCE_WEIGHTS[k]) >= {v} for k, v in ev.items() if k in ("name", "kana"))


def test_variance_evidence_keeps_twins_and_siblings_vetoed() -> None:
    """A twin (same family, other given name and reading, same birth and address) keeps name and kana differ."""
    a, b = parts(FAMILIES[0], GIVENS[1]), parts(FAMILIES[0], GIVENS[2])
    ev = variance_evidence(_ev(name="differ", kana="differ", address="agree"), a, b, date(1990, 4, 1), date(1990, 4, 1))
    assert ev["name"] == "differ" and ev["kana"] == "differ"


def test_variance_evidence_names_a_slip_only_with_everything_else_agreeing() -> None:
    """One day off with name, reading and address agreeing is slip_one_day; without address or phone it stays differ."""
    a = b = parts(FAMILIES[3], GIVENS[5])
    ev = variance_evidence(_ev(birth="differ", address="agree"), a, b, date(1950, 6, 1), date(1950, 6, 2))
    assert ev["birth"] == "slip_one_day"
    assert may_autolink(ev)
    assert not may_autolink({**ev, "sex": "differ"})
    assert not may_autolink({**ev, "address": "differ"})
    assert may_autolink({**ev, "address": "differ", "phone": "agree"})
    ev = variance_evidence(_ev(birth="differ"), a, b, date(1950, 6, 1), date(1950, 6, 2))
    assert ev["birth"] == "differ"
    ev = variance_evidence(_ev(birth="differ", address="agree"), a, b, date(1950, 6, 1), date(1950, 1, 6))
    assert ev["birth"] == "slip_swapped"


@given(st.sampled_from(FAMILIES), st.sampled_from(GIVENS), st.sampled_from(GIVENS), births, births,
       st.sampled_from(["agree", "differ", "unknown"]), st.sampled_from(["agree", "differ", "unknown"]))
def test_variance_evidence_never_softens_a_different_given_name(
    family: tuple[str, str], g1: tuple[str, str], g2: tuple[str, str], b1: date, b2: date, address: str, phone: str
) -> None:
    """Whatever else agrees, two different given names never get a slip or a changed-surname pattern."""
    assume(fold_kanji(name_key(g1[0])) != fold_kanji(name_key(g2[0])))
    a, b = parts(family, g1), parts(family, g2)
    base = _ev(birth=birth_slip(b1, b2) if birth_slip(b1, b2) in ("agree", "unknown") else "differ",
               name="differ", kana="agree" if g1[1] == g2[1] else "differ", address=address, phone=phone)
    ev = variance_evidence(base, a, b, b1, b2)
    assert ev == base


@given(births)
def test_slip_birth_dates_are_exactly_the_slips(born: date) -> None:
    """Every date slip_birth_dates gives is a one_day or swapped slip of the date, and it gives all of them."""
    dates = slip_birth_dates(born)
    assert all(birth_slip(born, d) in ("one_day", "swapped") for d in dates)
    assert born + timedelta(days=1) in dates and born - timedelta(days=1) in dates
    if born.day <= 12 and born.day != born.month:
        assert born.replace(month=born.day, day=born.month) in dates
