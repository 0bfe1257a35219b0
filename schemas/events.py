"""Versioned event payloads (the ``data`` of a CloudEvent) and the registry of event types.

A published version is never changed incompatibly: add optional fields only, or publish
``…v2``. ``tests/unit/test_schema_compat.py`` compares the models against the JSON Schemas
committed under ``schemas/jsonschema/`` and fails on an incompatible change.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator
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
    resident_no: str | None = PydField(default=None, pattern=r"^\d{10}$")
    household_no: str | None = PydField(default=None, pattern=r"^\d{10}$")
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
    """住民記録: one resident as the registry snapshot lists them."""

    resident: PersonRecord
    moved_on: date | None = None
    snapshot: str = PydField(description="snapshot identity (file name and content hash)")

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
    subject_resident_no: str | None = PydField(default=None, pattern=r"^\d{10}$")
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
    status: Literal["open", "acknowledged"] = "open"
    shareable: bool = PydField(description="every contributing record may flow to the team")
    members: int
    age_bands: list[str]


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
    "jp.tsunagu.team.withdrawal.v1": WithdrawalNoticeV1,
    "jp.tsunagu.support_meeting.case.v1": SupportMeetingCaseV1,
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
