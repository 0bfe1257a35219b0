"""Shared reading of the agencies' CSV exports, and the base class of the CSV connectors.

Reading (:func:`read_csv`) is byte-oriented and line by line so that one bad line never
spoils its neighbours:

* encoding: a UTF-8 BOM always means UTF-8; otherwise the mapping's encodings (CP932,
  UTF-8, …) are tried in order on the header line, and the first under which the header
  decodes and holds every required column is used for the whole file;
* CRLF, LF and a bare CR all end a line (CP932 and UTF-8 never use 0x0A or 0x0D inside a
  character);
* a UTF-16 file (with a byte-order mark, or recognised by its NUL bytes in every other place
  of mostly ASCII text) is transcoded to UTF-8 first, line by line, so a broken code unit
  spoils only its line;
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

A record holding a control character (NUL, ESC, …) in any column is a dead letter: such text
is never a real name or note, and it would travel on silently. A file that cannot be read is one
dead letter naming the file. File names that are not UTF-8 are shown (scope, ``where``) with
their odd bytes as ``\\xNN`` (:func:`connectors.safety.display_name`).

Dead-letter reasons are fixed phrases naming columns, never a cell's value.
"""

from __future__ import annotations

import abc
import csv
import hashlib
import io
import os
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
from connectors.safety import display_name, text_problem
from schemas.codes import Field, Sex, UnknownCode, lookup
from schemas.deadletter import DeadLetter
from schemas.digits import to_ascii_digits
from schemas.envelope import CloudEvent, content_hash, stable_event_id
from schemas.normalize import sex_from_label
from schemas.wareki import JST, parse_date, parse_jst_datetime

T = TypeVar("T")

BOM = b"\xef\xbb\xbf"
UTF16_BOMS = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}
_LINE_END = re.compile(rb"\r\n|\r|\n")
_TEXT_LINE_END = re.compile(r"\r\n|\r|\n")
#: stands for a UTF-16 code unit that could not be decoded (never valid UTF-8, so the line is undecodable)
_BROKEN = b"\xff"
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
    #: the record's bytes as read (kept, sealed, with its dead letter)
    raw: bytes = b""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def position(self) -> str:
        return position_of(self.line)


def _split_lines(data: bytes) -> list[bytes]:
    return _LINE_END.split(data)


def _sniff_utf16(data: bytes) -> str | None:
    """UTF-16 without a byte-order mark, told by NUL bytes on one side only (CP932 and UTF-8 text has none)."""
    head = data[:256]
    if len(head) < 8:
        return None
    odd, even = head[1::2].count(0) / len(head[1::2]), head[0::2].count(0) / len(head[0::2])
    if odd >= 0.15 and even <= 0.02:  # commas, digits and ASCII letters are NUL-padded; kanji rarely are
        return "utf-16-le"
    if even >= 0.15 and odd <= 0.02:
        return "utf-16-be"
    return None


