"""The consent officers' screens (/consents): a resident's consents, record one, withdraw one.

HTML forms over ``hub.http.consent.service.ConsentService`` (the same service as the JSON API under /api/ and
``tsunagu consent``): a consent recorded here reaches the hub as a CloudEvent (through the hub's
outbox or the broker, as the host configured) and is kept in the registry at once. Coordinators
may look (to see which consents are missing); only consent officers (and admins) record and withdraw.
Each look, record and withdrawal is on the audit chain with the user. Subjects are named by
宛名番号 (``resident_no``), a source record key (``record``) or a hub person id (``person``, the
household page's link); the page shows ids, codes and dates, never a name.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from consent.model import TEAM_PURPOSE, ConsentVersion
from consent.store import ConsentRepository
from hub.http.consent.models import GUARDIAN_RELATIONS, ConsentRequest, ConsentServiceError, Period, Subject
from hub.http.consent.queries import subject_keys_of_resident
from hub.http.consent.service import ConsentService
from hub.workspace.audit import audit_access
from hub.workspace.auth import (
    CONSENT_OFFICER,
    COORDINATOR,
    Principal,
    csrf_protect,
    require_roles,
    workspace_context,
)
from hub.workspace.web import render
from schemas.codes import Field

router = APIRouter()

RESIDENT_NO = re.compile(r"^\d{10}$")
RECORD = re.compile(r"^[a-z]+:\S{1,190}$")
PERSON = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,39}$")
GRANTORS: list[tuple[str, str]] = [("self", "本人"), ("guardian", "保護者")] + [
    (r, r) for r in sorted(GUARDIAN_RELATIONS)]
FIELD_ORDER = [Field.ELDERLY, Field.DISABILITY, Field.CHILD, Field.LIVELIHOOD]


@dataclass(frozen=True, slots=True)
class ConsentRow:
    """One consent as the page shows it: its latest state and its versions."""

    consent_id: str
    status: str
    decision: str
    fields: tuple[str, ...]
    period_start: date
    period_end: date | None
    grantor: str
    origin: str
    subject: str
    versions: tuple[ConsentVersion, ...]

    @property
    def active(self) -> bool:
        return self.status == "active" and self.decision == "permit"


def group_versions(versions: list[ConsentVersion]) -> list[ConsentRow]:
    """Versions → one row per consent (latest version rules; a withdrawal at the same instant wins)."""
    by_id: dict[str, list[ConsentVersion]] = {}
    for v in versions:
        by_id.setdefault(v.consent_id, []).append(v)
    rows = []
    for cid, vs in by_id.items():
        vs.sort(key=lambda v: v.version)
        last_at = vs[-1].version
        latest = sorted((v for v in vs if v.version == last_at), key=lambda v: v.status == "active")[0]
        rows.append(ConsentRow(
            consent_id=cid, status=latest.status, decision=latest.decision,
            fields=tuple(f.value for f in latest.fields), period_start=latest.period_start,
            period_end=latest.period_end, grantor=latest.grantor, origin=latest.origin,
            subject=f"宛名番号 {latest.subject_resident_no}" if latest.subject_resident_no
            else (latest.subject_record or "—"), versions=tuple(vs)))
    rows.sort(key=lambda r: (not r.active, r.period_start), reverse=False)
    return rows


@dataclass(frozen=True, slots=True)
class Lookup:
    """Who the page is about: exactly one of resident_no, record, person (validated)."""

    resident_no: str | None = None
    record: str | None = None
    person: str | None = None

    @property
    def given(self) -> bool:
        return bool(self.resident_no or self.record or self.person)

    def query(self) -> str:
        return urlencode({k: v for k, v in (("resident_no", self.resident_no), ("record", self.record),
                                            ("person", self.person)) if v})

    def audit_subject(self) -> str:
        if self.resident_no:
            return f"registry:{self.resident_no}"
        if self.record:
            return self.record
        return f"person:{self.person}"


def parse_lookup(resident_no: str | None, record: str | None, person: str | None) -> Lookup | str:
    """A lookup, or the error text to show."""
    resident_no = (resident_no or "").strip() or None
    record = (record or "").strip() or None
    person = (person or "").strip() or None
    if resident_no and not RESIDENT_NO.match(resident_no):
        return "宛名番号は10桁の数字で入力してください。"
    if record and not RECORD.match(record):
        return "記録キーは「機関:番号」の形で入力してください（例 houkatsu:H-0001）。"
    if person and not PERSON.match(person):
        return "人物IDの形式が正しくありません。"
    return Lookup(resident_no, record, person)


def versions_for(s: Session, lookup: Lookup) -> list[ConsentVersion]:
    """Every version filed under the subject's resident numbers and record keys (merged persons included)."""
    from hub.http.consent.queries import merged_closure
    from hub.pipeline.adapters import subject_keys

    resident_nos: set[str] = set()
    records: set[str] = set()
    if lookup.resident_no:
        nos, recs = subject_keys_of_resident(s, lookup.resident_no)
        resident_nos |= nos
        records |= recs
    if lookup.record:
        records.add(lookup.record)
        registry_no = lookup.record.removeprefix("registry:")
        if registry_no != lookup.record and RESIDENT_NO.match(registry_no):
            nos, recs = subject_keys_of_resident(s, registry_no)
            resident_nos |= nos
            records |= recs
        from hub.identity.tables import PersonRecordRow

        row = s.get(PersonRecordRow, lookup.record)
        if row is not None and row.person_id:
            for p in merged_closure(s, {row.person_id}):
                nos, recs = subject_keys(s, p)
                resident_nos |= nos
                records |= recs
    if lookup.person:
        for p in merged_closure(s, {lookup.person}):
            nos, recs = subject_keys(s, p)
            resident_nos |= nos
            records |= recs
    return ConsentRepository(s).versions_for(resident_nos, records)


