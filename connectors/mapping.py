"""Column and code mappings for CSV feeds, loaded from TOML.

A vendor's CSV differs from centre to centre: columns renamed or reordered, codes spelled
differently (``対応中(継続)`` for ``継続支援``), another file-name scheme or encoding. A
connector never hard-codes any of that: it reads *canonical* columns (the names of
``shared/agency-systems/README.md``) through a :class:`CsvMapping`, so onboarding a second
地域包括支援センター is a mapping file only::

    name = "houkatsu-c04"                     # free text, shows up in errors only
    feed = "houkatsu"                         # must match the connector
    file_pattern = '^C04_(?P<date>\\d{8})\\.csv$'   # which files; groups `date` / `centre` order them
    encodings = ["cp932", "utf-8"]            # tried in order on the header (a UTF-8 BOM always wins)

    [columns]                                 # canonical column = the header this centre writes
    "受付番号" = "相談No"

    [constants]                               # canonical column the file lacks = fixed value
    "センターコード" = "C04"

    [codes."対応状況"]                          # this centre's spelling = the canonical label
    "対応中(継続)" = "継続支援"

    [separators]                              # list separators, when not the feed's default
    "相談区分" = "・"

Canonical columns not listed under ``[columns]`` or ``[constants]`` keep their canonical name
as header. Canonical labels are the keys of the tables in :mod:`schemas.codes`; a label
neither the mapping nor the code list knows is an unknown code (the row is dead-lettered).

The default mappings ship as ``connectors/mappings/{feed}.toml``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from connectors.forbidden import is_forbidden_header
from connectors.safety import display_name


class MappingError(ValueError):
    """A mapping file that cannot be used (raised when a connector is built, never while reading)."""


@dataclass(frozen=True)
class CsvMapping:
    """How one family of CSV files spells the canonical columns and codes of a feed."""

    name: str
    feed: str
    file_pattern: re.Pattern[str]
    encodings: tuple[str, ...] = ("utf-8",)
    columns: Mapping[str, str] = field(default_factory=dict)
    constants: Mapping[str, str] = field(default_factory=dict)
    codes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    separators: Mapping[str, str] = field(default_factory=dict)
    #: which layout of the feed this mapping reads (the registry: "jumin" or "standard"); "" = the feed's only one
    layout: str = ""

    def header(self, column: str) -> str:
        """The source header holding a canonical column."""
        return self.columns.get(column, column)

    def required_headers(self, columns: Iterable[str]) -> list[str]:
        """Source headers a file must have to deliver these canonical columns."""
        return [self.header(c) for c in columns if c not in self.constants]

    def value(self, values: Mapping[str, str], column: str) -> str:
        """A canonical column's cell (stripped), or its constant; "" when absent or empty."""
        if column in self.constants:
            return self.constants[column]
        return (values.get(self.header(column)) or "").strip()

    def label(self, column: str, label: str) -> str:
        """Translate this source's spelling of a code into the canonical label (identity if unmapped)."""
        label = label.strip()
        table = self.codes.get(column)
        if table is None:
            return label
        return table.get(label, label)

    def separator(self, column: str, default: str) -> str:
        return self.separators.get(column, default)

    def match(self, file_name: str) -> re.Match[str] | None:
        return self.file_pattern.fullmatch(file_name)

    def check(self, feed: str, columns: Iterable[str]) -> None:
        """Fail early when the mapping is for another feed or names unknown canonical columns."""
        if self.feed != feed:
            raise MappingError(f"mapping {self.name!r} is for feed {self.feed!r}, not {feed!r}")
        known = set(columns)
        for section, names in (("columns", self.columns), ("constants", self.constants), ("codes", self.codes)):
            unknown = sorted(set(names) - known)
            if unknown:
                raise MappingError(f"mapping {self.name!r}: [{section}] names unknown columns {unknown}")
        if any(is_forbidden_header(h) for h in self.columns.values()):
            raise MappingError(f"mapping {self.name!r}: [columns] points at a 個人番号/住民票コード column")


def _str_table(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise MappingError(f"{where} must be a table of strings")
    return dict(raw)


def parse_mapping(doc: Mapping[str, Any], origin: str = "<mapping>") -> CsvMapping:
    """Build a mapping from an already parsed TOML document."""
    try:
        name = str(doc.get("name") or origin)
        feed = doc["feed"]
        pattern = doc["file_pattern"]
    except KeyError as e:
        raise MappingError(f"{origin}: missing key {e.args[0]!r}") from None
    if not isinstance(feed, str) or not isinstance(pattern, str):
        raise MappingError(f"{origin}: feed and file_pattern must be strings")
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        raise MappingError(f"{origin}: bad file_pattern ({e})") from None
    encodings = doc.get("encodings", ["utf-8"])
    if not isinstance(encodings, list) or not encodings or not all(isinstance(x, str) for x in encodings):
        raise MappingError(f"{origin}: encodings must be a non-empty list of strings")
    for enc in encodings:
        try:
            "".encode(enc)
        except LookupError:
            raise MappingError(f"{origin}: unknown encoding {enc!r}") from None
    codes_raw = doc.get("codes") or {}
    if not isinstance(codes_raw, dict):
        raise MappingError(f"{origin}: [codes] must be a table")
    codes = {col: _str_table(table, f"{origin}: [codes.{col}]") for col, table in codes_raw.items()}
    layout = doc.get("layout", "")
    if not isinstance(layout, str):
        raise MappingError(f"{origin}: layout must be a string")
    return CsvMapping(
        name=name,
        feed=feed,
        file_pattern=compiled,
        encodings=tuple(encodings),
        columns=_str_table(doc.get("columns"), f"{origin}: [columns]"),
        constants=_str_table(doc.get("constants"), f"{origin}: [constants]"),
        codes=codes,
        separators=_str_table(doc.get("separators"), f"{origin}: [separators]"),
        layout=layout,
    )


def load_mapping(path: Path | str) -> CsvMapping:
    """Load a mapping TOML file."""
    p = Path(path)
    name = display_name(p.name)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise MappingError(f"cannot read mapping {name}: {type(e).__name__}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MappingError(f"cannot read mapping {name}: not UTF-8 text") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # tomllib's message names a line and column, never the text; keep its first line only
        first = str(e).splitlines()[0] if str(e) else "invalid TOML"
        raise MappingError(f"cannot read mapping {name}: {first}") from None
    return parse_mapping(doc, name)


def default_mapping(feed: str) -> CsvMapping:
    """The mapping shipped for a feed as the vendor delivers it (``connectors/mappings/{feed}.toml``).

    ``feed`` may also name another built-in mapping of a feed (``registry_std``: the registry's
    標準準拠システム layout).
    """
    ref = resources.files("connectors").joinpath("mappings", f"{feed}.toml")
    try:
        doc = tomllib.loads(ref.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MappingError(f"no default mapping for feed {feed!r}") from None
    return parse_mapping(doc, f"{feed}.toml")
