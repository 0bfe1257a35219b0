"""The consent registry's values: consent versions, 支援会議 designations, emergency overrides, decisions.

All values are frozen. Times are aware datetimes; a date-only source value means 00:00
Japan time of that day (../shared/agency-systems/README.md). Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Literal

from schemas.codes import Field
from schemas.envelope import CloudEvent
from schemas.events import ConsentV1

#: the sharing rules this code implements (../shared/domain/sharing-rules.md); every audit entry names it
RULE_VERSION = "sharing-rules/2026-11"

#: Japan time: no daylight saving, so a fixed offset is exact
JST = timezone(timedelta(hours=9), "JST")

#: the recipient and purpose a consent must name to open the team route
TEAM_RECIPIENT = "重層的支援会議"
TEAM_PURPOSE = "multi-agency-support"

Route = Literal["team", "support_meeting", "emergency"]
ConsentStatus = Literal["active", "inactive", "draft", "rejected", "entered-in-error"]
ConsentOrigin = Literal["fhir", "jiritsu_form", "tsunagu"]

#: what the 支援会議 route must strip before anything leaves the hub (第106条の6: the minimum)
SUPPORT_MEETING_OBLIGATIONS: tuple[str, ...] = ("strip_names", "strip_free_text", "strip_sensitive", "age_band")

#: statuses in order of restrictiveness; among versions with the same timestamp the most restrictive wins
STATUS_RANK: dict[str, int] = {"active": 0, "draft": 1, "rejected": 2, "inactive": 3, "entered-in-error": 4}

_ORIGINS = frozenset({"fhir", "jiritsu_form", "tsunagu"})
_CODE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


def start_of(day: date) -> datetime:
    """00:00 Japan time of a day: when a period starting that day begins."""
    return datetime.combine(day, time(0, 0), tzinfo=JST)


def end_of(day: date) -> datetime:
    """00:00 Japan time of the next day: a period ending on ``day`` covers all of it (exclusive bound)."""
    return start_of(day + timedelta(days=1))


def require_aware(value: datetime, what: str) -> datetime:
    """Reject a naive datetime: every instant the rules compare must carry its offset."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must carry a UTC offset")
    return value


def jst_iso(value: datetime) -> str:
    """The same instant written in Japan time, so a basis reads the same whether it came from the DB or an event."""
    return value.astimezone(JST).isoformat()


@dataclass(frozen=True, slots=True)
class ConsentVersion:
    """One recorded version of a consent (every version is kept; the latest at an event's time rules)."""

    consent_id: str
    version: datetime
    status: ConsentStatus
    decision: Literal["permit", "deny"]
    fields: tuple[Field, ...]
    recipient: str
    purpose: str
    period_start: date
    period_end: date | None
    grantor: str
    origin: ConsentOrigin
    subject_resident_no: str | None = None
    subject_record: str | None = None

    def __post_init__(self) -> None:
        require_aware(self.version, "version")
        if not self.consent_id:
            raise ValueError("consent_id must not be empty")
        if self.status not in STATUS_RANK or self.decision not in ("permit", "deny") or self.origin not in _ORIGINS:
            raise ValueError("unknown consent status, decision or origin")

    @classmethod
    def from_event(cls, event: ConsentV1) -> ConsentVersion:
        """The registry's view of a consent event; a naive ``version`` is read as Japan time."""
        version = event.version if event.version.tzinfo is not None else event.version.replace(tzinfo=JST)
        return cls(
            consent_id=event.consent_id,
            version=version,
            status=event.status,
            decision=event.decision,
            fields=tuple(dict.fromkeys(event.fields)),
            recipient=event.recipient,
            purpose=event.purpose,
            period_start=event.period_start,
            period_end=event.period_end,
            grantor=event.grantor,
            origin=event.origin,
            subject_resident_no=event.subject_resident_no,
            subject_record=event.subject_record,
        )

    @property
    def rank(self) -> int:
        return STATUS_RANK[self.status]

    @property
    def starts(self) -> datetime:
        return start_of(self.period_start)

    @property
    def ends(self) -> datetime | None:
        """Exclusive end instant: ``period_end`` is inclusive through 23:59:59.999999 Japan time."""
        return end_of(self.period_end) if self.period_end is not None else None

    def in_period(self, at: datetime) -> bool:
        ends = self.ends
        return self.starts <= at and (ends is None or at < ends)

    @property
    def counts_for_team(self) -> bool:
        """A permit names the team as recipient and multi-agency support as purpose."""
        return self.recipient == TEAM_RECIPIENT and self.purpose == TEAM_PURPOSE

    @property
    def digest(self) -> str:
        """Content hash of everything but the id and version: tells a redelivery from a different version."""
        body = {
            "status": self.status,
            "decision": self.decision,
            "fields": sorted(f.value for f in self.fields),
            "recipient": self.recipient,
            "purpose": self.purpose,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat() if self.period_end else None,
            "grantor": self.grantor,
            "origin": self.origin,
            "subject_resident_no": self.subject_resident_no,
            "subject_record": self.subject_record,
        }
        raw = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Designation:
    """A 支援会議 (第106条の6) the municipality convened for one household, and which fields sit on it."""

    designation_id: str
    household: str
    member_agencies: tuple[Field, ...]
    start: date
    end: date | None = None
    designated_by: str = ""

    def __post_init__(self) -> None:
        if not self.designation_id or not self.household:
            raise ValueError("a designation needs an id and a household")
        if self.end is not None and self.end < self.start:
            raise ValueError("a designation cannot end before it starts")

    def active_at(self, at: datetime) -> bool:
        """From ``start`` 00:00 Japan time through the whole of ``end`` (inclusive), like a consent period."""
        return start_of(self.start) <= at and (self.end is None or at < end_of(self.end))


