"""The consent service shared by the API and ``tsunagu consent``: record, withdraw, list, designate, emergency."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from consent.model import TEAM_PURPOSE, TEAM_RECIPIENT, ConsentVersion, Designation, EmergencyOverride
from consent.store import ConsentRepository, ConsentVersionRow
from hub.http.consent.models import (
    ADULT_AGE,
    GUARDIAN_RELATIONS,
    BadRequest,
    Conflict,
    ConsentRequest,
    DesignationRequest,
    EmergencyRequest,
    NotFound,
    PublishEvent,
    Unavailable,
    consent_event,
    jst_now,
)
from hub.http.consent.queries import birth_date_of, subject_keys_of_resident
from hub.identity.tables import Household, Person
from schemas.events import ConsentV1, age_on
from schemas.fhir_consent import to_fhir
from schemas.wareki import JST

T = TypeVar("T")


# --------------------------------------------------------------------------- the service
@dataclass
class ConsentService:
    """What the API and ``tsunagu consent`` do; raises ConsentServiceError subclasses."""

    sessions: sessionmaker[Session]
    publish_event: PublishEvent
    municipality_code: str = "999999"
    now: Callable[[], datetime] = jst_now

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
        birth = await asyncio.to_thread(self._read, lambda s: birth_date_of(s, req.subject))
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

        def read(s: Session) -> list[ConsentVersion]:
            resident_nos, records = subject_keys_of_resident(s, resident_no)
            return ConsentRepository(s).versions_for(resident_nos, records)

        return self._read(read)

    # ---------------------------------------------------------------- 支援会議, emergency
    def designate(self, req: DesignationRequest, by: str) -> Designation:

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

    rows = s.scalars(select(ConsentVersionRow).where(ConsentVersionRow.consent_id == consent_id)
                     .order_by(ConsentVersionRow.version, ConsentVersionRow.id)).all()
    if not rows:
        return []
    versions = [r.to_version() for r in rows]
    last = max(v.version for v in versions)
    return sorted((v for v in versions if v.version == last), key=lambda v: v.rank)


def _keep(s: Session, consent: ConsentV1) -> None:

    ConsentRepository(s).add_version(consent, recorded_at=datetime.now(UTC))
