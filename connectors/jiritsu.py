"""自立相談支援 export (feed ``jiritsu``): one CSV per month, UTF-8 with BOM, LF.

Each row becomes one case event (``case.closed`` when 支援状況 is terminal — 終結 or 中断 —,
else ``case.opened`` when 更新日 equals 受付日, else ``case.updated``), time = 更新日 00:00 JST.

When 情報共有同意 is ``1`` the row also carries the person's consent (the national
相談受付・申込票 form): a ``jp.tsunagu.consent.recorded.v1`` event (ConsentV1, origin
``jiritsu_form``, consent id ``jiritsu-form:{相談受付番号}``, version and event time = 同意日
00:00 JST, field livelihood) is yielded *before* the case event, with the same key and
checkpoint. Its id depends on the consent only (revision = its version), so a consent repeated
on later rows of the case is the same event and the hub drops the repeat. Flag ``1`` without
同意日 is a dead letter; ``0`` (or empty) yields no consent event.

"The latest 更新日 wins": every row is emitted in file order (files in month order); the hub
keeps the newest revision (``revision`` = 更新日, ISO) and ignores older ones.
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
    start_of_day,
)
from connectors.mapping import CsvMapping
from schemas.codes import FEED_FIELD, JIRITSU_STATUS, JIRITSU_TOPICS, REFERRAL_LABELS, Feed, Field
from schemas.envelope import CloudEvent
from schemas.events import CASE_TYPES, CaseV1, ConsentV1, PersonRecord
from schemas.normalize import split_name

FEED = Feed.JIRITSU
COLUMNS: tuple[str, ...] = (
    "相談受付番号",
    "受付日",
    "更新日",
    "宛名番号",
    "氏名",
    "ふりがな",
    "生年月日",
    "性別",
    "住所",
    "電話",
    "相談経路",
    "紹介元",
    "主訴",
    "情報共有同意",
    "同意日",
    "支援状況",
    "終結日",
)
TOPICS_SEP = "|"
CONSENT_TYPE = "jp.tsunagu.consent.recorded.v1"
SOURCE = "urn:tsunagu:connector:jiritsu"
_CASE_NO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")


def case_key(case_no: str) -> str:
    if not _CASE_NO.fullmatch(case_no):
        raise RowError("malformed 相談受付番号")
    return f"jiritsu:{case_no}"


class JiritsuConnector(CsvFeedConnector):
    name = FEED.value
    columns = COLUMNS

    def __init__(self, folder: Path | str | bytes, mapping: CsvMapping | Sequence[CsvMapping] | None = None) -> None:
        super().__init__(folder, mapping)

    def record_key(self, row: Row) -> str | None:
        case_no = row.text("相談受付番号")
        return case_key(case_no) if case_no else None

    def convert(self, row: Row, record: CsvRecord, file: SourceFile, data: bytes) -> list[CloudEvent]:
        case_no = row.required("相談受付番号")
        key = case_key(case_no)
        opened_on = row.required_date("受付日")
        changed_on = row.required_date("更新日")
        name = row.required("氏名", "empty name")
        family, given = split_name(name)
        resident_no = row.resident_no("宛名番号")
        subject = PersonRecord(
            record=key,
            name=name,
            family_name=family or None,
            given_name=given or None,
            kana=row.opt("ふりがな"),
            birth_date=row.opt_date("生年月日"),
            sex=row.sex("性別"),
            address=row.opt("住所"),
            phone=row.opt("電話"),
            resident_no=resident_no,
        )
        status = row.code("支援状況", JIRITSU_STATUS)
        case = CaseV1(
            feed=FEED,
            case=key,
            opened_on=opened_on,
            closed_on=row.opt_date("終結日"),
            status=status,
            topics=row.codes("主訴", JIRITSU_TOPICS, TOPICS_SEP),
            referred_by=row.opt_code("紹介元", REFERRAL_LABELS),
            subject=subject,
            revision=changed_on.isoformat(),
        )
        consent: ConsentV1 | None = None
        flag = row.mapping.label("情報共有同意", row.text("情報共有同意"))
        if flag == "1":
            agreed_on = row.opt_date("同意日")
            if agreed_on is None:
                raise RowError("情報共有同意 without 同意日")
            consent = ConsentV1(
                consent_id=f"jiritsu-form:{case_no}",
                version=start_of_day(agreed_on),
                status="active",
                decision="permit",
                subject_record=key,
                subject_resident_no=resident_no,
                grantor="self",
                fields=[Field.LIVELIHOOD],
                period_start=agreed_on,
                origin="jiritsu_form",
            )
        elif flag not in ("0", ""):
            raise RowError("unknown code in 情報共有同意")

        if status.is_terminal:
            change = "closed"
        elif changed_on == opened_on:
            change = "opened"
        else:
            change = "updated"
        events: list[CloudEvent] = []
        if consent is not None:
            events.append(
                build_event(
                    feed=FEED.value,
                    source=SOURCE,
                    type_=CONSENT_TYPE,
                    time=consent.version,
                    key=key,
                    field=FEED_FIELD[FEED],
                    payload=consent,
                    revision=consent.version.isoformat(),
                )
            )
        events.append(
            build_event(
                feed=FEED.value,
                source=SOURCE,
                type_=CASE_TYPES[change],
                time=start_of_day(changed_on),
                key=key,
                field=FEED_FIELD[FEED],
                payload=case,
                revision=case.revision,
            )
        )
        return events