def _utf16_to_utf8(data: bytes, encoding: str) -> bytes:
    """A UTF-16 file (BOM removed) as UTF-8 lines; a line with a broken code unit keeps a marker byte.

    Line numbers are kept: each physical UTF-16 line becomes one UTF-8 line.
    """
    tail = b""
    if len(data) % 2:
        data, tail = data[:-1], _BROKEN
    text = data.decode(encoding, errors="surrogatepass")
    out: list[bytes] = []
    for line in _TEXT_LINE_END.split(text):
        try:
            out.append(line.encode("utf-8"))
        except UnicodeEncodeError:
            out.append(b"".join(_BROKEN if "\ud800" <= ch <= "\udfff" else ch.encode("utf-8") for ch in line))
    if tail:
        out[-1] += tail
    return b"\n".join(out)


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
    bom16 = UTF16_BOMS.get(data[:2])
    if bom16 is not None:
        data, encodings = _utf16_to_utf8(data[2:], bom16), ("utf-8",)
    elif (sniffed := _sniff_utf16(data)) is not None:
        data, encodings = _utf16_to_utf8(data, sniffed), ("utf-8",)
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

    forbidden = len(keep) < width

    def original(block: bytes, cells: list[str] | None) -> bytes:
        """The line as a dead letter may keep it: as read, or, when the file has 個人番号/住民票コード
        columns, the kept cells only (nothing when the cells could not be told apart)."""
        if not forbidden:
            return block
        if cells is None:
            return b""
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(kept(cells))
        return out.getvalue().rstrip("\n").encode(enc, errors="replace")

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
                yield CsvRecord(file, line_no, values, "unterminated quoted field", original(lines[start], cells))
            continue
        i = j
        if line_no <= after_line:
            continue
        try:
            cells = _parse_cells("\n".join(chunks))
        except csv.Error:
            yield CsvRecord(file, line_no, {}, "malformed CSV line", original(b"\n".join(lines[start:j]), None))
            continue
        count = len(cells)
        values = dict(zip(header, kept(cells), strict=False))
        raw = original(b"\n".join(lines[start:j]), cells)
        del cells
        if undecodable:
            yield CsvRecord(file, line_no, values, "undecodable bytes", raw)
        elif count != width:
            yield CsvRecord(file, line_no, values, f"wrong column count (expected {width}, got {count})", raw)
        else:
            yield CsvRecord(file, line_no, values, raw=raw)


# --- turning cells into typed values; every failure is a RowError with a fixed reason ---------


class RowError(ValueError):
    """A row that cannot become an event. ``reason`` names a column, never a value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


RESIDENT_NO = re.compile(r"^[0-9]{10}$")


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
        v = to_ascii_digits(unicodedata.normalize("NFKC", self.text(column))).strip()
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

    @property
    def display(self) -> str:
        """The file name as it may be stored and shown (bytes that are not UTF-8 as ``\\xNN``)."""
        return display_name(self.path.name)

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

    def __init__(self, folder: Path | str | bytes, mapping: CsvMapping | Sequence[CsvMapping] | None = None) -> None:
        self.folder = Path(os.fsdecode(folder))
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
        """Checkpoint scope of a file: its (displayable) name."""
        return file.display

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

    def unreadable(self, file: SourceFile, exc: OSError, checkpoints: Mapping[str, str]) -> Iterator[Item]:
        """A file that cannot be read: one dead letter; its content is unknown, so scope = its name at
        position 0 and the next read tries it again."""
        if checkpoints.get(file.display) != POSITION_DONE:
            letter = DeadLetter(source=self.name, where=file.display, reason=f"unreadable file ({type(exc).__name__})")
            yield Item(checkpoint=Checkpoint(file.display, position_of(0)), dead_letter=letter)

    def read(self, checkpoints: Mapping[str, str]) -> Iterator[Item]:
        for file in self.files():
            try:
                data = file.path.read_bytes()
            except OSError as exc:
                yield from self.unreadable(file, exc, checkpoints)
                continue
            scope = self.scope(file, data)
            pos = checkpoints.get(scope)
            if pos == POSITION_DONE:
                continue
            after = int(pos) if pos and pos.isdigit() else 0
            required = file.mapping.required_headers(self.required_for(file.mapping))
            for record in read_csv(
                data, file.display, encodings=file.mapping.encodings, required=required, after_line=after
            ):
                yield from self._items(record, file, data, Checkpoint(scope, record.position))

    def _items(self, record: CsvRecord, file: SourceFile, data: bytes, cp: Checkpoint) -> Iterator[Item]:
        row = Row(file.mapping, record.values)
        key = self._safe_key(row)
        if record.error is not None:
            yield self._dead(record, key, record.error, cp)
            return
        bad = self._bad_text(row)
        if bad is not None:
            yield self._dead(record, key, bad, cp)
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

    def _bad_text(self, row: Row) -> str | None:
        """``"control character in {column}"`` for the first column holding one (canonical name), else None."""
        for column in self.columns:
            problem = text_problem(row.text(column))
            if problem is not None:
                return f"{problem} in {column}"
        return None

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
            original=record.raw or None,
        )


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]
