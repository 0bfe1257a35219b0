"""The consent API's vocabulary: roles, event types, errors, request bodies and the JSON it returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic import Field as PydField

from consent.model import ConsentVersion, Designation, EmergencyOverride
from schemas.codes import RELATION_LABELS, Field
from schemas.envelope import CloudEvent, stable_event_id
from schemas.events import ConsentV1
from schemas.wareki import JST

#: the roles the API knows; a token mapped to anything else is refused (403)
CONSENT_OFFICER = "consent_officer"
COORDINATOR = "coordinator"
ROLES = frozenset({CONSENT_OFFICER, COORDINATOR})

API_SOURCE = "urn:tsunagu:api:consent"
RECORDED = "jp.tsunagu.consent.recorded.v1"
WITHDRAWN = "jp.tsunagu.consent.withdrawn.v1"
#: 続柄 words a guardian grantor may be recorded as (besides ``guardian``); 本人 is ``self``
GUARDIAN_RELATIONS = frozenset(RELATION_LABELS) - {"本人", "世帯主"}
ADULT_AGE = 18

PublishEvent = Callable[[CloudEvent], Awaitable[None]]


# --------------------------------------------------------------------------- errors
class ConsentServiceError(Exception):
    """A request the service refuses; ``status`` is the HTTP status, the message a fixed text (no data)."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ConsentServiceError):
    status = 400


class NotFound(ConsentServiceError):
    status = 404


class Conflict(ConsentServiceError):
    status = 409


class Unavailable(ConsentServiceError):
    status = 503


# --------------------------------------------------------------------------- request bodies
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Subject(_Body):
    """Whom the consent is about: a 宛名番号, or a record key for a person the registry does not know."""

    resident_no: str | None = PydField(default=None, pattern=r"^\d{10}$")
    record: str | None = PydField(default=None, min_length=3, max_length=200, pattern=r"^[a-z]+:\S+$")

    @model_validator(mode="after")
    def _one_way_at_least(self) -> Subject:
        if not self.resident_no and not self.record:
            raise ValueError("name the subject by resident_no or record")
        return self


class Period(_Body):
    start: date
    end: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end is not None and self.end < self.start:
            raise ValueError("period ends before it starts")
        return self


class ConsentRequest(_Body):
    """POST /consents: a permit for the multi-agency team (重層的支援会議)."""

    subject: Subject
    fields: list[Field] = PydField(min_length=1, max_length=4)
    grantor: str = PydField(description="'self', 'guardian' or the guardian's 続柄 (母, 父, 祖母 …); never a name")
    period: Period
    purpose: str = PydField(pattern=r"^[a-z][a-z0-9-]{0,63}$", description="multi-agency-support")


class DesignationRequest(_Body):
    """POST /designations: the 支援会議 the municipality convened for one household."""

    household: str = PydField(min_length=1, max_length=200)
    member_agencies: list[Field] = PydField(min_length=1, max_length=4)
    start: date
    end: date | None = None
    designation_id: str | None = PydField(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,199}$")
    designated_by: str | None = PydField(default=None, max_length=200, description="operator id")


class EmergencyRequest(_Body):
    """POST /emergency: reason and user are checked by the service, so a missing one is a 400."""

    person: str = PydField(min_length=1, max_length=200, description="hub person id")
    fields: list[Field] = PydField(min_length=1, max_length=4)
    reason: str | None = PydField(default=None, max_length=64, description="code: life-or-body, abuse-prevention …")
    user: str | None = PydField(default=None, max_length=200, description="operator id, not a name")

# --------------------------------------------------------------------------- values out
def consent_event(consent: ConsentV1) -> CloudEvent:
    """The intake CloudEvent of one consent version (time = when the version was recorded)."""
    record = f"registry:{consent.subject_resident_no}" if consent.subject_resident_no else consent.subject_record
    assert record is not None  # ConsentV1 names its subject
    digest = ConsentVersion.from_event(consent).digest
    return CloudEvent(
        id=stable_event_id("tsunagu-consent", consent.consent_id, consent.version.isoformat(), digest),
        source=API_SOURCE,
        type=RECORDED if consent.status == "active" else WITHDRAWN,
        time=consent.version,
        sourcerecord=record,
        field=None,
        data=consent.model_dump(mode="json"),
    )


def version_json(v: ConsentVersion) -> dict[str, Any]:
    """One stored version for the officer (ids, codes and dates only)."""
    return {
        "consent_id": v.consent_id,
        "version": v.version.astimezone(JST).isoformat(),
        "status": v.status,
        "decision": v.decision,
        "fields": [f.value for f in v.fields],
        "recipient": v.recipient,
        "purpose": v.purpose,
        "period_start": v.period_start.isoformat(),
        "period_end": v.period_end.isoformat() if v.period_end else None,
        "grantor": v.grantor,
        "origin": v.origin,
        "subject_resident_no": v.subject_resident_no,
        "subject_record": v.subject_record,
    }


def designation_json(d: Designation) -> dict[str, Any]:
    return {"designation_id": d.designation_id, "household": d.household,
            "member_agencies": [f.value for f in d.member_agencies], "start": d.start.isoformat(),
            "end": d.end.isoformat() if d.end else None, "designated_by": d.designated_by}


def emergency_json(e: EmergencyOverride) -> dict[str, Any]:
    return {"person": e.person, "fields": [f.value for f in e.fields], "reason": e.reason, "user": e.user,
            "at": e.at.astimezone(JST).isoformat()}


def jst_now() -> datetime:
    return datetime.now(JST)
