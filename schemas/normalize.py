"""Comparable keys for matching the same person across agency feeds (names, readings, addresses, phones).

Pure functions, no I/O. The feeds spell the same resident differently: family and given name
separated by a full-width space, a half-width space or nothing; readings in half-width
katakana (``ﾀｶﾊｼ ﾖｼｵ``), full-width katakana or hiragana, from old systems without small kana
(``ｼﾖｳｼﾞ`` for ``ｼｮｳｼﾞ``); addresses as ``中央一丁目2番3号``, ``中央1-2-3`` or ``中央１－２－３``, with or
without prefecture and city; phone numbers with or without hyphens, in either width. Each
``*_key`` function maps all spellings of one value to one string, so keys can be compared
with ``==``. A key match is a *candidate* for identity, never proof of it.

Library choice:

* **jaconv** does the kana work: half-width to full-width katakana with the half-width
  dakuten/handakuten combined (``ｶﾞ`` → ``ガ``) and hiragana to katakana. Its conversions are
  explicit tables and each call names what it converts (kana, ASCII, digits), so kanji are
  never touched. It is pure Python with no dependencies.
* **neologdn** is *not* used: it is built for search-engine text and removes the space
  between two Japanese words, i.e. between family and given name, which :func:`split_name`
  needs. It also applies rules (repeated long vowels, tildes) we do not want to run over
  legal names.
* **mojimoji** is not needed: it only converts widths (fast, in C), which jaconv already does
  for the few hundred characters of a record, and a second library would be a second set of
  tables to keep consistent.
* ``unicodedata.normalize("NFKC")`` is *not* applied to names or addresses: it rewrites far more
  than widths (``㈱`` → ``(株)``, ``ｶﾞ`` spacing marks, ``⼭`` radicals → kanji). Widths are changed
  only for ASCII, digits, spaces and kana.
* Name *keys* (never the stored name) are in NFC and without variation selectors: a CJK
  compatibility ideograph (U+F900–FAFF, U+2F800–2FA1F: 都 U+FA26, 福 U+FA1B, 神 U+FA19 …) is
  canonically the same character as its unified ideograph, and an ideographic variation
  sequence (渡邉 + U+E0110, 葛 + U+E0100) names a glyph of the same character. Registry systems
  that keep 外字 hold exactly these; the agencies type the plain character.
* Old and variant forms (旧字体/異体字: 郞→郎, 曾→曽, 濵→浜, 齋→斎) are folded by :func:`fold_kanji`
  with :data:`KANJI_VARIANTS`, read from ``schemas/data/kanji_variants.tsv``. That table is
  derived at build time from **KANJIDIC2** (© EDRDG, Creative Commons Attribution-ShareAlike
  licence, as shipped in the PyPI package ``jamdict-data``) by
  ``deploy/tools/build_kanji_variants.py``; nothing is fetched at run time. A 常用漢字 never
  folds, so distinct legal names (斎藤/斉藤) keep distinct folded keys; :func:`name_agreement`
  tells an exact match from a folded one for scoring.
* Private-use characters (U+E000–F8FF, planes 15–16: a registry's own 外字 codes) never equal
  any other character: they are kept as they are in every key unless a municipality-supplied
  mapping (:func:`parse_private_use_map`) says which standard character each one is.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from importlib import resources
from types import MappingProxyType
from typing import Final, Literal

import jaconv

from schemas.digits import to_ascii_digits

__all__ = [
    "KANJI_VARIANTS",
    "NameAgreement",
    "SexValue",
    "address_key",
    "canonical_name",
    "fold_kanji",
    "has_private_use",
    "is_private_use",
    "kana_key",
    "name_agreement",
    "name_key",
    "nfkc_digits",
    "parse_private_use_map",
    "phone_key",
    "sex_from_label",
    "split_name",
]

SexValue = Literal["male", "female", "unknown", "not_stated"]
"""The values of schemas.codes.Sex, as plain strings (this module imports no project package)."""

# --- widths and dashes --------------------------------------------------------------------

# Full-width ASCII (U+FF01..U+FF5E) to ASCII, the ideographic space to a space, and the
# characters that are always a dash (hyphen, non-breaking hyphen, figure dash, en dash, minus
# sign, hyphen bullet, small hyphen-minus) to "-". The full-width hyphen-minus － (U+FF0D, the
# CP932 "minus") is in the full-width ASCII block.
_WIDTH: Final[dict[int, str]] = {cp: chr(cp - 0xFEE0) for cp in range(0xFF01, 0xFF5F)}
_WIDTH[0x3000] = " "
for _dash in "\u2010\u2011\u2012\u2013\u2212\u2043\ufe63":
    _WIDTH[ord(_dash)] = "-"

# Characters that are a long-vowel mark (ー, ｰ) or a rule (—, ―, ─, ━) in kana text but are
# typed as a dash between digits (CP932 ― is 0x815C). Only between two digits do they become "-".
_DIGIT_DASH_RE: Final = re.compile(r"(?<=[0-9])[\u30fc\uff70\u2014\u2015\u2500\u2501](?=[0-9])")
_SPACE_RE: Final = re.compile(r"\s+")


def nfkc_digits(text: str) -> str:
    """Narrow full-width ASCII (digits, letters, punctuation) and spaces, and unify dashes.

    ``０７３－５１８１`` → ``073-5181``; ``Ｓ１９`` → ``S19``; the ideographic space becomes a
    space. Dash variants (‐ ‑ ‒ – − －) become ``-``; the long-vowel mark ``ー`` (and ``ｰ``, ``―``,
    ``─``) becomes ``-`` only between two digits, so kana such as ``ユーコ`` keep it. Despite the
    name, NFKC itself is not applied: kana and kanji are left exactly as they are. Decimal digits of
    any script (Arabic-Indic ``١``, Devanagari ``१`` …) become ASCII digits too.
    """
    return _DIGIT_DASH_RE.sub("-", to_ascii_digits(text.translate(_WIDTH)))


# --- kana ------------------------------------------------------------------------------------

_VOICED: Final = "\u3099"  # combining dakuten
_SEMI_VOICED: Final = "\u309a"  # combining handakuten
_MARKS: Final[dict[int, str]] = {
    0x309B: _VOICED,  # ゛ spacing dakuten
    0x309C: _SEMI_VOICED,  # ゜ spacing handakuten
    0xFF9E: _VOICED,  # ﾞ half-width dakuten left alone by jaconv (after a kana it cannot voice)
    0xFF9F: _SEMI_VOICED,  # ﾟ
}
_SMALL_KANA: Final[dict[int, str]] = {
    ord(s): b for s, b in zip("ァィゥェォッャュョヮヵヶ", "アイウエオツヤユヨワカケ", strict=True)
}
_KANA_SEPARATORS_RE: Final = re.compile(r"[\s・]+")


def _compose_marks(text: str) -> str:
    """Combine a kana and a following combining (han)dakuten into one character (カ + ゙ → ガ).

    Done by hand rather than with NFC, which would also rewrite CJK compatibility ideographs.
    A mark that cannot combine is kept as it is.
    """
    out: list[str] = []
    for ch in text:
        if ch in (_VOICED, _SEMI_VOICED) and out:
            composed = unicodedata.normalize("NFC", out[-1] + ch)
            if len(composed) == 1:
                out[-1] = composed
                continue
        out.append(ch)
    return "".join(out)


def _widen_kana(text: str) -> str:
    """Half-width katakana to full-width with (han)dakuten combined; nothing else changes."""
    widened: str = jaconv.h2z(text, kana=True, ascii=False, digit=False)
    return _compose_marks(widened.translate(_MARKS))


def kana_key(text: str) -> str:
    """One comparable form of a reading (フリガナ): full-width katakana, no spaces, no small kana.

    Accepts half-width katakana (``ﾀｶﾊｼ ﾖｼｵ``), full-width katakana or hiragana, with or
    without a space of either width (or a ``・``) between the parts. Small kana are folded to
    large ones (ァィゥェォッャュョヮヵヶ → アイウエオツヤユヨワカケ) because older systems have no small
    kana: ``ｼﾖｳｼﾞ`` and ``ショウジ`` both give ``シヨウジ``. The long-vowel mark ー is kept.
    Idempotent: ``kana_key(kana_key(x)) == kana_key(x)``.
    """
    s: str = jaconv.h2z(text.translate(_WIDTH), kana=True, ascii=False, digit=False)
    s = jaconv.hira2kata(s.translate(_MARKS))
    s = _KANA_SEPARATORS_RE.sub("", s).translate(_SMALL_KANA)
    return _compose_marks(s)


# --- names -----------------------------------------------------------------------------------

_NAME_SPLIT_RE: Final = re.compile(r"\s+")


def split_name(text: str) -> tuple[str, str | None]:
    """Split a name into (family, given) on the first space of either width.

    Runs of spaces count as one separator and the parts are stripped: ``"加藤　正"`` and
    ``"加藤 　正"`` give ``("加藤", "正")``. Without a separator the whole name is the family part
    and the given name is unknown: ``"加藤正"`` gives ``("加藤正", None)`` (the border between
    family and given name cannot be guessed from kanji).
    """
    parts = _NAME_SPLIT_RE.split(text.strip(), maxsplit=1)
    if len(parts) == 1:
        return parts[0], None
    return parts[0], parts[1]


# Variation selectors: VS1–VS16 (U+FE00–FE0F, standardized variants) and VS17–VS256
# (U+E0100–E01EF, ideographic variation sequences such as 渡邉 + U+E0110).
_VARIATION_SELECTORS: Final[dict[int, None]] = {
    **dict.fromkeys(range(0xFE00, 0xFE10)),
    **dict.fromkeys(range(0xE0100, 0xE01F0)),
}


def is_private_use(ch: str) -> bool:
    """True for a private-use code point (U+E000–F8FF, U+F0000–FFFFD, U+100000–10FFFD): a 外字 code."""
    return unicodedata.category(ch) == "Co"


def has_private_use(text: str) -> bool:
    """True when the text holds a private-use character (a 外字 code no standard says the meaning of)."""
    return any(is_private_use(ch) for ch in text)


def parse_private_use_map(text: str) -> dict[str, str]:
    """Read a municipality's 外字 table: one ``code<TAB>character`` per line, ``#`` starts a comment.

    ``code`` is the private-use character itself or ``U+E001``; ``character`` is the standard
    character(s) it stands for (``髙``, or ``渡邉`` with its variation selector, which keys drop).
    Raises ``ValueError`` naming the line number for a malformed line, a code that is not private
    use, a target that is empty or itself private use, or a code given twice.
    """
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise ValueError(f"外字 table line {n}: expected code<TAB>character")
        code, target = parts[0].strip(), parts[1].strip()
        if re.fullmatch(r"[Uu]\+[0-9A-Fa-f]{4,6}", code):
            code = chr(int(code[2:], 16))
        if len(code) != 1 or not is_private_use(code):
            raise ValueError(f"外字 table line {n}: the code is not a private-use character")
        if not target or has_private_use(target):
            raise ValueError(f"外字 table line {n}: the character must be standard (not private use)")
        if code in out:
            raise ValueError(f"外字 table line {n}: code given twice")
        out[code] = target
    return out


_MUNICIPALITY_PRIVATE_USE: dict[str, str] = {}


def install_private_use_map(mapping: Mapping[str, str]) -> None:
    """Make a municipality's 外字 table (:func:`parse_private_use_map`) the default of every key function.

    Called once at start-up from the settings (``TSUNAGU_PRIVATE_USE_MAP``); an empty mapping removes it.
    """
    _MUNICIPALITY_PRIVATE_USE.clear()
    _MUNICIPALITY_PRIVATE_USE.update(mapping)


def canonical_name(text: str, private_use: Mapping[str, str] | None = None) -> str:
    """The name as one code-point sequence per character: 外字 mapped, NFC, variation selectors dropped.

    * ``private_use`` (from :func:`parse_private_use_map`; by default the table installed with
      :func:`install_private_use_map`) replaces a registry's 外字 codes by the standard characters
      they stand for; a private-use character it does not name stays as it is,
      so it never equals any other character and never disappears from the name;
    * NFC turns CJK compatibility ideographs into their unified ideographs (都 U+FA26 → 都 U+90FD;
      the twelve unified ideographs of that block, such as 﨑 U+FA11, stay) and composes kana with
      combining (han)dakuten;
    * variation selectors are dropped (渡邉 + U+E0110 → 渡邉).

    For keys only: the stored name keeps every code point as received.
    """
    table = _MUNICIPALITY_PRIVATE_USE if private_use is None else private_use
    if table:
        text = "".join(table.get(ch, ch) for ch in text)
    return unicodedata.normalize("NFC", text).translate(_VARIATION_SELECTORS)


def name_key(text: str, private_use: Mapping[str, str] | None = None) -> str:
    """The exact name with no spaces, for comparing names written with or without a separator.

    :func:`canonical_name` first (compatibility ideographs to unified ones, variation selectors
    dropped, 外字 mapped when a table is given), then widths: full-width ASCII to ASCII and
    half-width katakana to full-width. Variant kanji are kept exactly (``髙橋`` and ``高橋`` keep
    different keys; see :func:`fold_kanji`), and hiragana stay hiragana (``はる`` and ``ハル`` are
    different legal names).
    """
    return _SPACE_RE.sub("", _widen_kana(nfkc_digits(canonical_name(text, private_use))))


def _load_variants() -> dict[str, str]:
    """The committed variant table (schemas/data/kanji_variants.tsv): variant → folded form."""
    text = resources.files("schemas").joinpath("data/kanji_variants.tsv").read_text(encoding="utf-8")
    table: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            variant, folded = line.split("\t")[:2]
            table[variant] = folded
    return table


KANJI_VARIANTS: Final[Mapping[str, str]] = MappingProxyType(_load_variants())
"""旧字体/異体字 → the form to fold to (髙→高, 﨑→崎, 邊→辺, 齋→斎, 齊→斉, 郞→郎 …), about 1,100 rows
derived from KANJIDIC2 (EDRDG, CC BY-SA) at build time. Read-only; no 常用漢字 is a key."""

_KANJI_TABLE: Final[dict[int, str]] = {ord(k): v for k, v in KANJI_VARIANTS.items()}


def fold_kanji(text: str, private_use: Mapping[str, str] | None = None) -> str:
    """Replace 旧字体/異体字 with their common form (髙橋 → 高橋, 渡邊 → 渡辺, 齊木 → 斉木, 渡邉󠄐 → 渡辺).

    Applies :func:`canonical_name` first, so compatibility ideographs and variation sequences fold
    too; idempotent. For *candidate lookup only*: a folded match is never proof of identity. 斎藤
    and 斉藤 are distinct legal names (齋 folds to 斎 and 齊 to 斉, but no 常用漢字 is ever folded,
    so 斎 and 斉 never meet), and a person registered as 髙橋 is not thereby the same person as one
    registered as 高橋. Matching must still confirm with other evidence (birth date, reading,
    address); :func:`name_agreement` keeps exact and folded matches apart for scoring.
    """
    return canonical_name(text, private_use).translate(_KANJI_TABLE)


NameAgreement = Literal["exact", "folded", "private_use", "differ"]
"""How two name keys compare: the same characters, the same after folding variants, the same except
at unmapped 外字 positions (no evidence either way from those), or different."""


def name_agreement(a: str, b: str) -> NameAgreement:
    """Compare two :func:`name_key` values for scoring (the keys themselves are only for finding).

    ``exact``: equal keys (so 都 U+FA26 and 都, 渡邉 + U+E0110 and 渡邉). ``folded``: equal after
    :func:`fold_kanji` (齋藤/斎藤, 髙橋/高橋) — weaker than exact. ``private_use``: the same length
    and equal after folding at every position where neither side has an unmapped private-use
    character (``\ue001橋`` and ``高橋``): the 外字 neither confirms nor breaks the match, but a
    private-use character never counts as equal to anything, so this is not ``exact``.
    ``differ`` otherwise (斎藤/斉藤 are different names).
    """
    if a == b and not has_private_use(a):
        return "exact"
    fa, fb = fold_kanji(a), fold_kanji(b)
    if fa == fb and not has_private_use(fa):
        return "folded"
    if len(fa) == len(fb) and (has_private_use(fa) or has_private_use(fb)):
        known = [(x, y) for x, y in zip(fa, fb, strict=True) if not (is_private_use(x) or is_private_use(y))]
        if known and all(x == y for x, y in known):
            return "private_use"
    return "differ"


# --- addresses -------------------------------------------------------------------------------

_NOT_PLACE: Final = r"\s0-9\-"  # characters that never occur in a prefecture, city or ward name
_PREFECTURE_RE: Final = re.compile(rf"(?:東京都|北海道|京都府|大阪府|[^{_NOT_PLACE}都道府県市区町村郡]{{2,3}}県)")
_CITY_RE: Final = re.compile(
    rf"(?:[^{_NOT_PLACE}市区郡]{{1,6}}?郡[^{_NOT_PLACE}市区郡]{{1,5}}?[町村](?![町村])"  # 郡 + town / village
    rf"|[^{_NOT_PLACE}市郡]{{1,4}}?区(?!区)"  # Tokyo special ward
    rf"|[^{_NOT_PLACE}区郡]{{1,6}}?市(?!市)(?:[^{_NOT_PLACE}市区郡]{{1,4}}?区(?!区))?)"  # city (+ ward)
)
_KANJI_DIGITS: Final[dict[str, int]] = {
    "〇": 0, "零": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip
_KANJI_UNITS: Final[dict[str, int]] = {"十": 10, "百": 100, "千": 1000}
# A kanji number that is a chome, block or house number: followed by 丁目, 番地, 番 (not 番町, a
# place name such as 五番町) or 号 (not 号室/号棟/号館).
_KANJI_NUMBER_RE: Final = re.compile(r"[〇零一二三四五六七八九十百千]+(?=丁目|番地|番(?![町丁])|号(?![室棟館]))")
# A kanji number right after a converted number and its separator (二十三番地の四 → 23番地の4), but
# not the start of a name (1番千代田ビル keeps 千代田): it must not run into another kanji.
_KANJI_NUMBER_AFTER_RE: Final = re.compile(
    r"(?<=[0-9])(丁目|番地の?|番|の|-)([〇零一二三四五六七八九十百千]+)(?![\u3400-\u9fff\uf900-\ufaff々])"
)
_INNER_SEPARATOR_RE: Final = re.compile(r"(?<=[0-9])(?:丁目|番地の?|番|の)(?=[0-9])")
_TRAILING_UNIT_RE: Final = re.compile(r"(?<=[0-9])(?:丁目|番地|番)$")
_GOU_RE: Final = re.compile(r"(?<=[0-9])号(?![室棟館])")


def _kanji_number(text: str) -> str:
    """二十三 → 23, 十 → 10, 百五 → 105, 一〇 → 10 (digit by digit when there is no 十/百/千)."""
    if not any(ch in _KANJI_UNITS for ch in text):
        return "".join(str(_KANJI_DIGITS[ch]) for ch in text)
    total = 0
    current = 0
    for ch in text:
        if ch in _KANJI_UNITS:
            total += (current or 1) * _KANJI_UNITS[ch]
            current = 0
        else:
            current = current * 10 + _KANJI_DIGITS[ch]
    return str(total + current)


def _strip_place_prefixes(s: str, known: list[str]) -> str:
    prefecture_seen = False
    while True:
        for prefix in known:
            if s.startswith(prefix) and len(prefix) < len(s):
                s = s[len(prefix) :]
                prefecture_seen = prefecture_seen or prefix[-1] in "都道府県"
                break
        else:
            m = _PREFECTURE_RE.match(s)
            if m is not None and m.end() < len(s):
                s = s[m.end() :]
                prefecture_seen = True
                continue
            m = _CITY_RE.match(s) if prefecture_seen else None
            if m is not None and m.end() < len(s):
                s = s[m.end() :]
                continue
            return s


def address_key(text: str, known_prefixes: Iterable[str] | None = None) -> str:
    """A comparable key for an address: ``中央一丁目2番3号``, ``中央1-2-3``, ``中央１－２－３`` → ``中央1-2-3``.

    * widths: full-width digits and letters to ASCII, every dash variant to ``-``, spaces removed;
    * kanji numbers that are chome, block or house numbers become arabic (``二十三番`` → ``23番``);
    * ``N丁目M番K号``, ``N丁目M番地K``, ``N番地のM``, ``NのM`` → ``N-M-K``; a trailing ``号`` (and a
      trailing ``丁目``/``番地``/``番``) is dropped, ``号室``/``号棟``/``号館`` are kept;
    * a leading prefecture (``…都/道/府/県``) is removed, and *only when a prefecture was
      present* a following city, ward or ``郡``+town segment (``みなと市``, ``横浜市中区``,
      ``新宿区``, ``XX郡YY町``); a town name such as ``栄町`` is never taken for a city.
    * ``known_prefixes`` (e.g. ``["さくら県", "みなと市"]``) are removed from the start in any
      order, so addresses written without the prefecture (``みなと市中央…``) match too.

    Idempotent for addresses (``address_key(address_key(a)) == address_key(a)``).
    """
    known = sorted(
        {p for p in (_SPACE_RE.sub("", nfkc_digits(k)) for k in known_prefixes or ()) if p},
        key=len,
        reverse=True,
    )
    s = nfkc_digits(_SPACE_RE.sub("", text))
    s = _strip_place_prefixes(s, known)
    # Each rule can expose another (号 removed between a digit and ー, …): repeat to a fixed point,
    # which also makes the key idempotent. Every round lowers the number of kanji numerals or of
    # non-dash characters, so the loop ends.
    while True:
        new = _DIGIT_DASH_RE.sub("-", s)
        new = _KANJI_NUMBER_RE.sub(lambda m: _kanji_number(m.group()), new)
        new = _KANJI_NUMBER_AFTER_RE.sub(lambda m: m.group(1) + _kanji_number(m.group(2)), new)
        new = _INNER_SEPARATOR_RE.sub("-", new)
        new = _GOU_RE.sub("", new)
        new = _TRAILING_UNIT_RE.sub("", new)
        if new == s:
            return s
        s = new


# --- phones and sex --------------------------------------------------------------------------


def phone_key(text: str | None) -> str | None:
    """The digits of a phone number (``０７３－５１８１－８２４１`` → ``07351818241``); None when there are none."""
    if text is None:
        return None
    digits = "".join(ch for ch in nfkc_digits(text) if "0" <= ch <= "9")
    return digits or None


_SEX_LABELS: Final[dict[str, SexValue]] = {
    "男": "male",
    "男性": "male",
    "1": "male",
    "女": "female",
    "女性": "female",
    "2": "female",
    "9": "unknown",
    "回答しない": "not_stated",
}


def sex_from_label(text: str | int) -> SexValue:
    """The sex from a feed's label: 男/男性/1 → male, 女/女性/2 → female, 9 → unknown, 回答しない → not_stated.

    Raises ``ValueError("unknown sex code")`` for anything else; the message never echoes the input.
    """
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ValueError("unknown sex code")
    label = _SPACE_RE.sub("", nfkc_digits(str(text)))
    sex = _SEX_LABELS.get(label)
    if sex is None:
        raise ValueError("unknown sex code")
    return sex
