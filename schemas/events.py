"""Versioned event payloads (the ``data`` of a CloudEvent) and the registry of event types.

A published version is never changed incompatibly: add optional fields only, or publish
``…v2``. ``tests/unit/test_schema_compat.py`` compares the models against the JSON Schemas
committed under ``schemas/jsonschema/`` and fails on an incompatible change.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator
from pydantic import Field as PydField

from schemas.codes import (
    CaseStatus,
    DisabilityType,
    Feed,
    Field,
    HouseholdSituation,
    MemberNote,
    ReferralTarget,
    Relation,
    Sex,
    Topic,
)
from schemas.deadletter import DEADLETTER_TYPE as DEADLETTER_TYPE
from schemas.deadletter import DeadLetterOrigin as DeadLetterOrigin
from schemas.deadletter import DeadLetterV1 as DeadLetterV1
from schemas.digits import ascii_digits
from schemas.registry_codes import MoveReason, NamePreference, ResidentStatus


def _number_in_ascii(value: object) -> object:
    """宛名番号 / 世帯番号 in any digits (full-width, other scripts) as ASCII digits; refused otherwise."""
    if value is None:
        return None
    digits = ascii_digits(value)
    if digits is None:
        raise ValueError("not a number written in digits")  # never the value: it identifies a person
    return digits


NUMBER_10: str = r"^[0-9]{10}$"
r"""A 10-digit number in ASCII digits only (``\d`` would also accept every other script's digits)."""

ResidentNumber = Annotated[str | None, BeforeValidator(_number_in_ascii)]
"""宛名番号 or 世帯番号: normalized to ASCII digits on the way in, then checked against :data:`NUMBER_10`."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PersonRecord(_Frozen):
    """A person as one source wrote them. Personal data: never logged."""

    record: str = PydField(description="record key, e.g. houkatsu:C01-2025-0042")
    name: str = PydField(min_length=1, description="name as written (kanji), separators kept")
    family_name: str | None = None
    given_name: str | None = None
    kana: str | None = None
    birth_date: date | None = None
    sex: Sex = Sex.UNKNOWN
    address: str | None = None
    phone: str | None = None
    resident_no: ResidentNumber = PydField(default=None, pattern=NUMBER_10)
    household_no: ResidentNumber = PydField(default=None, pattern=NUMBER_10)
    relation: Relation | None = None


class HouseholdMember(_Frozen):
    """One houkatsu 同居家族 entry, a person in its own right (record key ``…:family:n``)."""

    person: PersonRecord
    notes: list[MemberNote] = []
    notes_text: str | None = PydField(default=None, description="備考 words no code list knows (sensitive)")


class RelatedPerson(_Frozen):
    """Another person named in a case record (kodomo: the other children and the guardians)."""

    person: PersonRecord
    role: Literal["child", "guardian"]


class Sensitive(_Frozen):
    """要配慮個人情報 and free text: flows only in full to the consented team, never to a 支援会議."""

    summary: str | None = None
    disability_types: list[DisabilityType] = []
    notes: list[str] = []


class ResidentObservedV1(_Frozen):
    """住民記録: one resident as the registry snapshot lists them.

    The optional fields after ``snapshot`` come from the 住民記録 標準準拠システム extract; the
    simplified ``jumin.csv`` leaves them unset. Names are as the registry wrote them (MJ+ glyphs:
    variation selectors and plane-16 private-use characters kept). There is never a 個人番号 or
    住民票コード here.
    """

    resident: PersonRecord
    moved_on: date | None = None
    snapshot: str = PydField(description="snapshot identity (file name and content hash)")
    status: ResidentStatus | None = PydField(default=None, description="住民状態")
    status_on: date | None = PydField(default=None, description="the day the 住民状態 began (消除: 異動年月日)")
    move_reason: MoveReason | None = PydField(default=None, description="異動事由 of the change this row reports")
    notified_on: date | None = PydField(default=None, description="異動届出年月日")
    birth_date_unknown: bool = PydField(default=False, description="生年月日 不詳: no birth date is evidence")
    former_surname: str | None = PydField(default=None, description="旧氏")
    former_surname_kana: str | None = PydField(default=None, description="旧氏_フリガナ")
    alias_name: str | None = PydField(default=None, description="通称")
    alias_kana: str | None = PydField(default=None, description="通称_フリガナ")
    foreign_name_alphabet: str | None = PydField(default=None, description="氏名_外国人ローマ字")
    foreign_name_kanji: str | None = PydField(default=None, description="氏名_外国人漢字")
    name_preference: NamePreference | None = PydField(default=None, description="氏名優先区分")
    address_building: str | None = PydField(default=None, description="方書 (building, room), not part of address")

    @model_validator(mode="after")
    def _registry_keys(self) -> ResidentObservedV1:
        if not self.resident.resident_no or not self.resident.household_no:
            raise ValueError("a registry resident needs resident_no and household_no")
        return self


class PersonObservedV1(_Frozen):
    """A client record changed at a source without a case change (shogai t_riyousha)."""

    person: PersonRecord
    feed: Feed
    sensitive: Sensitive = Sensitive()


class CaseV1(_Frozen):
    """A case opened, updated or closed at one agency (相談記録)."""

    feed: Feed
    case: str = PydField(description="the case's own key, e.g. houkatsu:C01-2025-0042, shogai:case:12")
    agency: str | None = PydField(default=None, description="centre code or agency id within the feed")
    opened_on: date
    closed_on: date | None = None
    status: CaseStatus
    topics: list[Topic] = []
    referral_to: ReferralTarget | None = None
    referred_by: ReferralTarget | None = None
    household_situation: HouseholdSituation | None = None
    subject: PersonRecord
    household_members: list[HouseholdMember] = []
    related_persons: list[RelatedPerson] = []
    source_household_no: str | None = PydField(default=None, description="the household the source names")
    sensitive: Sensitive = Sensitive()
    revision: str = PydField(description="the source's change marker (更新日時 / koushin…), ISO 8601")


class ReferralRequestedV1(_Frozen):
    """つなぎ: a case handed to another agency or to multi-agency coordination."""

    feed: Feed
    case: str
    to: ReferralTarget
    requested_on: date
    subject: PersonRecord


class ConsentV1(_Frozen):
    """本人同意 as recorded (FHIR Consent, 自立相談支援 form flag, or tsunagu itself)."""

    consent_id: str
    version: datetime = PydField(description="when this version was recorded (FHIR date)")
    status: Literal["active", "inactive", "draft", "rejected", "entered-in-error"]
    decision: Literal["permit", "deny"] = "permit"
    subject_resident_no: ResidentNumber = PydField(default=None, pattern=NUMBER_10)
    subject_record: str | None = None
    grantor: str = PydField(description="'self' or the guardian relation (e.g. 母), never a name")
    fields: list[Field]
    recipient: str = "重層的支援会議"
    purpose: str = "multi-agency-support"
    period_start: date
    period_end: date | None = None
    origin: Literal["fhir", "jiritsu_form", "tsunagu"]
    fhir: dict[str, Any] | None = PydField(default=None, description="the FHIR R5 resource as received")

    @model_validator(mode="after")
    def _has_subject(self) -> ConsentV1:
        if not self.subject_resident_no and not self.subject_record:
            raise ValueError("a consent names its subject by resident_no or record key")
        return self


class AlertV1(_Frozen):
    """A cross-field alert for a household (alerts.md)."""

    alert: str
    kind: Literal["multi_field", "8050", "double_care", "young_carer"]
    household: str
    fields: list[Field]
    records: list[str]
    status: Literal["open", "acknowledged", "closed"] = "open"
    shareable: bool = PydField(description="every contributing record may flow to the team")
    members: int
    age_bands: list[str]
    closed_on: date | None = PydField(default=None, description="the day the hub ended the alert")
    close_reason: Literal["member_deceased", "member_moved_out", "member_removed"] | None = PydField(
        default=None, description="why the hub ended it: a person it depended on left the household")


class WithdrawalNoticeV1(_Frozen):
    """Tells team views to hide a person's earlier events: their consent for these fields ended."""

    consent_id: str
    fields: list[Field]
    effective: datetime


class SupportMeetingCaseV1(_Frozen):
    """The minimal form for a 支援会議 (第106条の6): no names, no free text, no 要配慮 details."""

    field: Field
    status: CaseStatus
    opened_on: date
    closed_on: date | None = None
    age_band: str | None = None
    change: Literal["opened", "updated", "closed"]


#: the workspace's referral targets: an agency, or one of the other 重層 programmes
#: (``outreach`` = アウトリーチ等を通じた継続的支援事業, ``participation`` = 参加支援事業)
WorkspaceTarget = ReferralTarget | Literal["outreach", "participation"]
ReferralStatus = Literal["requested", "accepted", "rejected", "in-progress", "completed", "cancelled"]


class AlertWorkV1(_Frozen):
    """What the multi-agency team did with an alert (workspace): no names, no record keys, no fields."""

    alert: str
    household: str
    kind: Literal["multi_field", "8050", "double_care", "young_carer"]
    state: Literal["acknowledged", "assigned", "closed"]
    assignee: str | None = PydField(default=None, description="workspace user name (staff), when assigned")
    closed_reason: str | None = PydField(default=None, description="a reason code, never free text")
    reopened: bool = False
    by: str = PydField(description="workspace user name (staff) who made the change")


class ReferralStatusV1(_Frozen):
    """A referral's status changed (HL7 Gravity SDOH referral Task statuses); no names, no case text."""

    referral: str
    household: str | None = None
    origin: Literal["event", "coordinator"]
    from_agency: ReferralTarget | None = None
    target: WorkspaceTarget
    status: ReferralStatus
    previous: ReferralStatus | None = None
    reason: str | None = PydField(default=None, description="a reason code (rejected, cancelled), never free text")
    by: str = PydField(description="workspace user name, or 'event' when a case event moved it")


class PlanUpdatedV1(_Frozen):
    """A プラン of the multi-agency team was made or changed; goals, roles and entries stay in the workspace."""

    plan: str
    household: str
    change: Literal["created", "updated", "monitored", "evaluated", "resumed", "closed", "handed_over"]
    state: Literal["active", "evaluated", "closed", "handed_over"]
    lead_agency: ReferralTarget
    agencies: list[ReferralTarget] = PydField(default=[], description="agencies with a role (役割分担)")
    programmes: list[Literal["outreach", "participation"]] = []
    next_monitoring_on: date | None = None
    version: int = PydField(ge=1)
    by: str = PydField(description="workspace user name (staff)")


EVENT_TYPES: dict[str, type[BaseModel]] = {
    "jp.tsunagu.resident.observed.v1": ResidentObservedV1,
    "jp.tsunagu.person.observed.v1": PersonObservedV1,
    "jp.tsunagu.case.opened.v1": CaseV1,
    "jp.tsunagu.case.updated.v1": CaseV1,
    "jp.tsunagu.case.closed.v1": CaseV1,
    "jp.tsunagu.referral.requested.v1": ReferralRequestedV1,
    "jp.tsunagu.consent.recorded.v1": ConsentV1,
    "jp.tsunagu.consent.withdrawn.v1": ConsentV1,
    "jp.tsunagu.alert.raised.v1": AlertV1,
    "jp.tsunagu.alert.updated.v1": AlertV1,
    "jp.tsunagu.alert.ended.v1": AlertV1,
    "jp.tsunagu.team.withdrawal.v1": WithdrawalNoticeV1,
    "jp.tsunagu.support_meeting.case.v1": SupportMeetingCaseV1,
    "jp.tsunagu.alert.acknowledged.v1": AlertWorkV1,
    "jp.tsunagu.alert.assigned.v1": AlertWorkV1,
    "jp.tsunagu.alert.closed.v1": AlertWorkV1,
    "jp.tsunagu.referral.status.v1": ReferralStatusV1,
    "jp.tsunagu.plan.updated.v1": PlanUpdatedV1,
    DEADLETTER_TYPE: DeadLetterV1,
}

CASE_TYPES = {
    "opened": "jp.tsunagu.case.opened.v1",
    "updated": "jp.tsunagu.case.updated.v1",
    "closed": "jp.tsunagu.case.closed.v1",
}


class UnknownEventType(ValueError):
    pass


def parse_payload(event_type: str, data: dict[str, Any]) -> BaseModel:
    """Validate an event's data against the model its type names."""
    model = EVENT_TYPES.get(event_type)
    if model is None:
        raise UnknownEventType("unknown event type")
    return model.model_validate(data)


def age_on(birth: date, on: date) -> int:
    """Full years on a day (alerts.md: age is full years on the day the rule is checked)."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def age_band(birth: date | None, on: date) -> str | None:
    """The 支援会議 form of an age: a ten-year band (``"40-49"``), minors as ``"0-9"`` / ``"10-17"``."""
    if birth is None:
        return None
    age = age_on(birth, on)
    if age < 10:
        return "0-9"
    if age < 18:
        return "10-17"
    if age < 20:
        return "18-19"
    low = age // 10 * 10
    return f"{low}-{low + 9}"


def time_of(value: datetime) -> str:
    return value.isoformat()
