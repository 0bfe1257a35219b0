"""Column headers tsunagu never reads: 個人番号 (マイナンバー) and 住民票コード.

The law forbids this program to collect them, so a CSV column whose header names one is dropped
when the header is read, before any cell of a row is kept (:func:`connectors.csv_export.read_csv`),
and a mapping that points a column at one is refused when it is loaded.
"""

from __future__ import annotations

import re
import unicodedata

#: words that mark a forbidden column, compared after NFKC and with spaces and separators removed
FORBIDDEN_WORDS: tuple[str, ...] = ("個人番号", "マイナンバー", "住民票コード", "MYNUMBER", "JUMINHYOCODE")

_NOISE = re.compile(r"[\s_\-・()（）\[\]【】]+")


def is_forbidden_header(header: str) -> bool:
    """True when a header names a 個人番号 or 住民票コード column (any width, spacing or case)."""
    key = _NOISE.sub("", unicodedata.normalize("NFKC", header)).upper()
    return any(word in key for word in FORBIDDEN_WORDS)
