"""Shared reading of the agencies' CSV exports, and the base class of the CSV connectors.

Reading (:func:`read_csv`) is byte-oriented and line by line so that one bad line never
spoils its neighbours:

* encoding: a UTF-8 BOM always means UTF-8; otherwise the mapping's encodings (CP932,
  UTF-8, …) are tried in order on the header line, and the first under which the header
  decodes and holds every required column is used for the whole file;
* CRLF and LF both end a line (CP932 and UTF-8 never use byte 0x0A inside a character);
* each line is decoded on its own: undecodable bytes make only that record a dead letter;
* a quoted cell may span lines (the record then starts at its first line);
* a row with more or fewer cells than the header is a dead letter;
* blank lines are skipped; line numbers are physical, 1-based, the header being line 1.

Checkpoints (:class:`CsvFeedConnector`): scope = the file name, position = the record's
first line number as an 8-digit zero-padded string. On resume a file whose position is
``"done"`` is skipped and otherwise lines ``<=`` the position are skipped. An empty or
header-only file yields nothing (the runner treats an absent scope as 0). Several items
of one row (a case and its referral) share the row's checkpoint; the runner never splits
them. A dead letter carries its line's checkpoint too, so it is never re-read.

Dead-letter reasons are fixed phrases naming columns, never a cell's value.
"""

from __future__ import annotations

import abc
import csv
import hashlib
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from connectors.contract import Checkpoint, Connector, Item
from connectors.forbidden import is_forbidden_header
from connectors.mapping import CsvMapping, default_mapping
from schemas.codes import Field, Sex, UnknownCode, lookup
from schemas.deadletter import DeadLetter
from schemas.envelope import CloudEvent, content_hash, stable_event_id
from schemas.normalize import sex_from_label
from schemas.wareki import JST, parse_date, parse_jst_datetime

T = TypeVar("T")

BOM = b"\xef\xbb\xbf"
POSITION_DONE = "done"


def position_of(line: int) -> str:
    """Checkpoint position of a record starting at this line."""
    return f"{line:08d}"


@dataclass(frozen=True, slots=True)
class CsvRecord:
    """One record of a CSV file (usually one line), or the reason it could not be read.

    ``values`` maps header → cell. When ``error`` is set the values are a best effort (decoded
    with replacement characters, possibly too few or too many cells) and are only good for
    recovering the record key of the dead letter.
    """

    file: str
    line: int
    values: Mapping[str, str]
    error: str | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def position(self) -> str:
        return position_of(self.line)


def _split_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    return [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]


def _parse_cells(text: str) -> list[str]:
    rows = list(csv.reader([text], strict=False))
    return rows[0] if rows else []


def _choose_encoding(
    header_bytes: bytes, encodings: Sequence[str], required: Sequence[str]
) -> tuple[str | None, list[str] | None, str | None]:
    """(encoding, header cells, error) for a header line."""
    if header_bytes.startswith(BOM):
        candidates: Sequence[str] = ("utf-8",)
        header_bytes = header_bytes[len(BOM) :]
    else:
        candidates = encodings
    first_missing: list[str] | None = None
    decoded_any = False
    for enc in candidates:
        try:
            text = header_bytes.decode(enc)
        except UnicodeDecodeError:
            continue
        decoded_any = True
        cells = [c.strip() for c in _parse_cells(text)]
        missing = [c for c in required if c not in cells]
        if not missing:
            if len(set(cells)) != len(cells):
                return None, None, "duplicate column in header"
            return enc, cells, None
        if first_missing is None:
            first_missing = missing
    if not decoded_any:
        return None, None, "undecodable header"
    assert first_missing is not None
    return None, None, f"header lacks required columns: {', '.join(first_missing)}"


