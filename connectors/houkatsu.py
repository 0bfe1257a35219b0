"""地域包括支援センター 総合相談受付簿 (feed ``houkatsu``): one CSV per centre per day, CP932, CRLF.

Each row becomes one case event:

* ``jp.tsunagu.case.closed.v1`` when 対応状況 is terminal (終結);
* else ``jp.tsunagu.case.opened.v1`` when 更新日時 falls on 受付日 (the row was created that day);
* else ``jp.tsunagu.case.updated.v1``.

A row whose 対応状況 is 他機関へつなぎ also yields ``jp.tsunagu.referral.requested.v1``
(same checkpoint, its own stable id), after the case event.

"The latest 更新日時 wins": the connector emits *every* row it sees, in file order; files are
read in (date in the name, centre) order so time flows forward across centres. The hub keeps
the newest state of a case and ignores older revisions (``revision`` = 更新日時, ISO 8601).

Record keys: the subject is ``houkatsu:{センターコード}-{受付番号}`` (also the case key), the
n-th 同居家族 entry (1-based, blank entries not counted) ``…:family:{n}``.

Column names and code spellings come from a :class:`~connectors.mapping.CsvMapping`
(``connectors/mappings/houkatsu.toml`` by default); a centre with another layout is
onboarded with its own mapping file: ``HoukatsuConnector(folder, [default, load_mapping(p)])``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from connectors.csv_export import (
    CsvFeedConnector,
    CsvRecord,
    Row,
    RowError,
    SourceFile,
    build_event,
    lookup_code,
    parse_date_cell,
    parse_datetime_cell,
)
from connectors.mapping import CsvMapping
from schemas.codes import (
    FEED_FIELD,
    HOUKATSU_STATUS,
    HOUKATSU_TOPICS,
    HOUSEHOLD_SITUATION_LABELS,
    MEMBER_NOTE_LABELS,
    REFERRAL_LABELS,
    RELATION_LABELS,
    CaseStatus,
    Feed,
    MemberNote,
)
from schemas.envelope import CloudEvent
from schemas.events import CASE_TYPES, CaseV1, HouseholdMember, PersonRecord, ReferralRequestedV1, Sensitive
from schemas.normalize import split_name

FEED = Feed.HOUKATSU
COLUMNS: tuple[str, ...] = (
    "センターコード",
    "受付番号",
    "受付日",
    "更新日時",
    "宛名番号",
    "氏名",
    "氏名カナ",
    "生年月日",
    "性別",
    "住所",
    "電話番号",
    "世帯状況",
    "相談区分",
    "相談概要",
    "対応状況",
    "つなぎ先",
    "終結日",
    "同居家族",
)
MEMBERS_SEP = "／"
TOPICS_SEP = ";"
_CENTRE = re.compile(r"^[A-Za-z0-9]+$")
_CASE_NO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_ENTRY_SPLIT = re.compile(r"[:：]")
_NOTE_SPLIT = re.compile(r"[、，,・/／\s]+")
REFERRAL_TYPE = "jp.tsunagu.referral.requested.v1"


def case_key(centre: str, case_no: str) -> str:
    if not _CENTRE.fullmatch(centre):
        raise RowError("malformed センターコード")
    if not _CASE_NO.fullmatch(case_no):
        raise RowError("malformed 受付番号")
    return f"houkatsu:{centre}-{case_no}"


def split_person_name(name: str) -> tuple[str | None, str | None]:
    family, given = split_name(name)
    return (family or None, given or None)


def parse_household(text: str, key: str, sep: str = MEMBERS_SEP) -> list[HouseholdMember]:
    """同居家族 → members. Entries ``続柄:氏名:生年月日:備考`` separated by ``sep``.

    A separator followed by a digit does not split (it is inside a 西暦 date written
    ``１９４４／０５／０３``). Blank entries are skipped and not counted. 生年月日 and 備考 may be
    empty; 備考 words a code list knows become ``notes``, the others are kept in ``notes_text``.
    Raises RowError for an entry without 続柄 or name, an unknown 続柄 or an impossible date.
    """
    members: list[HouseholdMember] = []
    splitter = re.compile(re.escape(sep) + r"(?![0-9０-９])")
    for raw in splitter.split(text):
        entry = raw.strip()
        if not entry:
            continue
        parts = [p.strip() for p in _ENTRY_SPLIT.split(entry, maxsplit=3)]
        if len(parts) < 2:
            raise RowError("malformed entry in 同居家族")
        parts += [""] * (4 - len(parts))
        relation_label, name, birth, note = parts
        relation = lookup_code(RELATION_LABELS, relation_label, "同居家族 続柄") if relation_label else None
        if relation is None:
            raise RowError("empty 続柄 in 同居家族")
        if not name:
            raise RowError("empty name in 同居家族")
        notes: list[MemberNote] = []
        unknown: list[str] = []
        for word in _NOTE_SPLIT.split(note):
            if not word:
                continue
            code = MEMBER_NOTE_LABELS.get(word)
            if code is None:
                unknown.append(word)
            elif code not in notes:
                notes.append(code)
        family, given = split_person_name(name)
        n = len(members) + 1
        members.append(
            HouseholdMember(
                person=PersonRecord(
                    record=f"{key}:family:{n}",
                    name=name,
                    family_name=family,
                    given_name=given,
                    birth_date=parse_date_cell(birth, "同居家族 生年月日") if birth else None,
                    relation=relation,
                ),
                notes=notes,
                notes_text=" ".join(unknown) or None,
            )
        )
    return members


class HoukatsuConnector(CsvFeedConnector):
    name = FEED.value
    columns = COLUMNS

    def __init__(self, folder: Path | str | bytes, mapping: CsvMapping | Sequence[CsvMapping] | None = None) -> None:
        super().__init__(folder, mapping)

    def record_key(self, row: Row) -> str | None:
        centre, case_no = row.text("センターコード"), row.text("受付番号")
        if not centre or not case_no:
            return None
        return case_key(centre, case_no)

    def convert(self, row: Row, record: CsvRecord, file: SourceFile, data: bytes) -> list[CloudEvent]:
        centre = row.required("センターコード")
        key = case_key(centre, row.required("受付番号"))
        changed = parse_datetime_cell(row.required("更新日時"), "更新日時")
        opened_on = row.required_date("受付日")
        name = row.required("氏名", "empty name")
        family, given = split_person_name(name)
        subject = PersonRecord(
            record=key,
            name=name,
            family_name=family,
            given_name=given,
            kana=row.opt("氏名カナ"),
            birth_date=row.opt_date("生年月日"),
            sex=row.sex("性別"),
            address=row.opt("住所"),
            phone=row.opt("電話番号"),
            resident_no=row.resident_no("宛名番号"),
        )
        status = row.code("対応状況", HOUKATSU_STATUS)
        referral_to = row.code("つなぎ先", REFERRAL_LABELS) if status is CaseStatus.REFERRED else None
        case = CaseV1(
            feed=FEED,
            case=key,
            agency=centre,
            opened_on=opened_on,
            closed_on=row.opt_date("終結日"),
            status=status,
            topics=row.codes("相談区分", HOUKATSU_TOPICS, TOPICS_SEP),
            referral_to=referral_to,
            household_situation=row.opt_code("世帯状況", HOUSEHOLD_SITUATION_LABELS),
            subject=subject,
            household_members=parse_household(
                row.text("同居家族"), key, row.mapping.separator("同居家族", MEMBERS_SEP)
            ),
            sensitive=Sensitive(summary=row.opt("相談概要")),
            revision=changed.isoformat(),
        )
        if status.is_terminal:
            change = "closed"
        elif changed.date() == opened_on:
            change = "opened"
        else:
            change = "updated"
        source = f"urn:tsunagu:connector:houkatsu:{centre}"

        def emit(type_: str, payload: CaseV1 | ReferralRequestedV1) -> CloudEvent:
            return build_event(
                feed=FEED.value,
                source=source,
                type_=type_,
                time=changed,
                key=key,
                field=FEED_FIELD[FEED],
                payload=payload,
                revision=case.revision,
            )

        events = [emit(CASE_TYPES[change], case)]
        if referral_to is not None:
            referral = ReferralRequestedV1(
                feed=FEED, case=key, to=referral_to, requested_on=changed.date(), subject=subject
            )
            events.append(emit(REFERRAL_TYPE, referral))
        return events
