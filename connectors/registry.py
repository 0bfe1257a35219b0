"""住民記録 extract (feed ``registry``): a full snapshot ``jumin.csv``, UTF-8, replaced daily.

Every row becomes one ``jp.tsunagu.resident.observed.v1`` (ResidentObservedV1) about
``registry:{宛名番号}``; time = 異動日 00:00 JST, revision = 異動日. ``snapshot`` names the
file and its content hash.

Because the file is replaced in place under the same name, the checkpoint scope is the file
name *and* its content hash (``jumin.csv@<hash>``): a new snapshot is a new scope and is read
from its first line, while an interrupted read of the same snapshot resumes after its last
line. (Positions are line numbers, as for every CSV feed.)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from connectors.csv_export import (
    CsvFeedConnector,
    CsvRecord,
    Row,
    RowError,
    SourceFile,
    build_event,
    file_digest,
    start_of_day,
)
from connectors.mapping import CsvMapping
from schemas.codes import RELATION_LABELS, Feed
from schemas.envelope import CloudEvent
from schemas.events import PersonRecord, ResidentObservedV1
from schemas.normalize import split_name

FEED = Feed.REGISTRY
COLUMNS: tuple[str, ...] = ("宛名番号", "世帯番号", "続柄", "氏名", "氏名カナ", "生年月日", "性別", "住所", "異動日")
TYPE = "jp.tsunagu.resident.observed.v1"
SOURCE = "urn:tsunagu:connector:registry"


class RegistryConnector(CsvFeedConnector):
    name = FEED.value
    columns = COLUMNS

    def __init__(self, folder: Path | str | bytes, mapping: CsvMapping | Sequence[CsvMapping] | None = None) -> None:
        super().__init__(folder, mapping)

    def scope(self, file: SourceFile, data: bytes) -> str:
        return f"{file.display}@{file_digest(data)}"

    def record_key(self, row: Row) -> str | None:
        no = row.resident_no("宛名番号")
        return f"registry:{no}" if no else None

    def convert(self, row: Row, record: CsvRecord, file: SourceFile, data: bytes) -> list[CloudEvent]:
        resident_no = row.resident_no("宛名番号")
        if resident_no is None:
            raise RowError("empty 宛名番号")
        key = f"registry:{resident_no}"
        household_no = row.resident_no("世帯番号")
        if household_no is None:
            raise RowError("empty 世帯番号")
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
        payload = ResidentObservedV1(
            resident=resident, moved_on=moved_on, snapshot=f"{file.display}:{file_digest(data)}"
        )
        return [
            build_event(
                feed=FEED.value,
                source=SOURCE,
                type_=TYPE,
                time=start_of_day(moved_on),
                key=key,
                field=None,
                payload=payload,
                revision=moved_on.isoformat(),
            )
        ]