def read_csv(
    data: bytes,
    file: str,
    *,
    encodings: Sequence[str],
    required: Sequence[str],
    after_line: int = 0,
) -> Iterator[CsvRecord]:
    """Records of one CSV file whose first line is greater than ``after_line``.

    A header that cannot be decoded or lacks a required column yields a single error
    record at line 1 (the rest of the file cannot be interpreted).
    """
    lines = _split_lines(data)
    # the header: first non-blank line (normally line 1)
    h = 0
    while h < len(lines) and not lines[h].strip(BOM + b" \t"):
        h += 1
    if h >= len(lines):
        return
    enc, header, error = _choose_encoding(lines[h], encodings, required)
    if error is not None or enc is None or header is None:
        if h + 1 > after_line:
            yield CsvRecord(file, h + 1, {}, error or "unreadable header")
        return
    width = len(header)
    # 個人番号 / 住民票コード columns are dropped here: no row dict ever holds their cells
    keep = [n for n, name in enumerate(header) if not is_forbidden_header(name)]
    header = [header[n] for n in keep]

    def kept(cells: list[str]) -> list[str]:
        return [cells[n] for n in keep if n < len(cells)]

    i = h + 1
    while i < len(lines):
        start = i
        if not lines[i].strip():
            i += 1
            continue
        # gather physical lines until quotes balance (a quoted cell may hold newlines)
        chunks: list[str] = []
        undecodable = False
        quotes = 0
        j = i
        while j < len(lines):
            raw = lines[j]
            try:
                text = raw.decode(enc)
            except UnicodeDecodeError:
                undecodable = True
                text = raw.decode(enc, errors="replace")
            chunks.append(text)
            quotes += text.count('"')
            j += 1
            if quotes % 2 == 0:
                break
        line_no = start + 1
        if quotes % 2 == 1:
            # unterminated quote: dead-letter only the first line, then go on with the next one
            i = start + 1
            if line_no > after_line:
                cells = _parse_cells(chunks[0])
                values = dict(zip(header, kept(cells), strict=False))
                yield CsvRecord(file, line_no, values, "unterminated quoted field")
            continue
        i = j
        if line_no <= after_line:
            continue
        try:
            cells = _parse_cells("\n".join(chunks))
        except csv.Error:
            yield CsvRecord(file, line_no, {}, "malformed CSV line")
            continue
        count = len(cells)
        values = dict(zip(header, kept(cells), strict=False))
        del cells
        if undecodable:
            yield CsvRecord(file, line_no, values, "undecodable bytes")
        elif count != width:
            yield CsvRecord(file, line_no, values, f"wrong column count (expected {width}, got {count})")
        else:
            yield CsvRecord(file, line_no, values)


# --- turning cells into typed values; every failure is a RowError with a fixed reason ---------


class RowError(ValueError):
    """A row that cannot become an event. ``reason`` names a column, never a value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


RESIDENT_NO = re.compile(r"^\d{10}$")


class Row:
    """Typed access to one record's canonical columns through a mapping."""

    def __init__(self, mapping: CsvMapping, values: Mapping[str, str]) -> None:
        self.mapping = mapping
        self.values = values

    def text(self, column: str) -> str:
        return self.mapping.value(self.values, column)

    def opt(self, column: str) -> str | None:
        return self.text(column) or None

    def required(self, column: str, reason: str | None = None) -> str:
        v = self.text(column)
        if not v:
            raise RowError(reason or f"empty {column}")
        return v

    def opt_date(self, column: str) -> date | None:
        v = self.text(column)
        return parse_date_cell(v, column) if v else None

    def required_date(self, column: str) -> date:
        return parse_date_cell(self.required(column), column)

    def code(self, column: str, table: Mapping[str, T]) -> T:
        return lookup_code(table, self.mapping.label(column, self.required(column)), column)

    def opt_code(self, column: str, table: Mapping[str, T]) -> T | None:
        v = self.text(column)
        return lookup_code(table, self.mapping.label(column, v), column) if v else None

    def codes(self, column: str, table: Mapping[str, T], default_sep: str) -> list[T]:
        out: list[T] = []
        for part in self.text(column).split(self.mapping.separator(column, default_sep)):
            if not part.strip():
                continue
            code = lookup_code(table, self.mapping.label(column, part), column)
            if code not in out:
                out.append(code)
        return out

    def sex(self, column: str) -> Sex:
        v = self.text(column)
        return sex_cell(self.mapping.label(column, v), column) if v else Sex.UNKNOWN

    def resident_no(self, column: str) -> str | None:
        v = unicodedata.normalize("NFKC", self.text(column)).strip()
        if not v:
            return None
        if not RESIDENT_NO.fullmatch(v) or not v.isascii():
            raise RowError(f"malformed {column}")
        return v


def parse_date_cell(text: str, column: str) -> date:
    try:
        return parse_date(text)
    except ValueError:
        raise RowError(f"impossible date in {column}") from None


def parse_datetime_cell(text: str, column: str) -> datetime:
    try:
        return parse_jst_datetime(text)
    except ValueError:
        raise RowError(f"impossible date in {column}") from None


def start_of_day(d: date) -> datetime:
    """A date without a time means 00:00 of that day in Japan."""
    return datetime.combine(d, time(0, 0), tzinfo=JST)


def lookup_code(table: Mapping[str, T], label: str, column: str) -> T:
    try:
        return lookup(dict(table), label, column)
    except UnknownCode:
        raise RowError(f"unknown code in {column}") from None


def sex_cell(label: str, column: str) -> Sex:
    try:
        return Sex(sex_from_label(label))
    except ValueError:
        raise RowError(f"unknown code in {column}") from None


