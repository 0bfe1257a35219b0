"""Digits as ASCII: every code (宛名番号, 世帯番号, phone) and date the feeds write in any Unicode digits.

Pure, standard library only. ``\\d`` in a Python ``str`` pattern, and in pydantic's (Rust) patterns,
matches *any* Unicode decimal digit (full-width ``１``, Arabic-Indic ``١``, Devanagari ``१`` …), so a
number written in other digits would pass a ``\\d{10}`` check unchanged and never equal the same
number in ASCII (``registry:１０５５…`` ≠ ``registry:1055…``). Everything that validates or keys a
code goes through :func:`ascii_digits` first and then checks ``[0-9]``.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

__all__ = ["ascii_digits", "to_ascii_digits"]

# A decimal digit (Unicode category Nd) that is not ASCII 0-9.
_OTHER_DIGIT_RE: Final = re.compile(r"(?![0-9])\d")
_SPACES_RE: Final = re.compile(r"\s+")
_ASCII_CODE_RE: Final = re.compile(r"[0-9]+")


def to_ascii_digits(text: str) -> str:
    """Every Unicode decimal digit as its ASCII digit (``１２`` → ``12``, ``١٢`` → ``12``); nothing else changes."""
    return _OTHER_DIGIT_RE.sub(lambda m: str(unicodedata.decimal(m.group())), text)


def ascii_digits(value: object) -> str | None:
    """A code of digits as ASCII digits, or None when it is not one.

    Accepts ``str`` (and ``int``, as spreadsheets export numbers): surrounding and inner
    whitespace of any width is removed, and every Unicode decimal digit becomes its ASCII digit
    (``１０５５ ０００ ００１`` → ``1055000001``). Returns None for anything that then still holds a
    character other than 0-9 (letters, dashes, circled or superscript digits such as ``①``/``²``,
    which are not decimal digits), for an empty value, and for other types. Callers turn None into
    a rejection with a reason that names the field, never the value.
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = _SPACES_RE.sub("", to_ascii_digits(str(value)))
    return text if _ASCII_CODE_RE.fullmatch(text) else None
