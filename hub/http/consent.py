"""The consent officer's JSON API, and the service functions it shares with ``tsunagu consent``.

``make_consent_router(sessions, publish_event)`` returns a FastAPI ``APIRouter``:

=========================================  ==============================  =========================================
``POST /consents``                         consent_officer                 record a consent → its FHIR R5 resource
``POST /consents/{id}/withdraw``           consent_officer                 a later ``inactive`` version → its FHIR
``GET /persons/{resident_no}/consents``    consent_officer, coordinator    every version of that resident's consents
``POST /designations``                     coordinator                     a 支援会議 (第106条の6) for a household
``POST /emergency``                        coordinator                     an emergency use (reason code and user)
=========================================  ==============================  =========================================

Authentication: ``Authorization: Bearer <token>``; tokens are configured in ``Settings.api_tokens``
(token → role), from the environment as JSON: ``TSUNAGU_API_TOKENS='{"<token>":"consent_officer"}'``.
Tokens are compared in constant time (``hmac.compare_digest``, every configured token each time).
No or an unknown token → 401; a known token whose role may not call the endpoint, or whose role is
neither ``consent_officer`` nor ``coordinator`` → 403.

A consent recorded or withdrawn here gets origin ``tsunagu`` and a fresh id (``tsunagu-<hex>``); its
version is the instant it was recorded (a consent counts from then: see ``consent.decide``). It
reaches the hub as a ``jp.tsunagu.consent.recorded.v1`` / ``…withdrawn.v1`` CloudEvent on the intake
topic (``publish_event``, awaited before anything is stored: if the broker cannot be reached, nothing
is recorded and the API answers 503), so the hub applies it like any consent: it releases held
events, or publishes the team's withdrawal notice. It is also kept in the registry at once so the
officer sees it; the hub's later copy of the same version is a no-op (same id, version and content).
The FHIR resource returned re-imports losslessly: ``parse_consent(resource) == consent``.

A 支援会議 designation and an emergency override are stored directly (``ConsentRepository``); they
apply to the decisions the hub makes from then on (an override for ``hub.pipeline.adapters.EMERGENCY_WINDOW``).
An emergency override requires a reason code (``life-or-body``, ``abuse-prevention`` …; a code, never
free text, because it goes into the audit trail) and the operator id who invokes it: 400 otherwise.

Nothing here logs or returns names or case content; error messages are fixed texts.
"""

from __future__ import annotations

import asyncio
import hmac
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, model_validator
from pydantic import Field as PydField
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from consent.model import TEAM_PURPOSE, TEAM_RECIPIENT, ConsentVersion, Designation, EmergencyOverride
from schemas.codes import RELATION_LABELS, Field
from schemas.envelope import CloudEvent, stable_event_id
from schemas.events import ConsentV1, age_on
from schemas.fhir_consent import to_fhir
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
T = TypeVar("T")


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


# --------------------------------------------------------------------------- identity look-ups
def persons_of_resident(s: Session, resident_no: str) -> set[str]:
    """Every hub person that is (or was merged with) the resident with this 宛名番号."""
    from hub.identity.tables import Person, PersonRecordRow, Resident

    found: set[str] = set(s.scalars(select(Person.id).where(Person.resident_no == resident_no)))
    found |= set(s.scalars(select(Resident.person_id).where(Resident.resident_no == resident_no)))
    found |= set(s.scalars(select(PersonRecordRow.person_id).where(or_(
        PersonRecordRow.resident_no == resident_no, PersonRecordRow.record == f"registry:{resident_no}"))))
    return merged_closure(s, found)


def merged_closure(s: Session, persons: Collection[str]) -> set[str]:
    """The persons plus those merged into them and those they were merged into (a reviewer's link)."""
    from hub.identity.tables import Person

    out = set(persons)
    frontier = set(persons)
    while frontier:
        rows = s.execute(select(Person.id, Person.merged_into).where(
            or_(Person.id.in_(frontier), Person.merged_into.in_(frontier)))).all()
        new = {x for row in rows for x in row if x is not None} - out
        out |= new
        frontier = new
    return out