@dataclass(frozen=True, slots=True)
class EmergencyOverride:
    """An emergency use (個人情報保護法 第69条第2項第4号, 虐待防止): who, why, for whom, which fields.

    ``reason`` is a short code (``life-or-body``, ``abuse-prevention`` …) because it goes into the
    audit trail, which never holds free text; ``user`` is an operator id, not a name.
    """

    reason: str
    user: str
    at: datetime
    person: str
    fields: tuple[Field, ...]

    def __post_init__(self) -> None:
        if not self.reason or not self.reason.strip():
            raise ValueError("an emergency override needs a reason")
        if not _CODE.match(self.reason):
            raise ValueError("an emergency reason is a short lower-case code, not free text")
        if not self.user or not self.user.strip():
            raise ValueError("an emergency override needs the user who invoked it")
        if not self.person:
            raise ValueError("an emergency override names the person it is for")
        require_aware(self.at, "at")

    def covers(self, person: str | None, field_: Field | None) -> bool:
        return person == self.person and field_ is not None and field_ in self.fields


@dataclass(frozen=True, slots=True)
class Decision:
    """The sharing decision for one event; ``route`` is None when nothing flows."""

    route: Route | None
    permit: bool
    basis: str
    obligations: tuple[str, ...] = ()
    at: datetime | None = field(default=None, compare=False)
    rule_version: str = RULE_VERSION

    def __post_init__(self) -> None:
        if self.permit != (self.route is not None):
            raise ValueError("a permit has a route and a deny has none")


@dataclass(frozen=True, slots=True)
class DecisionInput:
    """What the rules need to know about an event (never its content)."""

    event_id: str
    event_type: str
    field: Field | None
    person: str | None
    household: str | None
    time: datetime
    record: str

    def __post_init__(self) -> None:
        require_aware(self.time, "time")

    @classmethod
    def of(cls, event: CloudEvent) -> DecisionInput:
        """From a resolved CloudEvent: ``time`` is when the change happened at the source."""
        return cls(
            event_id=event.id,
            event_type=event.type,
            field=event.field,
            person=event.person,
            household=event.household,
            time=event.time,
            record=event.sourcerecord,
        )


def fields_tuple(values: Iterable[str | Field]) -> tuple[Field, ...]:
    """Field codes, duplicates dropped, order kept."""
    return tuple(dict.fromkeys(Field(v) for v in values))
