"""Dates and times as the agency feeds spell them: 和暦 (Japanese era) and 西暦, in Japan time.

Pure functions, no I/O. Every feed writes dates differently (``S19.05.03``, ``S.64.1.7``,
``昭和19年5月3日``, ``昭和十九年五月三日生``, ``H2.1.5``, ``令和元年5月1日``, ``1944/05/03``, ``19440503``,
``1944-05-03``, full-width or other Unicode digits anywhere); :func:`parse_date` turns any of them
into one :class:`datetime.date`, and
:func:`parse_jst_datetime` turns the feeds' timestamps into aware datetimes in Japan time.

Errors are :class:`InvalidDate` with a fixed reason and never the input: a date that fails to
parse is usually a birth date, which is personal data and must not reach logs or dead letters.

Era spans (first and last Gregorian day of each era) follow the official changes of era. Dates
in 明治 1-5 are taken as Gregorian even though Japan used the lunisolar calendar until 明治5年12月2日;
the feeds only ever record such dates for very old residents, converted the same way.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Final

from schemas.digits import to_ascii_digits

__all__ = [
    "ERAS",
    "JST",
    "Era",
    "InvalidDate",
    "jst_midnight",
    "parse_date",
    "parse_jst_datetime",
]

JST: Final = timezone(timedelta(hours=9), "JST")
"""Japan Standard Time, UTC+09:00 (Japan has no daylight saving time)."""

# Fixed reasons: the only texts an InvalidDate ever carries.
EMPTY: Final = "empty date"
UNRECOGNISED: Final = "unrecognised date format"
UNRECOGNISED_DATETIME: Final = "unrecognised datetime format"
IMPOSSIBLE: Final = "impossible date"
IMPOSSIBLE_TIME: Final = "impossible time"
OUTSIDE_ERA: Final = "date outside era"
_REASONS: Final = frozenset({EMPTY, UNRECOGNISED, UNRECOGNISED_DATETIME, IMPOSSIBLE, IMPOSSIBLE_TIME, OUTSIDE_ERA})


class InvalidDate(ValueError):
    """A date or time that cannot be read. The message is one fixed reason, never the input."""

    reason: str

    def __init__(self, reason: str) -> None:
        if reason not in _REASONS:  # guard against a future caller passing the input by mistake
            reason = UNRECOGNISED
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Era:
    """One Japanese era: its letter, its kanji name and its first and last day (inclusive)."""

    letter: str
    kanji: str
    first: date
    last: date | None  # None: the current era

    def to_gregorian_year(self, era_year: int) -> int:
        return self.first.year + era_year - 1

    def contains(self, d: date) -> bool:
        return self.first <= d and (self.last is None or d <= self.last)


ERAS: Final[tuple[Era, ...]] = (
    Era("M", "明治", date(1868, 1, 25), date(1912, 7, 29)),
    Era("T", "大正", date(1912, 7, 30), date(1926, 12, 24)),
    Era("S", "昭和", date(1926, 12, 25), date(1989, 1, 7)),
    Era("H", "平成", date(1989, 1, 8), date(2019, 4, 30)),
    Era("R", "令和", date(2019, 5, 1), None),
)

_ERA_BY_TOKEN: Final[dict[str, Era]] = {}
for _era, _abbrev, _square in zip(ERAS, "明大昭平令", "㍾㍽㍼㍻㋿", strict=True):
    _ERA_BY_TOKEN[_era.letter] = _era
    _ERA_BY_TOKEN[_era.letter.lower()] = _era
    _ERA_BY_TOKEN[_era.kanji] = _era
    _ERA_BY_TOKEN[_abbrev] = _era
    _ERA_BY_TOKEN[_square] = _era

_ERA_TOKEN: Final = "|".join(sorted((re.escape(t) for t in _ERA_BY_TOKEN), key=len, reverse=True))

# Full-width ASCII (U+FF01..U+FF5E) to ASCII, the ideographic space to a space, and the dash
# characters that are never anything but a dash to "-".
_WIDTH: Final[dict[int, str]] = {cp: chr(cp - 0xFEE0) for cp in range(0xFF01, 0xFF5F)}
_WIDTH[0x3000] = " "
for _dash in "\u2010\u2011\u2012\u2013\u2212\u2043\ufe63":
    _WIDTH[ord(_dash)] = "-"
# Characters that are a long-vowel mark or a line in kana text but a dash between digits.
_DIGIT_DASH_RE: Final = re.compile(r"(?<=[0-9])[\u30fc\uff70\u2014\u2015\u2500\u2501](?=[0-9])")

_ERA_RE: Final = re.compile(
    rf"(?P<era>{_ERA_TOKEN})\s*\.?\s*(?P<y>[0-9]{{1,2}}|元)\s*"
    r"(?:(?P<sep>[./\-])\s*(?P<m>[0-9]{1,2})\s*(?P=sep)\s*(?P<d>[0-9]{1,2})"
    r"|年\s*(?P<m2>[0-9]{1,2})\s*月\s*(?P<d2>[0-9]{1,2})\s*日?)"
)
_ERA_COMPACT_RE: Final = re.compile(r"(?P<era>[MTSHRmtshr])(?P<y>[0-9]{2})(?P<m>[0-9]{2})(?P<d>[0-9]{2})")
_WESTERN_RE: Final = re.compile(
    r"(?P<y>[0-9]{4})\s*"
    r"(?:(?P<sep>[./\-])\s*(?P<m>[0-9]{1,2})\s*(?P=sep)\s*(?P<d>[0-9]{1,2})"
    r"|年\s*(?P<m2>[0-9]{1,2})\s*月\s*(?P<d2>[0-9]{1,2})\s*日?)"
)
_WESTERN_COMPACT_RE: Final = re.compile(r"(?P<y>[0-9]{4})(?P<m>[0-9]{2})(?P<d>[0-9]{2})")
_DATETIME_RE: Final = re.compile(
    r"(?P<y>[0-9]{4})(?P<sep>[./\-])(?P<mo>[0-9]{1,2})(?P=sep)(?P<d>[0-9]{1,2})"
    r"(?:[Tt]|\s+)(?P<h>[0-9]{1,2}):(?P<mi>[0-9]{2})"
    r"(?::(?P<s>[0-9]{2})(?:[.,](?P<frac>[0-9]{1,9}))?)?"
    r"\s*(?P<tz>[Zz]|JST|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)


# Kanji numerals as the feeds write them in dates: 十-style (十, 十二, 二十, 三十一) or digit by digit
# (二〇, 一九四四). Any other run of numeral kanji (十十, 三十三十) is left alone, so it stays unrecognised.
_KANJI_DIGIT: Final[dict[str, int]] = {ch: n for n, ch in enumerate("〇一二三四五六七八九")}
_KANJI_RUN_RE: Final = re.compile(r"[〇一二三四五六七八九十]+")
_KANJI_TENS_RE: Final = re.compile(r"(?P<tens>[二三四五六七八九])?十(?P<ones>[一二三四五六七八九])?")
_KANJI_DIGITS_RE: Final = re.compile(r"[〇一二三四五六七八九]+")
# What may follow a birth date: 生 / 生まれ, and an age in parentheses, (歳), （80歳）, (満80歳).
_TRAILER_RE: Final = re.compile(r"\s*(?:生まれ|生)?\s*(?:[(（]\s*(?:満\s*)?[0-9]{0,3}\s*歳\s*[)）])?$")


def _kanji_numeral(m: re.Match[str]) -> str:
    run = m.group()
    tens = _KANJI_TENS_RE.fullmatch(run)
    if tens is not None:
        return str(_KANJI_DIGIT[tens["tens"] or "一"] * 10 + _KANJI_DIGIT[tens["ones"] or "〇"])
    if _KANJI_DIGITS_RE.fullmatch(run):
        return "".join(str(_KANJI_DIGIT[ch]) for ch in run)
    return run


def _clean(text: str) -> str:
    """Narrow full-width ASCII, every Unicode digit and kanji numerals to ASCII, unify dashes, strip."""
    s = _KANJI_RUN_RE.sub(_kanji_numeral, to_ascii_digits(text.translate(_WIDTH)))
    return _DIGIT_DASH_RE.sub("-", s).strip()


def _without_trailer(text: str) -> str:
    """The date without a trailing 生 / 生まれ, an age in parentheses, or both (in that order), once."""
    return _TRAILER_RE.sub("", text, count=1)


def _real_date(year: int, month: int, day: int) -> date:
    """The calendar date, or InvalidDate("impossible date") raised outside any except block."""
    if not (1 <= year <= 9999 and 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        raise InvalidDate(IMPOSSIBLE)
    return date(year, month, day)


def _era_date(era: Era, era_year: int, month: int, day: int) -> date:
    if era_year < 1:
        raise InvalidDate(OUTSIDE_ERA)
    d = _real_date(era.to_gregorian_year(era_year), month, day)
    if not era.contains(d):
        raise InvalidDate(OUTSIDE_ERA)
    return d


def parse_date(text: str) -> date:
    """Read a date in any spelling the feeds use.

    和暦: ``S19.05.03``, ``S19.5.3``, ``s19.5.3``, ``S.64.1.7``, ``H2/1/5``, ``R6-04-01``,
    ``S190503``, ``昭和19年5月3日``, ``令和元年5月1日``, ``昭19.5.3``, ``㍼19年5月3日`` (eras 明治 to
    令和), also in kanji numerals (``令和元年五月一日``, ``平成三十一年四月三十日``, ``平成二〇年一月八日``).
    西暦: ``1944/05/03``, ``1944/5/3``, ``1944-05-03``, ``1944.05.03``, ``19440503``,
    ``1944年5月3日``. Full-width and other Unicode digits, letters and punctuation are accepted
    anywhere, surrounding whitespace is ignored, and a trailing ``生`` / ``生まれ`` or an age in
    parentheses (``(歳)``, ``（80歳）``) is allowed (the age is not checked: it depends on the day it
    was written).

    Raises :class:`InvalidDate` with reason ``"empty date"``, ``"unrecognised date format"``,
    ``"impossible date"`` (no such calendar day, e.g. February 30) or ``"date outside era"``
    (era year 0, or a day before the era began or after it ended, e.g. ``H31.5.1``).
    """
    if not isinstance(text, str):
        raise InvalidDate(UNRECOGNISED)
    s = _clean(text)
    if not s:
        raise InvalidDate(EMPTY)
    s = _without_trailer(s)

    m = _ERA_RE.fullmatch(s) or _ERA_COMPACT_RE.fullmatch(s)
    if m is not None:
        era = _ERA_BY_TOKEN[m["era"]]
        year_text = m["y"]
        era_year = 1 if year_text == "元" else int(year_text)
        month = m["m"] or m.groupdict().get("m2")
        day = m["d"] or m.groupdict().get("d2")
        assert month is not None and day is not None
        return _era_date(era, era_year, int(month), int(day))

    m = _WESTERN_RE.fullmatch(s) or _WESTERN_COMPACT_RE.fullmatch(s)
    if m is not None:
        month = m["m"] or m.groupdict().get("m2")
        day = m["d"] or m.groupdict().get("d2")
        assert month is not None and day is not None
        return _real_date(int(m["y"]), int(month), int(day))

    raise InvalidDate(UNRECOGNISED)


def jst_midnight(d: date) -> datetime:
    """00:00 of the given day in Japan time (how the feeds' date-only values are meant)."""
    return datetime(d.year, d.month, d.day, tzinfo=JST)


def _offset(tz: str) -> timezone:
    if tz in ("Z", "z"):
        return UTC
    if tz == "JST":
        return JST
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or "0")
    if hours > 23 or minutes > 59:
        raise InvalidDate(IMPOSSIBLE_TIME)
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def parse_jst_datetime(text: str) -> datetime:
    """Read a feed timestamp as an aware datetime in Japan time (tzinfo is :data:`JST`).

    Accepts ``YYYY/MM/DD HH:MM``, ``YYYY/MM/DD HH:MM:SS``, ``YYYY-MM-DD HH:MM:SS``, ISO 8601
    (``2025-06-02T10:15:00+09:00``, ``…Z``, fractions of a second) and plain dates in any
    spelling :func:`parse_date` accepts (they mean 00:00 of that day). A time without an offset
    is Japan time; a time with another offset is converted to Japan time.

    Raises :class:`InvalidDate` (fixed reason, never the input).
    """
    if not isinstance(text, str):
        raise InvalidDate(UNRECOGNISED_DATETIME)
    s = _clean(text)
    if not s:
        raise InvalidDate(EMPTY)
    m = _DATETIME_RE.fullmatch(s)
    if m is None:
        try:
            return jst_midnight(parse_date(s))
        except InvalidDate as exc:
            reason = UNRECOGNISED_DATETIME if exc.reason == UNRECOGNISED else exc.reason
        raise InvalidDate(reason)  # outside the except block: no chained context

    d = _real_date(int(m["y"]), int(m["mo"]), int(m["d"]))
    hour, minute, second = int(m["h"]), int(m["mi"]), int(m["s"] or "0")
    if hour > 23 or minute > 59 or second > 59:
        raise InvalidDate(IMPOSSIBLE_TIME)
    micro = int((m["frac"] or "0")[:6].ljust(6, "0"))
    tz = JST if m["tz"] is None else _offset(m["tz"])
    return datetime(d.year, d.month, d.day, hour, minute, second, micro, tzinfo=tz).astimezone(JST)