def subject_keys_of_resident(s: Session, resident_no: str) -> tuple[set[str], set[str]]:
    """The resident numbers and record keys under which this resident's consents may be filed."""
    from hub.pipeline.adapters import subject_keys

    resident_nos, records = {resident_no}, {f"registry:{resident_no}"}
    for person in persons_of_resident(s, resident_no):
        nos, recs = subject_keys(s, person)
        resident_nos |= nos
        records |= recs
    return resident_nos, records


def _birth_date(s: Session, subject: Subject) -> date | None:
    from hub.identity.tables import PersonRecordRow, Resident

    if subject.resident_no:
        r = s.get(Resident, subject.resident_no)
        if r is not None and r.birth_date is not None:
            return r.birth_date
    if subject.record:
        row = s.get(PersonRecordRow, subject.record)
        if row is not None:
            return row.birth_date
    return None


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


def _jst_now() -> datetime:
    return datetime.now(JST)


# --------------------------------------------------------------------------- the service
@dataclass
class ConsentService:
    """What the API and ``tsunagu consent`` do; raises ConsentServiceError subclasses."""

    sessions: sessionmaker[Session]
    publish_event: PublishEvent
    municipality_code: str = "999999"
    now: Callable[[], datetime] = _jst_now

    def fhir(self, consent: ConsentV1) -> dict[str, Any]:
        return to_fhir(consent, municipality_code=self.municipality_code)

    # ---------------------------------------------------------------- consents
    async def record(self, req: ConsentRequest) -> ConsentV1:
        """A new consent (origin ``tsunagu``): published to the hub, then kept in the registry."""
        grantor = req.grantor.strip()
        if grantor not in ("self", "guardian") and grantor not in GUARDIAN_RELATIONS:
            raise BadRequest("grantor: use self, guardian or the guardian's 続柄 (never a name)")
        if req.purpose != TEAM_PURPOSE:
            raise BadRequest(f"purpose: tsunagu records consents for {TEAM_PURPOSE} only")
        recorded = self.now()
        birth = await asyncio.to_thread(self._read, lambda s: _birth_date(s, req.subject))
        if birth is not None and grantor == "self" and age_on(birth, recorded.astimezone(JST).date()) < ADULT_AGE:
            raise BadRequest("grantor: for a child under 18 a guardian grants consent")
        consent = ConsentV1(
            consent_id=f"tsunagu-{uuid.uuid4().hex}",
            version=recorded,
            status="active",
            decision="permit",
            subject_resident_no=req.subject.resident_no,
            subject_record=req.subject.record,
            grantor=grantor,
            fields=list(dict.fromkeys(req.fields)),
            recipient=TEAM_RECIPIENT,
            purpose=req.purpose,
            period_start=req.period.start,
            period_end=req.period.end,
            origin="tsunagu",
        )
        return await self._publish_and_keep(consent)

    async def withdraw(self, consent_id: str) -> ConsentV1:
        """A later ``inactive`` version of the consent, effective now."""
        latest = await asyncio.to_thread(self._read, lambda s: _latest_versions(s, consent_id))
        if not latest:
            raise NotFound("no consent with this id")
        if any(v.status != "active" for v in latest):
            raise Conflict("this consent is not active (already withdrawn or never in force)")
        base = latest[0]
        version = max(self.now(), base.version + timedelta(microseconds=1))
        consent = ConsentV1(
            consent_id=base.consent_id,
            version=version,
            status="inactive",
            decision=base.decision,
            subject_resident_no=base.subject_resident_no,
            subject_record=base.subject_record,
            grantor=base.grantor,
            fields=list(base.fields),
            recipient=base.recipient,
            purpose=base.purpose,
            period_start=base.period_start,
            period_end=base.period_end,
            origin="tsunagu",
        )
        return await self._publish_and_keep(consent)

    async def _publish_and_keep(self, consent: ConsentV1) -> ConsentV1:
        kept = consent.model_copy(update={"fhir": self.fhir(consent)})
        try:
            await self.publish_event(consent_event(kept))
        except Exception as exc:
            raise Unavailable(f"the hub could not be reached ({type(exc).__name__}); nothing was recorded") from None
        await asyncio.to_thread(self._write, lambda s: _keep(s, kept))
        return consent

    def versions(self, resident_no: str) -> list[ConsentVersion]:
        """Every version of every consent filed under this resident (their 宛名番号 or any of their records)."""
        from consent.store import ConsentRepository

        def read(s: Session) -> list[ConsentVersion]:
            resident_nos, records = subject_keys_of_resident(s, resident_no)
            return ConsentRepository(s).versions_for(resident_nos, records)

        return self._read(read)

    # ---------------------------------------------------------------- 支援会議, emergency
    def designate(self, req: DesignationRequest, by: str) -> Designation:
        from consent.store import ConsentRepository
        from hub.identity.tables import Household

        try:
            designation = Designation(
                designation_id=req.designation_id or f"designation-{uuid.uuid4().hex}",
                household=req.household,
                member_agencies=tuple(dict.fromkeys(req.member_agencies)),
                start=req.start,
                end=req.end,
                designated_by=req.designated_by or by,
            )
        except ValueError:
            raise BadRequest("a designation cannot end before it starts") from None

        def write(s: Session) -> None:
            if s.get(Household, req.household) is None:
                raise NotFound("no household with this id")
            ConsentRepository(s).add_designation(designation)

        self._write(write)
        return designation

    def emergency(self, req: EmergencyRequest) -> EmergencyOverride:
        from consent.store import ConsentRepository
        from hub.identity.tables import Person

        if not (req.reason or "").strip() or not (req.user or "").strip():
            raise BadRequest("emergency sharing requires a reason code and the user who invokes it")
        try:
            override = EmergencyOverride(reason=(req.reason or "").strip(), user=(req.user or "").strip(),
                                         at=self.now(), person=req.person, fields=tuple(dict.fromkeys(req.fields)))
        except ValueError:
            raise BadRequest("reason: a short lower-case code such as life-or-body or abuse-prevention") from None

        def write(s: Session) -> None:
            if s.get(Person, req.person) is None:
                raise NotFound("no person with this id")
            ConsentRepository(s).record_emergency(override)

        self._write(write)
        return override

    # ---------------------------------------------------------------- sessions
    def _read(self, fn: Callable[[Session], T]) -> T:
        with self.sessions() as s:
            return fn(s)

    def _write(self, fn: Callable[[Session], T]) -> T:
        with self.sessions.begin() as s:
            return fn(s)