def build_event(
    *,
    feed: str,
    source: str,
    type_: str,
    time: datetime,
    key: str,
    field: Field | None,
    payload: BaseModel,
    revision: str,
) -> CloudEvent:
    """A CloudEvent whose id is stable: (feed, record key, revision, content hash of the data)."""
    data = payload.model_dump(mode="json")
    return CloudEvent(
        id=stable_event_id(feed, key, revision, content_hash(data)),
        source=source,
        type=type_,
        time=time,
        sourcerecord=key,
        field=field,
        data=data,
    )


# --- the connector skeleton ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: Path
    mapping: CsvMapping
    match: re.Match[str]

    def sort_key(self) -> tuple[str, str, str]:
        groups = self.match.groupdict()
        return (groups.get("date") or "", groups.get("centre") or "", self.path.name)


class CsvFeedConnector(Connector):
    """A folder of CSV files of one feed, read through one or more mappings.

    Subclasses set ``name`` and ``columns`` (the canonical columns) and implement
    :meth:`convert` (one valid record → its events, all or nothing) and :meth:`record_key`
    (the record key from the cells, for dead letters; ``None`` when the key columns do not
    parse).
    """

    columns: tuple[str, ...] = ()
    #: canonical columns that must be present (as header or constant); by default all
    required_columns: tuple[str, ...] | None = None

    def __init__(self, folder: Path, mapping: CsvMapping | Sequence[CsvMapping] | None = None) -> None:
        self.folder = Path(folder)
        if mapping is None:
            self.mappings: tuple[CsvMapping, ...] = (default_mapping(self.name),)
        elif isinstance(mapping, CsvMapping):
            self.mappings = (mapping,)
        else:
            self.mappings = tuple(mapping)
        for m in self.mappings:
            m.check(self.name, self.columns)

    # -- hooks

    @abc.abstractmethod
    def convert(self, row: Row, record: CsvRecord, file: SourceFile, data: bytes) -> list[CloudEvent]:
        """The events of one readable record; raise RowError to dead-letter it."""

    @abc.abstractmethod
    def record_key(self, row: Row) -> str | None:
        """The record key when the key columns parse, else None."""

    def required_for(self, mapping: CsvMapping) -> tuple[str, ...]:
        """Canonical columns a file read through this mapping must have."""
        return self.required_columns or self.columns

    def scope(self, file: SourceFile, data: bytes) -> str:
        """Checkpoint scope of a file: its name."""
        return file.path.name

    # -- reading

    def files(self) -> list[SourceFile]:
        """The files to read, in time order (the mapping's ``date`` then ``centre`` groups, then name)."""
        out: list[SourceFile] = []
        if not self.folder.is_dir():
            return out
        for path in self.folder.iterdir():
            if not path.is_file() or path.name.startswith((".", "~")):
                continue
            for m in self.mappings:
                match = m.match(path.name)
                if match is not None:
                    out.append(SourceFile(path, m, match))
                    break
        return sorted(out, key=SourceFile.sort_key)

    def read(self, checkpoints: Mapping[str, str]) -> Iterator[Item]:
        for file in self.files():
            data = file.path.read_bytes()
            scope = self.scope(file, data)
            pos = checkpoints.get(scope)
            if pos == POSITION_DONE:
                continue
            after = int(pos) if pos and pos.isdigit() else 0
            required = file.mapping.required_headers(self.required_for(file.mapping))
            for record in read_csv(
                data, file.path.name, encodings=file.mapping.encodings, required=required, after_line=after
            ):
                yield from self._items(record, file, data, Checkpoint(scope, record.position))

    def _items(self, record: CsvRecord, file: SourceFile, data: bytes, cp: Checkpoint) -> Iterator[Item]:
        row = Row(file.mapping, record.values)
        key = self._safe_key(row)
        if record.error is not None:
            yield self._dead(record, key, record.error, cp)
            return
        try:
            events = self.convert(row, record, file, data)
        except RowError as e:
            yield self._dead(record, key, e.reason, cp)
            return
        except ValidationError as e:
            locs = sorted({".".join(str(p) for p in err["loc"]) for err in e.errors()})
            yield self._dead(record, key, f"schema validation failed at {', '.join(locs)}", cp)
            return
        for ev in events:
            yield Item(checkpoint=cp, event=ev, key=ev.sourcerecord)

    def _safe_key(self, row: Row) -> str | None:
        try:
            return self.record_key(row)
        except (RowError, ValueError):
            return None

    def _dead(self, record: CsvRecord, key: str | None, reason: str, cp: Checkpoint) -> Item:
        return Item(
            checkpoint=cp,
            dead_letter=DeadLetter(source=self.name, where=record.where, record=key, reason=reason),
            key=key,
        )


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]
