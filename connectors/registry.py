"""住民記録 extract (feed ``registry``): every row becomes one ``jp.tsunagu.resident.observed.v1``.

Two layouts, told apart by each file's header (UTF-8 with or without BOM, or CP932):

* the simplified ``jumin.csv`` (``connectors/mappings/registry.toml``): a full snapshot,
  replaced daily, read in line order;
* the 住民記録 標準準拠システム layout (``connectors/mappings/registry_std.toml``,
  :mod:`connectors.registry_std`): full (全件) or change (異動分) extracts, any ``.csv`` name;
  each person's rows are applied in 異動年月日 order (then line order), so a change extract that
  lists a person's 転居 after their 転出 still ends with the 転出.

Every row is about ``registry:{宛名番号}``; time = 異動年月日 (異動日) 00:00 JST, revision = that
date. ``snapshot`` names the file and its content hash.

Because a file may be replaced in place under the same name, the checkpoint scope is the file
name *and* its content hash (``jumin.csv@<hash>``): a new snapshot is a new scope and is read
from its start, while an interrupted read of the same snapshot resumes after its last item.
Positions are line numbers, except in a standard-layout file in which some person's rows are out
of 異動年月日 order: that file is read whole, every row in 異動年月日 order, and a position is the
row's 1-based rank in that order (fixed by the content, which the scope pins). A file that keeps
each person's rows in order — every full extract — is streamed line by line.

個人番号 and 住民票コード columns are dropped with the header (:mod:`connectors.forbidden`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path

from connectors import registry_std
from connectors.contract import Checkpoint, Item
from connectors.csv_export import (
    POSITION_DONE,
    CsvFeedConnector,
    CsvRecord,
    Row,
    RowError,
    SourceFile,
    build_event,
    file_digest,
    position_of,
    read_csv,
    start_of_day,
)
from connectors.mapping import CsvMapping, default_mapping
from schemas.codes import RELATION_LABELS, Feed
from schemas.envelope import CloudEvent
from schemas.events import PersonRecord, ResidentObservedV1
from schemas.normalize import split_name

FEED = Feed.REGISTRY
COLUMNS: tuple[str, ...] = ("宛名番号", "世帯番号", "続柄", "氏名", "氏名カナ", "生年月日", "性別", "住所", "異動日")
TYPE = "jp.tsunagu.resident.observed.v1"
SOURCE = "urn:tsunagu:connector:registry"
#: bytes of a file read to recognise its header
SNIFF_BYTES = 64 * 1024


@functools.lru_cache(maxsize=2)
def snapshot_digest(data: bytes) -> str:
    """The content hash of a file, computed once per file rather than once per row (bytes hash is cached)."""
    return file_digest(data)


def default_mappings() -> tuple[CsvMapping, ...]:
    """The built-in layouts, the simplified one first (its file pattern is the narrower)."""
    return (default_mapping("registry"), default_mapping("registry_std"))


class RegistryConnector(CsvFeedConnector):
    name = FEED.value
    columns = tuple(dict.fromkeys((*COLUMNS, *registry_std.COLUMNS)))

    def __init__(self, folder: Path | str | bytes, mapping: CsvMapping | Sequence[CsvMapping] | None = None) -> None:
        super().__init__(folder, default_mappings() if mapping is None else mapping)
        for m in self.mappings:  # each mapping names only its own layout's columns
            m.check(self.name, registry_std.COLUMNS if registry_std.is_standard(m) else COLUMNS)

    def required_for(self, mapping: CsvMapping) -> tuple[str, ...]:
        return registry_std.REQUIRED if registry_std.is_standard(mapping) else COLUMNS

    def scope(self, file: SourceFile, data: bytes) -> str:
        return f"{file.display}@{snapshot_digest(data)}"

    # -- which layout a file has ------------------------------------------------------------

    def files(self) -> list[SourceFile]:
        """Files in time order, each with the first mapping whose name pattern and header fit it.

        A file whose header fits none is read with the first mapping its name fits, which makes
        its header one dead letter (``header lacks required columns: …``).
        """
        out: list[SourceFile] = []
        if not self.folder.is_dir():
            return out
        for path in self.folder.iterdir():
            if not path.is_file() or path.name.startswith((".", "~")):
                continue
            named = [(m, match) for m in self.mappings if (match := m.match(path.name)) is not None]
            if not named:
                continue
            try:
                with path.open("rb") as f:
                    head = f.read(SNIFF_BYTES)
            except OSError:
                head = b""  # unreadable: read() makes it one dead letter
            chosen = next(((m, match) for m, match in named if self._header_fits(m, head)), named[0])
            out.append(SourceFile(path, *chosen))
        return sorted(out, key=SourceFile.sort_key)

    def _header_fits(self, mapping: CsvMapping, head: bytes) -> bool:
        required = mapping.required_headers(self.required_for(mapping))
        first = next(read_csv(head, "", encodings=mapping.encodings, required=required), None)
        return first is None or not (first.line <= 1 and first.error is not None and "header" in first.error)

    # -- reading ----------------------------------------------------------------------------

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
            if registry_std.is_standard(file.mapping) and not self._in_order(file, data):
                yield from self._read_sorted(file, data, scope, after)
            else:
                yield from self._read_file(file, data, scope, after)

    def _records(self, file: SourceFile, data: bytes, after: int = 0) -> Iterator[CsvRecord]:
        required = file.mapping.required_headers(self.required_for(file.mapping))
        return read_csv(data, file.display, encodings=file.mapping.encodings, required=required, after_line=after)

    def _in_order(self, file: SourceFile, data: bytes) -> bool:
        """Whether every person's rows already come in 異動年月日 order (always so in a full extract).

        Events are keyed by person, so only the order of one person's rows matters; a file that
        keeps it is streamed line by line, with nothing held in memory but one date per person.
        """
        last: dict[str, tuple[date, int]] = {}
        for record in self._records(file, data):
            if record.error is not None:
                continue
            row = Row(file.mapping, record.values)
            key = row.text("宛名番号")
            at = registry_std.order_key(row, record)
            if key in last and at < last[key]:
                return False
            last[key] = at
        return True

    def _read_sorted(self, file: SourceFile, data: bytes, scope: str, after: int) -> Iterator[Item]:
        """A change extract with some person's rows out of order: all rows by 異動年月日; position = rank."""
        records = list(self._records(file, data))
        records.sort(key=lambda r: registry_std.order_key(Row(file.mapping, r.values), r))
        for rank, record in enumerate(records, start=1):
            if rank > after:
                yield from self._items(record, file, data, Checkpoint(scope, position_of(rank)))

    def _read_file(self, file: SourceFile, data: bytes, scope: str, after: int) -> Iterator[Item]:
        """A file in line order: position = the record's first line."""
        for record in self._records(file, data, after):
            yield from self._items(record, file, data, Checkpoint(scope, record.position))

    # -- rows -------------------------------------------------------------------------------

    @staticmethod
    def _number(row: Row, column: str) -> str | None:
        return registry_std.number(row, column) if registry_std.is_standard(row.mapping) else row.resident_no(column)

    def record_key(self, row: Row) -> str | None:
        no = self._number(row, "宛名番号")
        return f"registry:{no}" if no else None

    def convert(self, row: Row, record: CsvRecord, file: SourceFile, data: bytes) -> list[CloudEvent]:
        resident_no = self._number(row, "宛名番号")
        if resident_no is None:
            raise RowError("empty 宛名番号")
        key = f"registry:{resident_no}"
        household_no = self._number(row, "世帯番号")
        if household_no is None:
            raise RowError("empty 世帯番号")
        snapshot = f"{file.display}:{snapshot_digest(data)}"
        if registry_std.is_standard(file.mapping):
            payload = self._standard(row, key, resident_no, household_no, snapshot)
        else:
            payload = self._simplified(row, key, resident_no, household_no, snapshot)
        at = payload.moved_on or payload.notified_on
        if at is None:
            raise RowError("empty 異動年月日")
        return [
            build_event(
                feed=FEED.value,
                source=SOURCE,
                type_=TYPE,
                time=start_of_day(at),
                key=key,
                field=None,
                payload=payload,
                revision=at.isoformat(),
            )
        ]

    @staticmethod
    def _simplified(row: Row, key: str, resident_no: str, household_no: str, snapshot: str) -> ResidentObservedV1:
        moved_on = row.required_date("異動日")
        name = row.required("氏名", "empty name")
        family, given = split_name(name)
        resident = PersonRecord(
            record=key,
            name=name,
            family_name=family or None,
            given_name=given or None,
            kana=row.opt("氏名カナ"),
            birth_date=row.opt_date("生年月日"),
            sex=row.sex("性別"),
            address=row.opt("住所"),
            resident_no=resident_no,
            household_no=household_no,
            relation=row.opt_code("続柄", RELATION_LABELS),
        )
        return ResidentObservedV1(resident=resident, moved_on=moved_on, snapshot=snapshot)

    @staticmethod
    def _standard(row: Row, key: str, resident_no: str, household_no: str, snapshot: str) -> ResidentObservedV1:
        state = registry_std.status(row)
        moved_on = registry_std.move_date(row)
        birth_unknown = registry_std.unknown_date(row, "生年月日")
        resident = registry_std.person(row, key, resident_no, household_no, birth_unknown)
        extra = registry_std.details(row, moved_on, state, birth_unknown)
        return ResidentObservedV1.model_validate(
            {"resident": resident, "moved_on": moved_on, "snapshot": snapshot, **extra}
        )
