"""The consent officer's JSON API: bearer-token roles and the FastAPI router over ``ConsentService``.

``make_consent_router(sessions, publish_event)`` returns a FastAPI ``APIRouter``:

=========================================  ==============================  =========================================
``POST /consents``                         consent_officer                 record a consent → its FHIR R5 resource
``POST /consents/{id}/withdraw``           consent_officer                 a later ``inactive`` version → its FHIR
``GET /persons/{resident_no}/consents``    consent_officer, coordinator    every version of that resident's consents
``POST /designations``                     coordinator                     a 支援会議 (第106条の6) for a household
``POST /emergency``                        coordinator                     an emergency use (reason code; the user
                                                                           is the authenticated principal)
=========================================  ==============================  =========================================

Authentication: ``Authorization: Bearer <token>``; tokens are configured in ``Settings.api_tokens``
(token → role, or role and operator id as ``"coordinator:op-17"``), from the environment as JSON:
``TSUNAGU_API_TOKENS='{"<token>":"consent_officer"}'``.
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
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from hub.http.consent.models import (
    CONSENT_OFFICER,
    COORDINATOR,
    ROLES,
    ConsentRequest,
    ConsentServiceError,
    DesignationRequest,
    EmergencyRequest,
    PublishEvent,
    designation_json,
    emergency_json,
    jst_now,
    version_json,
)
from hub.http.consent.service import ConsentService


# --------------------------------------------------------------------------- the router
def role_for(tokens: Mapping[str, str], presented: str) -> str | None:
    """The role of a presented token; every configured token is compared (constant time each)."""
    found = principal_for(tokens, presented)
    return found.role if found is not None else None


@dataclass(frozen=True)
class Principal:
    """Who called: the role of the token and the operator id it was issued to.

    A token is configured as ``"<role>"`` or ``"<role>:<operator id>"``; without an operator id the
    principal is ``token-<first 10 hex of the token's SHA-256>`` (stable, reveals nothing of the token).
    """

    role: str
    user: str


def principal_for(tokens: Mapping[str, str], presented: str) -> Principal | None:
    """The principal of a presented token; every configured token is compared (constant time each)."""
    found: Principal | None = None
    given = presented.encode("utf-8")
    for token, value in tokens.items():
        if hmac.compare_digest(token.encode("utf-8"), given) and token:
            role, _, user = value.partition(":")
            found = Principal(role, user.strip() or f"token-{hashlib.sha256(given).hexdigest()[:10]}")
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
    service = ConsentService(sessions, publish_event, municipality_code=municipality_code, now=now or jst_now)
    bearer = HTTPBearer(auto_error=False)

    # defaults, not Annotated: with postponed annotations FastAPI cannot see these local names
    def authenticated(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
        if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "bearer token required", headers=_AUTH_HEADERS)
        principal = principal_for(token_roles, creds.credentials)
        if principal is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown token", headers=_AUTH_HEADERS)
        return principal

    def allow_principal(*roles: str) -> Callable[[Principal], Principal]:
        def check(principal: Principal = Depends(authenticated)) -> Principal:
            if principal.role not in ROLES or principal.role not in roles:
                raise HTTPException(status.HTTP_403_FORBIDDEN, "this role may not do this")
            return principal

        return check

    def allow(*roles: str) -> Callable[[Principal], str]:
        def check(principal: Principal = Depends(allow_principal(*roles))) -> str:
            return principal.role

        return check

    officer = Depends(allow(CONSENT_OFFICER))
    reader = Depends(allow(CONSENT_OFFICER, COORDINATOR))
    coordinator = Depends(allow(COORDINATOR))
    coordinator_principal = Depends(allow_principal(COORDINATOR))

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
    async def emergency(body: EmergencyRequest, principal: Principal = coordinator_principal) -> dict[str, Any]:
        """Record an emergency use: the person's named fields flow to the team for the emergency window.

        The user recorded is the authenticated principal; a ``user`` in the body naming anyone else is 403.
        """
        if body.user is not None and body.user.strip() != principal.user:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "the user is the authenticated principal")
        body = body.model_copy(update={"user": principal.user})
        try:
            override = await asyncio.to_thread(service.emergency, body)
        except ConsentServiceError as exc:
            raise refuse(exc) from None
        return emergency_json(override)

    return router
