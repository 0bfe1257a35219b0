"""Unit tests for schemas.wareki: 和暦/西暦 dates and Japan-time timestamps."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.wareki import ERAS, JST, Era, InvalidDate, jst_midnight, parse_date, parse_jst_datetime

FIXED_REASONS = {
    "empty date",
    "unrecognised date format",
    "unrecognised datetime format",
    "impossible date",
    "impossible time",
    "date outside era",
}

_FULL = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)} | {" ": "\u3000"})


def full_width(text: str) -> str:
    return text.translate(_FULL)


# --- parse_date: every spelling ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # 和暦, letter abbreviations
        ("S19.05.03", date(1944, 5, 3)),
        ("S19.5.3", date(1944, 5, 3)),
        ("s19.5.3", date(1944, 5, 3)),
        ("R07.11.23", date(2025, 11, 23)),
        ("R7.11.23", date(2025, 11, 23)),
        ("H2.1.5", date(1990, 1, 5)),
        ("h2.1.5", date(1990, 1, 5)),
        ("R6.04.01", date(2024, 4, 1)),
        ("H2/1/5", date(1990, 1, 5)),
        ("H2-1-5", date(1990, 1, 5)),
        ("S19/05/03", date(1944, 5, 3)),
        ("R1.5.1", date(2019, 5, 1)),
        ("R元.5.1", date(2019, 5, 1)),
        ("T15.12.24", date(1926, 12, 24)),
        ("M45.7.29", date(1912, 7, 29)),
        ("S190503", date(1944, 5, 3)),
        # 和暦, kanji eras
        ("昭和19年5月3日", date(1944, 5, 3)),
        ("昭和19年05月03日", date(1944, 5, 3)),
        ("令和元年5月1日", date(2019, 5, 1)),
        ("平成元年1月8日", date(1989, 1, 8)),
        ("大正元年7月30日", date(1912, 7, 30)),
        ("大正15年12月24日", date(1926, 12, 24)),
        ("明治45年7月29日", date(1912, 7, 29)),
        ("明治元年1月25日", date(1868, 1, 25)),
        ("昭和 19年 5月 3日", date(1944, 5, 3)),
        ("昭19.5.3", date(1944, 5, 3)),
        ("㍼19年5月3日", date(1944, 5, 3)),
        ("㋿元年5月1日", date(2019, 5, 1)),
        # full-width digits and letters anywhere
        ("Ｓ１９．５．３", date(1944, 5, 3)),
        ("Ｓ19.5.3", date(1944, 5, 3)),
        ("S１９.05.０３", date(1944, 5, 3)),
        ("ｓ１９．０５．０３", date(1944, 5, 3)),
        ("Ｈ２／１／５", date(1990, 1, 5)),
        ("Ｒ６－０４－０１", date(2024, 4, 1)),
        ("昭和１９年５月３日", date(1944, 5, 3)),
        ("令和元年５月１日", date(2019, 5, 1)),
        ("令和７年１０月１５日", date(2025, 10, 15)),
        # 西暦
        ("1944/05/03", date(1944, 5, 3)),
        ("1944/5/3", date(1944, 5, 3)),
        ("19440503", date(1944, 5, 3)),
        ("1944-05-03", date(1944, 5, 3)),
        ("1944-5-3", date(1944, 5, 3)),
        ("1944年5月3日", date(1944, 5, 3)),
        ("1944年05月03日", date(1944, 5, 3)),
        ("1944.05.03", date(1944, 5, 3)),
        ("１９４４／０５／０３", date(1944, 5, 3)),
        ("１９４４０５０３", date(1944, 5, 3)),
        ("１９４４年５月３日", date(1944, 5, 3)),
        ("1944\u221205\u221203", date(1944, 5, 3)),  # minus sign as separator
        # surrounding whitespace of any width
        ("  S19.5.3  ", date(1944, 5, 3)),
        ("\u3000昭和19年5月3日\u3000", date(1944, 5, 3)),
        ("\t1944-05-03\n", date(1944, 5, 3)),
    ],
)
def test_parse_date_accepts_every_spelling(text: str, expected: date) -> None:
    """Every 和暦 and 西暦 spelling the feeds use, in either width, reads as the same calendar date."""
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("S22.04.16", date(1947, 4, 16)),
        ("昭和２２年２月１７日", date(1947, 2, 17)),
        ("R03.01.31", date(2021, 1, 31)),
        ("H29.6.24", date(2017, 6, 24)),
        ("令和３年１２月２０日", date(2021, 12, 20)),
        ("平成２年５月１７日", date(1990, 5, 17)),
        ("R1.6.9", date(2019, 6, 9)),
        ("2026/04/03", date(2026, 4, 3)),
        ("1933-01-10", date(1933, 1, 10)),
    ],
)
def test_parse_date_reads_sample_feed_values(text: str, expected: date) -> None:
    """Spellings copied from the houkatsu, jiritsu and registry samples parse to the right day."""
    assert parse_date(text) == expected


# --- parse_date: validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["1970-02-30", "R7.13.45", "2023/02/29", "19440230", "S19.2.30", "昭和19年13月1日", "1944年4月31日", "0000-01-01"],
)
def test_parse_date_rejects_impossible_calendar_dates(text: str) -> None:
    """A day that does not exist in the calendar (Feb 30, month 13, Feb 29 off leap years) is "impossible date"."""
    with pytest.raises(InvalidDate) as info:
        parse_date(text)
    assert info.value.reason == "impossible date"
    assert str(info.value) == "impossible date"


def test_parse_date_accepts_leap_day() -> None:
    """February 29 of a leap year is a real day in both 和暦 and 西暦 spellings."""
    assert parse_date("H12.2.29") == date(2000, 2, 29)
    assert parse_date("2024/02/29") == date(2024, 2, 29)


@pytest.mark.parametrize(
    "text",
    [
        "S0.1.1",
        "H0.12.31",
        "昭和0年5月3日",
        "H31.5.1",  # 平成 ended on 2019-04-30
        "平成31年5月1日",
        "R1.4.30",  # 令和 began on 2019-05-01
        "令和元年4月30日",
        "H1.1.7",  # 平成 began on 1989-01-08
        "平成元年1月7日",
        "S64.1.8",  # 昭和 ended on 1989-01-07
        "S65.1.1",
        "S1.12.24",  # 昭和 began on 1926-12-25
        "T15.12.25",  # 大正 ended on 1926-12-24
        "T1.7.29",  # 大正 began on 1912-07-30
        "M45.7.30",  # 明治 ended on 1912-07-29
        "明治元年1月24日",  # 明治 begins on 1868-01-25
        "S99.1.1",
    ],
)
def test_parse_date_rejects_dates_outside_the_era(text: str) -> None:
    """Era year 0 and days before an era began or after it ended are "date outside era"."""
    with pytest.raises(InvalidDate) as info:
        parse_date(text)
    assert info.value.reason == "date outside era"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("S64.1.7", date(1989, 1, 7)),
        ("平成元年1月8日", date(1989, 1, 8)),
        ("H31.4.30", date(2019, 4, 30)),
        ("R1.5.1", date(2019, 5, 1)),
        ("S1.12.25", date(1926, 12, 25)),
        ("T15.12.24", date(1926, 12, 24)),
        ("T1.7.30", date(1912, 7, 30)),
        ("M45.7.29", date(1912, 7, 29)),
        ("M1.1.25", date(1868, 1, 25)),
    ],
)
def test_parse_date_accepts_first_and_last_day_of_each_era(text: str, expected: date) -> None:
    """The boundary days of each era are inside it (spans are inclusive)."""
    assert parse_date(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "\u3000", "\t\n"])
def test_parse_date_rejects_empty_text(text: str) -> None:
    """Empty or blank text is "empty date", not a parse error of some other kind."""
    with pytest.raises(InvalidDate) as info:
        parse_date(text)
    assert info.value.reason == "empty date"


@pytest.mark.parametrize(
    "text",
    [
        "abc",
        "1944/05",
        "1944/05/03/01",
        "S19.5/3",  # mixed separators
        "X19.5.3",  # no such era
        "令和元年",  # year only
        "昭和19年5月",
        "44/05/03",  # two-digit 西暦 year is ambiguous
        "1944-05-03T10:00",
        "1944 05 03",
        "S1905033",
        "不明",
    ],
)
def test_parse_date_rejects_unrecognised_formats(text: str) -> None:
    """Text that is no known date spelling is "unrecognised date format"."""
    with pytest.raises(InvalidDate) as info:
        parse_date(text)
    assert info.value.reason == "unrecognised date format"


def test_parse_date_rejects_non_string_input() -> None:
    """A value that is not a string (e.g. a NULL from SQL) raises InvalidDate, not TypeError."""
    with pytest.raises(InvalidDate):
        parse_date(None)  # type: ignore[arg-type]


# --- InvalidDate never carries the input ----------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["1970-02-30", "R7.13.45", "S64.1.8", "H31.5.1", "昭和19年2月30日", "19441332", "1944/99/99 12:00", "98765"],
)
def test_invalid_date_message_never_contains_input_digits(text: str) -> None:
    """InvalidDate messages and args are a fixed reason with no digits, so a birth date cannot leak."""
    for parser in (parse_date, parse_jst_datetime):
        with pytest.raises(InvalidDate) as info:
            parser(text)
        exc = info.value
        assert str(exc) in FIXED_REASONS
        assert not re.search(r"[0-9０-９]", str(exc))
        assert all(text not in str(a) for a in exc.args)
        assert exc.__cause__ is None
        assert exc.__context__ is None


@given(st.text(alphabet="0123456789０１２３４５６７８９./-年月日SHR昭和平成令元 :T+", max_size=24))
def test_invalid_date_reason_is_always_fixed(text: str) -> None:
    """For any text at all, a failed parse reports only one of the fixed reasons, never input digits."""
    for parser in (parse_date, parse_jst_datetime):
        try:
            parser(text)
        except InvalidDate as exc:
            assert str(exc) in FIXED_REASONS
            assert exc.args == (exc.reason,)
            assert not re.search(r"[0-9]", str(exc))


def test_invalid_date_constructor_refuses_free_text() -> None:
    """Constructing InvalidDate with anything but a fixed reason degrades to a fixed reason."""
    exc = InvalidDate("1944-05-03 is bad")
    assert str(exc) == "unrecognised date format"
    assert isinstance(exc, ValueError)


# --- property tests --------------------------------------------------------------------------


def era_of(d: date) -> Era:
    return next(e for e in ERAS if e.contains(d))


def era_year(d: date) -> int:
    return d.year - era_of(d).first.year + 1


def _kanji_year(n: int) -> str:
    return "元" if n == 1 else str(n)


ERA_FORMATTERS: list[Callable[[date], str]] = [
    lambda d: f"{era_of(d).letter}{era_year(d):02d}.{d.month:02d}.{d.day:02d}",
    lambda d: f"{era_of(d).letter}{era_year(d)}.{d.month}.{d.day}",
    lambda d: f"{era_of(d).letter.lower()}{era_year(d)}.{d.month}.{d.day}",
    lambda d: f"{era_of(d).letter}{era_year(d)}/{d.month}/{d.day}",
    lambda d: f"{era_of(d).letter}{era_year(d)}-{d.month:02d}-{d.day:02d}",
    lambda d: f"{era_of(d).letter}{era_year(d):02d}{d.month:02d}{d.day:02d}",
    lambda d: f"{era_of(d).kanji}{era_year(d)}年{d.month}月{d.day}日",
    lambda d: f"{era_of(d).kanji}{_kanji_year(era_year(d))}年{d.month}月{d.day}日",
    lambda d: full_width(f"{era_of(d).letter}{era_year(d)}.{d.month}.{d.day}"),
    lambda d: full_width(f"{era_of(d).kanji}{_kanji_year(era_year(d))}年{d.month}月{d.day}日"),
    lambda d: f" {era_of(d).kanji}{era_year(d):02d}年{d.month:02d}月{d.day:02d}日\u3000",
]

WESTERN_FORMATTERS: list[Callable[[date], str]] = [
    lambda d: f"{d.year:04d}/{d.month:02d}/{d.day:02d}",
    lambda d: f"{d.year:04d}/{d.month}/{d.day}",
    lambda d: f"{d.year:04d}{d.month:02d}{d.day:02d}",
    lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}",
    lambda d: f"{d.year:04d}.{d.month:02d}.{d.day:02d}",
    lambda d: f"{d.year:04d}年{d.month}月{d.day}日",
    lambda d: full_width(f"{d.year:04d}/{d.month:02d}/{d.day:02d}"),
]

# Era years above 99 cannot be written with a two-digit year; 令和 reaches 100 in 2118.
era_dates = st.dates(min_value=date(1868, 1, 25), max_value=date(2099, 12, 31))


@given(era_dates, st.sampled_from(ERA_FORMATTERS))
def test_parse_date_round_trips_any_era_spelling(d: date, fmt: Callable[[date], str]) -> None:
    """For any valid date and any 和暦 formatter, parse_date(format(d)) == d."""
    assert parse_date(fmt(d)) == d


@given(st.dates(min_value=date(1000, 1, 1)), st.sampled_from(WESTERN_FORMATTERS))
def test_parse_date_round_trips_any_western_spelling(d: date, fmt: Callable[[date], str]) -> None:
    """For any valid date and any 西暦 formatter, parse_date(format(d)) == d."""
    assert parse_date(fmt(d)) == d


@given(era_dates, st.sampled_from(ERAS))
def test_parse_date_accepts_an_era_only_within_its_span(d: date, era: Era) -> None:
    """Writing a date in an era that does not contain it is refused as "date outside era"."""
    y = d.year - era.first.year + 1
    text = f"{era.letter}{y}.{d.month}.{d.day}"
    if y < 1 or y > 99:
        return
    if era.contains(d):
        assert parse_date(text) == d
    else:
        with pytest.raises(InvalidDate) as info:
            parse_date(text)
        assert info.value.reason == "date outside era"


# --- parse_jst_datetime ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025/04/04 15:41", datetime(2025, 4, 4, 15, 41, tzinfo=JST)),
        ("2025/4/4 9:05", datetime(2025, 4, 4, 9, 5, tzinfo=JST)),
        ("2025/04/04 15:41:07", datetime(2025, 4, 4, 15, 41, 7, tzinfo=JST)),
        ("2025-05-04 09:00:00", datetime(2025, 5, 4, 9, 0, tzinfo=JST)),
        ("2025-05-04T09:00:00", datetime(2025, 5, 4, 9, 0, tzinfo=JST)),
        ("2025-06-02T10:15:00+09:00", datetime(2025, 6, 2, 10, 15, tzinfo=JST)),
        ("2025-06-02T10:15:00+0900", datetime(2025, 6, 2, 10, 15, tzinfo=JST)),
        ("2025-06-02T01:15:00Z", datetime(2025, 6, 2, 10, 15, tzinfo=JST)),
        ("2025-06-02T01:15:00+00:00", datetime(2025, 6, 2, 10, 15, tzinfo=JST)),
        ("2025-06-01T20:15:00-05:00", datetime(2025, 6, 2, 10, 15, tzinfo=JST)),
        ("2025-06-02T10:15:00.250+09:00", datetime(2025, 6, 2, 10, 15, 0, 250000, tzinfo=JST)),
        ("2025-06-02 10:15:00 JST", datetime(2025, 6, 2, 10, 15, tzinfo=JST)),
        ("２０２５／０４／０４　１５：４１", datetime(2025, 4, 4, 15, 41, tzinfo=JST)),
        (" 2025/04/04 15:41 ", datetime(2025, 4, 4, 15, 41, tzinfo=JST)),
        # plain dates mean 00:00 Japan time
        ("2025-06-01", datetime(2025, 6, 1, tzinfo=JST)),
        ("2025/06/01", datetime(2025, 6, 1, tzinfo=JST)),
        ("20250601", datetime(2025, 6, 1, tzinfo=JST)),
        ("R7.6.1", datetime(2025, 6, 1, tzinfo=JST)),
        ("令和７年６月１日", datetime(2025, 6, 1, tzinfo=JST)),
    ],
)
def test_parse_jst_datetime_accepts_feed_timestamps(text: str, expected: datetime) -> None:
    """Every timestamp spelling in the feeds reads as the right instant, expressed in Japan time."""
    result = parse_jst_datetime(text)
    assert result == expected
    assert result.tzinfo is JST
    assert result.utcoffset() == timedelta(hours=9)
    assert (result.year, result.month, result.day, result.hour, result.minute) == (
        expected.year,
        expected.month,
        expected.day,
        expected.hour,
        expected.minute,
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty date"),
        ("2025/04/04 24:00", "impossible time"),
        ("2025/04/04 12:60", "impossible time"),
        ("2025/04/04 12:00:61", "impossible time"),
        ("2025-06-02T10:15:00+25:00", "impossible time"),
        ("2025/02/30 12:00", "impossible date"),
        ("2025/02/30", "impossible date"),
        ("H31.5.1", "date outside era"),
        ("yesterday", "unrecognised datetime format"),
        ("2025/04/04 15", "unrecognised datetime format"),
        ("2025/04-04 15:41", "unrecognised datetime format"),
    ],
)
def test_parse_jst_datetime_rejects_bad_timestamps(text: str, reason: str) -> None:
    """A bad timestamp raises InvalidDate with a fixed reason naming what is wrong."""
    with pytest.raises(InvalidDate) as info:
        parse_jst_datetime(text)
    assert info.value.reason == reason


fixed_offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@given(st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30), timezones=fixed_offsets))
def test_parse_jst_datetime_round_trips_isoformat(dt: datetime) -> None:
    """For any aware datetime, parsing its ISO 8601 text gives the same instant, in JST."""
    result = parse_jst_datetime(dt.isoformat())
    assert result == dt
    assert result.tzinfo is JST


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9999, 12, 31)))
def test_parse_jst_datetime_reads_naive_times_as_japan_time(dt: datetime) -> None:
    """A timestamp without an offset is Japan time: wall-clock fields are kept, the offset is +09:00."""
    dt = dt.replace(microsecond=0)
    result = parse_jst_datetime(dt.strftime("%Y/%m/%d %H:%M:%S"))
    assert result == dt.replace(tzinfo=JST)
    assert result.tzinfo is JST


@given(st.dates())
def test_jst_midnight_is_start_of_day_in_japan(d: date) -> None:
    """jst_midnight gives 00:00 of that day at +09:00, i.e. 15:00 UTC of the day before."""
    result = jst_midnight(d)
    assert result.tzinfo is JST
    assert (result.date(), result.hour, result.minute, result.second, result.microsecond) == (d, 0, 0, 0, 0)
    if d > date.min:
        assert result.astimezone(UTC).replace(tzinfo=None) == datetime(d.year, d.month, d.day) - timedelta(hours=9)


def test_jst_constant_is_named_utc_plus_nine() -> None:
    """JST is a fixed +09:00 offset named "JST"."""
    assert JST.utcoffset(None) == timedelta(hours=9)
    assert JST.tzname(None) == "JST"


def test_wareki_is_pure_stdlib() -> None:
    """schemas.wareki imports only the standard library and schemas.digits (pure), no I/O or other packages."""
    source = Path(__file__).resolve().parents[2] / "schemas" / "wareki.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {"__future__", "calendar", "re", "dataclasses", "datetime", "typing", "schemas.digits"}


# --- kanji numerals, era letters with dots, trailing 生 / (歳), other digits (issue 11) -------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("令和元年五月一日", date(2019, 5, 1)),
        ("平成三十一年四月三十日", date(2019, 4, 30)),
        ("昭和六十四年一月七日", date(1989, 1, 7)),
        ("平成元年一月八日", date(1989, 1, 8)),
        ("昭和十九年五月三日", date(1944, 5, 3)),
        ("大正十五年十二月二十四日", date(1926, 12, 24)),
        ("平成二〇年一月八日", date(2008, 1, 8)),
        ("一九四四年五月三日", date(1944, 5, 3)),
        ("S.64.1.7", date(1989, 1, 7)),
        ("H.1.1.8", date(1989, 1, 8)),
        ("Ｓ．６４．１．７", date(1989, 1, 7)),
        ("s.19.5.3", date(1944, 5, 3)),
        ("昭和19年5月3日生", date(1944, 5, 3)),
        ("昭和19年5月3日生まれ", date(1944, 5, 3)),
        ("S19.5.3 生", date(1944, 5, 3)),
        ("S19.5.3(歳)", date(1944, 5, 3)),
        ("S19.5.3（80歳）", date(1944, 5, 3)),
        ("昭和十九年五月三日生（満80歳）", date(1944, 5, 3)),
        ("1944/05/03 生", date(1944, 5, 3)),
        ("١٩٤٤/٠٥/٠٣", date(1944, 5, 3)),  # Arabic-Indic digits
        ("S१९.५.३", date(1944, 5, 3)),  # Devanagari digits
    ],
)
def test_parse_date_reads_kanji_numerals_dotted_era_letters_and_trailers(text: str, expected: date) -> None:
    """Kanji numerals (元, 十, 二十, 三十一, 〇), S.64.1.7, a trailing 生 or (歳), and any Unicode digits parse."""
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("昭和十十年五月三日", "unrecognised date format"),  # not a kanji number
        ("昭和十九年五月", "unrecognised date format"),
        ("S19.5.3生生", "unrecognised date format"),
        ("S19.5.3（歳）生", "unrecognised date format"),  # age before 生: not a spelling the feeds use
        ("昭和19年5月3日頃", "unrecognised date format"),
        ("生", "unrecognised date format"),
        ("(歳)", "unrecognised date format"),
        ("S..64.1.7", "unrecognised date format"),
        ("S.64.1.8", "date outside era"),
        ("平成三十一年五月一日", "date outside era"),
        ("令和〇年五月一日", "date outside era"),
        ("昭和十九年二月三十日", "impossible date"),
        ("S19.5.3①", "unrecognised date format"),  # circled digits are not decimal digits
    ],
)
def test_parse_date_still_rejects_everything_else_with_a_reason(text: str, reason: str) -> None:
    """Spellings outside the accepted ones keep failing with a fixed reason, never the input."""
    with pytest.raises(InvalidDate) as info:
        parse_date(text)
    assert info.value.reason == reason


_KANJI = "〇一二三四五六七八九"


def kanji_number(n: int) -> str:
    """1 → 一, 10 → 十, 14 → 十四, 20 → 二十, 31 → 三十一 (how dates are written in kanji)."""
    tens, ones = divmod(n, 10)
    return ("" if tens == 0 else "十" if tens == 1 else _KANJI[tens] + "十") + (_KANJI[ones] if ones else "")


def kanji_digits(n: int) -> str:
    """20 → 二〇, 1944 → 一九四四 (digit by digit)."""
    return "".join(_KANJI[int(c)] for c in str(n))


def _kanji_era_year(n: int) -> str:
    return "元" if n == 1 else kanji_number(n)


KANJI_FORMATTERS: list[Callable[[date], str]] = [
    lambda d: f"{era_of(d).kanji}{_kanji_era_year(era_year(d))}年{kanji_number(d.month)}月{kanji_number(d.day)}日",
    lambda d: f"{era_of(d).kanji}{kanji_number(era_year(d))}年{kanji_number(d.month)}月{kanji_number(d.day)}日生",
    lambda d: f"{era_of(d).kanji}{kanji_digits(era_year(d))}年{kanji_number(d.month)}月{kanji_number(d.day)}日",
    lambda d: f"{era_of(d).letter}.{era_year(d)}.{d.month}.{d.day}",
    lambda d: full_width(f"{era_of(d).letter}.{era_year(d)}.{d.month}.{d.day}"),
    lambda d: f"{era_of(d).kanji}{era_year(d)}年{d.month}月{d.day}日生",
    lambda d: f"{era_of(d).letter}{era_year(d)}.{d.month}.{d.day}（{d.year % 90 + 5}歳）",
    lambda d: f"{era_of(d).kanji}{_kanji_era_year(era_year(d))}年{kanji_number(d.month)}月{kanji_number(d.day)}日生"
    + "(歳)",
]


@given(era_dates, st.sampled_from(KANJI_FORMATTERS))
def test_parse_date_round_trips_kanji_numerals_dotted_letters_and_trailers(
    d: date, fmt: Callable[[date], str]
) -> None:
    """For any date in an era and any kanji-numeral / S.64.1.7 / 生 / (歳) spelling, parse_date(format(d)) == d."""
    assert parse_date(fmt(d)) == d


@given(era_dates, st.sampled_from(KANJI_FORMATTERS), st.sampled_from(["頃", "?", "生生", "歳", "(才)", "まで", "迄"]))
def test_parse_date_rejects_any_spelling_with_an_unknown_trailer(
    d: date, fmt: Callable[[date], str], tail: str
) -> None:
    """An accepted spelling followed by anything else is refused with a fixed reason (nothing guessed)."""
    with pytest.raises(InvalidDate) as info:
        parse_date(fmt(d) + tail)
    assert str(info.value) in FIXED_REASONS


@given(st.integers(min_value=1, max_value=99))
def test_kanji_numbers_both_styles_read_back(n: int) -> None:
    """Every era year 1..99 in 十-style and digit-by-digit kanji reads back as that year (平成 has 1..31)."""
    for text in (kanji_number(n), kanji_digits(n)):
        if n <= 31:
            assert parse_date(f"平成{text}年二月一日") == date(1988 + n, 2, 1)
        else:
            with pytest.raises(InvalidDate) as info:
                parse_date(f"平成{text}年二月一日")
            assert info.value.reason == "date outside era"