def service_of(request: Request) -> ConsentService:
    ctx = workspace_context(request)
    assert ctx.publish_consent is not None
    return ConsentService(ctx.sessions, ctx.publish_consent, municipality_code=ctx.settings.municipality_code)


def _page(request: Request, principal: Principal, lookup: Lookup | None, *, error: str | None = None,
          flash: str | None = None, form: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    ctx = workspace_context(request)
    rows: list[ConsentRow] = []
    if lookup is not None and lookup.given:
        with ctx.sessions.begin() as s:
            rows = group_versions(versions_for(s, lookup))
            audit_access(s, principal, "consent.view", object_id=lookup.audit_subject(), at=ctx.clock())
    today = ctx.clock().date()
    return render(request, "consents.html", {
        "lookup": lookup or Lookup(), "rows": rows, "grantors": GRANTORS, "fields": [f.value for f in FIELD_ORDER],
        "may_record": principal.may(CONSENT_OFFICER), "form": form or {}, "today": today.isoformat(),
        "purpose": TEAM_PURPOSE,
    }, principal, error=error, flash=flash, status_code=status_code)


@router.get("/consents")
def consents_page(request: Request, resident_no: str | None = None, record: str | None = None,
                  person: str | None = None,
                  principal: Principal = Depends(require_roles(CONSENT_OFFICER, COORDINATOR))) -> Response:
    parsed = parse_lookup(resident_no, record, person)
    if isinstance(parsed, str):
        return _page(request, principal, None, error=parsed, status_code=400)
    return _page(request, principal, parsed)


@router.post("/consents")
async def record_consent(request: Request, principal: Principal = Depends(csrf_protect)) -> Response:
    if not principal.may(CONSENT_OFFICER):
        from fastapi import HTTPException

        raise HTTPException(403, "同意を記録する権限がありません。")
    form = await request.form()
    values = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    fields = [v for k, v in form.multi_items() if k == "fields" and isinstance(v, str)]
    resident_no = values.get("resident_no", "").strip() or None
    record = values.get("record", "").strip() or None
    lookup = Lookup(resident_no=resident_no, record=record)
    keep = {**values, "fields": fields}
    try:
        req = ConsentRequest(
            subject=Subject(resident_no=resident_no, record=record),
            fields=[Field(f) for f in fields],
            grantor=values.get("grantor", ""),
            period=Period(start=date.fromisoformat(values.get("period_start", "")),
                          end=date.fromisoformat(values["period_end"]) if values.get("period_end") else None),
            purpose=TEAM_PURPOSE,
        )
    except (ValidationError, ValueError):
        return _page(request, principal, lookup if lookup.given else None, form=keep, status_code=400,
                     error="入力に誤りがあります：対象（宛名番号または記録キー）、分野（1つ以上）、"
                           "同意者、期間（開始日は必須、終了日は開始日以降）を確かめてください。")
    try:
        consent = await service_of(request).record(req)
    except ConsentServiceError as exc:
        return _page(request, principal, lookup, form=keep, status_code=exc.status, error=_message(exc))
    ctx = workspace_context(request)

    def audit() -> None:
        with ctx.sessions.begin() as s:
            audit_access(s, principal, "consent.record", object_id=consent.consent_id, at=ctx.clock())

    await asyncio.to_thread(audit)
    return RedirectResponse(f"/consents?{lookup.query()}&flash=recorded", status_code=303)


@router.post("/consents/{consent_id}/withdraw")
async def withdraw_consent(request: Request, consent_id: str,
                           principal: Principal = Depends(csrf_protect)) -> Response:
    if not principal.may(CONSENT_OFFICER):
        from fastapi import HTTPException

        raise HTTPException(403, "同意を撤回する権限がありません。")
    form = await request.form()
    back = parse_lookup(*(str(form.get(k) or "") for k in ("resident_no", "record", "person")))
    lookup = back if isinstance(back, Lookup) else Lookup()
    if len(consent_id) > 200:
        return _page(request, principal, lookup, error="同意IDが正しくありません。", status_code=400)
    try:
        await service_of(request).withdraw(consent_id)
    except ConsentServiceError as exc:
        return _page(request, principal, lookup, status_code=exc.status, error=_message(exc))
    ctx = workspace_context(request)

    def audit() -> None:
        with ctx.sessions.begin() as s:
            audit_access(s, principal, "consent.withdraw", object_id=consent_id, at=ctx.clock())

    await asyncio.to_thread(audit)
    return RedirectResponse(f"/consents?{lookup.query()}&flash=withdrawn", status_code=303)


_MESSAGES = {
    "no consent with this id": "この同意IDは見つかりません。",
    "this consent is not active (already withdrawn or never in force)": "この同意はすでに撤回されています。",
    "grantor: for a child under 18 a guardian grants consent": "18歳未満の方の同意は保護者が行います。",
    "grantor: use self, guardian or the guardian's 続柄 (never a name)":
        "同意者は本人・保護者・続柄から選んでください。",
}


def _message(exc: ConsentServiceError) -> str:
    if exc.status == 503:
        return "ハブに接続できないため、記録していません。しばらくしてからもう一度お試しください。"
    return _MESSAGES.get(exc.message, "記録できませんでした。入力を確かめてください。")