def _latest_versions(s: Session, consent_id: str) -> list[ConsentVersion]:
    """The versions sharing the latest timestamp of this consent (all rule together), active ones first."""
    from consent.store import ConsentVersionRow

    rows = s.scalars(select(ConsentVersionRow).where(ConsentVersionRow.consent_id == consent_id)
                     .order_by(ConsentVersionRow.version, ConsentVersionRow.id)).all()
    if not rows:
        return []
    versions = [r.to_version() for r in rows]
    last = max(v.version for v in versions)
    return sorted((v for v in versions if v.version == last), key=lambda v: v.rank)


def _keep(s: Session, consent: ConsentV1) -> None:
    from consent.store import ConsentRepository

    ConsentRepository(s).add_version(consent, recorded_at=datetime.now(UTC))


# --------------------------------------------------------------------------- publishers
class KafkaEventPublisher:
    """``publish_event`` onto a Kafka topic (aiokafka; acks=all, keyed by the event's record key)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._producer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        # no idempotent producer: Tansu refuses aiokafka's InitProducerId (../shared/kafka/TANSU.md); one
        # event per request, awaited, and the hub drops a redelivered copy by its CloudEvents source + id
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, client_id="tsunagu-consent-api",
                                          acks="all", request_timeout_ms=10000)
        try:
            await self._producer.start()
        except Exception:
            await self._producer.stop()
            self._producer = None
            raise

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def __call__(self, event: CloudEvent) -> None:
        if self._producer is None:
            raise RuntimeError("publisher not started")
        await self._producer.send_and_wait(self.topic, event.to_json_bytes(), key=event.sourcerecord.encode())


class OutboxEventPublisher:
    """``publish_event`` through the hub's outbox: the hub service relays it when it (re)starts.

    For ``tsunagu consent`` without a broker at hand; the event reaches the intake topic later.
    """

    def __init__(self, sessions: sessionmaker[Session], topic: str) -> None:
        self.sessions = sessions
        self.topic = topic

    async def __call__(self, event: CloudEvent) -> None:
        from hub.pipeline.tables import HubOutbox

        def write() -> None:
            with self.sessions.begin() as s:
                s.add(HubOutbox(topic=self.topic, key=event.sourcerecord, value=event.to_json_bytes(),
                                created_at=datetime.now(UTC)))

        await asyncio.to_thread(write)


# --------------------------------------------------------------------------- the router
def role_for(tokens: Mapping[str, str], presented: str) -> str | None:
    """The role of a presented token; every configured token is compared (constant time each)."""
    found: str | None = None
    given = presented.encode("utf-8")
    for token, role in tokens.items():
        if hmac.compare_digest(token.encode("utf-8"), given) and token:
            found = role
    return found


_AUTH_HEADERS = {"WWW-Authenticate": "Bearer"}


def make_consent_router(
    sessions: sessionmaker[Session],
    publish_event: PublishEvent,
    *,
    tokens: Mapping[str, str] | None = None,
    municipality_code: str | None = None,
    now: Callable[[], datetime] | None = None,
) -> APIRouter:
    """The consent officer's API; ``tokens`` and ``municipality_code`` default to the settings."""
    from hub.settings import get_settings

    if tokens is None or municipality_code is None:
        settings = get_settings()
        tokens = dict(settings.api_tokens) if tokens is None else tokens
        municipality_code = municipality_code or settings.municipality_code
    token_roles = dict(tokens)
    service = ConsentService(sessions, publish_event, municipality_code=municipality_code, now=now or _jst_now)
    bearer = HTTPBearer(auto_error=False)

    # defaults, not Annotated: with postponed annotations FastAPI cannot see these local names
    def authenticated(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
        if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "bearer token required", headers=_AUTH_HEADERS)
        role = role_for(token_roles, creds.credentials)
        if role is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown token", headers=_AUTH_HEADERS)
        return role

    def allow(*roles: str) -> Callable[[str], str]:
        def check(role: str = Depends(authenticated)) -> str:
            if role not in ROLES or role not in roles:
                raise HTTPException(status.HTTP_403_FORBIDDEN, "this role may not do this")
            return role

        return check

    officer = Depends(allow(CONSENT_OFFICER))
    reader = Depends(allow(CONSENT_OFFICER, COORDINATOR))
    coordinator = Depends(allow(COORDINATOR))

    def refuse(exc: ConsentServiceError) -> HTTPException:
        return HTTPException(exc.status, exc.message)

    router = APIRouter(tags=["consent"])

    @router.post("/consents", status_code=status.HTTP_201_CREATED)
    async def record_consent(body: ConsentRequest, _role: str = officer) -> dict[str, Any]:
        """Record a consent; returns its FHIR R5 Consent resource."""
        try:
            consent = await service.record(body)
        except ConsentServiceError as exc:
            raise refuse(exc) from None
        return service.fhir(consent)

    @router.post("/consents/{consent_id:path}/withdraw")
    async def withdraw_consent(consent_id: Annotated[str, Path(min_length=1, max_length=200)],
                               _role: str = officer) -> dict[str, Any]:
        """Withdraw a consent from now on; returns the FHIR resource of the inactive version."""
        try:
            consent = await service.withdraw(consent_id)
        except ConsentServiceError as exc:
            raise refuse(exc) from None
        return service.fhir(consent)

    @router.get("/persons/{resident_no}/consents")
    async def list_consents(resident_no: Annotated[str, Path(pattern=r"^\d{10}$")],
                            _role: str = reader) -> list[dict[str, Any]]:
        """Every version of every consent of this resident, oldest first per consent."""
        versions = await asyncio.to_thread(service.versions, resident_no)
        return [version_json(v) for v in versions]

    @router.post("/designations", status_code=status.HTTP_201_CREATED)
    async def designate(body: DesignationRequest, role: str = coordinator) -> dict[str, Any]:
        """Record (or amend, with the same id) the 支援会議 designation of a household."""
        try:
            designation = await asyncio.to_thread(service.designate, body, role)
        except ConsentServiceError as exc:
            raise refuse(exc) from None
        return designation_json(designation)

    @router.post("/emergency", status_code=status.HTTP_201_CREATED)
    async def emergency(body: EmergencyRequest, _role: str = coordinator) -> dict[str, Any]:
        """Record an emergency use: the person's named fields flow to the team for the emergency window."""
        try:
            override = await asyncio.to_thread(service.emergency, body)
        except ConsentServiceError as exc:
            raise refuse(exc) from None
        return emergency_json(override)

    return router

