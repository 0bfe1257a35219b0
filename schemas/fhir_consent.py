"""FHIR R5 ``Consent`` → ``ConsentV1``: the minimal mapping the consent-documents feed needs.

The resource is first validated with ``fhir.resources`` (R5), then mapped as
``../shared/agency-systems/README.md`` (consent/) describes. Every failure raises
``InvalidConsentDocument`` whose message names the problem and the element path only,
never a value (a resident number or a name is personal data).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError

from schemas.codes import RELATION_LABELS, Field
from schemas.events import ConsentV1
from schemas.wareki import JST, jst_midnight

RESIDENT_NO_SYSTEM = re.compile(r"^urn:jp:lg:(\d{6}):resident-no$")
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
_RESIDENT_NO = re.compile(r"^\d{10}$")
_GUARDIAN = re.compile(r"^保護者\s*\((.+)\)$")


class InvalidConsentDocument(ValueError):
    """A resource that is not a usable Consent; the message carries no personal data."""


def _problems(exc: ValidationError) -> str:
    """Validation errors as 'path: type' (the input values are left out)."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(resource)"
        parts.append(f"{loc}: {err['type']}")
    return "; ".join(parts)


def _moment(value: date | datetime) -> datetime:
    """A FHIR date (00:00 Japan time) or dateTime as an aware datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=JST)
    return jst_midnight(value)


def _day(value: date | datetime) -> date:
    if isinstance(value, datetime):
        return (value if value.tzinfo is None else value.astimezone(JST)).date()
    return value


def grantor_of(display: str | None) -> str:
    """``本人`` → ``self``; ``保護者（母）`` → ``母``; anything else (maybe a name) → ``other``."""
    if display is None:
        return "unknown"
    text = unicodedata.normalize("NFKC", display).strip()
    if text in ("本人", "self"):
        return "self"
    match = _GUARDIAN.match(text)
    if match and match.group(1).strip() in RELATION_LABELS:
        return match.group(1).strip()
    if text == "保護者":
        return "guardian"
    return "other"


def parse_consent(resource: dict[str, Any]) -> ConsentV1:
    """Validate a FHIR R5 Consent and map it; raises InvalidConsentDocument (no personal data)."""
    from fhir.resources.consent import Consent  # heavy import, only where needed

    if not isinstance(resource, dict):
        raise InvalidConsentDocument("not a JSON object")
    if resource.get("resourceType") != "Consent":
        raise InvalidConsentDocument("resourceType: not Consent")
    try:
        fhir = Consent.model_validate(resource)
    except ValidationError as exc:
        raise InvalidConsentDocument(f"FHIR validation: {_problems(exc)}") from None

    if not fhir.id:
        raise InvalidConsentDocument("id: missing")
    if fhir.date is None:
        raise InvalidConsentDocument("date: missing")

    subject = fhir.subject
    ident = subject.identifier if subject is not None else None
    if ident is None or not ident.value or not ident.system:
        raise InvalidConsentDocument("subject.identifier: missing")
    if not RESIDENT_NO_SYSTEM.match(ident.system):
        raise InvalidConsentDocument("subject.identifier.system: not a resident-no system")
    if not _RESIDENT_NO.match(ident.value):
        raise InvalidConsentDocument("subject.identifier.value: not a 10-digit resident number")

    if fhir.period is None or fhir.period.start is None:
        raise InvalidConsentDocument("period.start: missing")

    fields: list[Field] = []
    recipient = "重層的支援会議"
    purpose = "multi-agency-support"
    provisions = fhir.provision or []
    if not provisions:
        raise InvalidConsentDocument("provision: missing")
    provision = provisions[0]
    for i, actor in enumerate(provision.actor or []):
        codes = {
            c.code for c in (actor.role.coding or []) if c.system in (None, PARTICIPATION_TYPE) and c.code
        } if actor.role is not None else set()
        ref = actor.reference
        if "CST" in codes:
            value = ref.identifier.value if ref is not None and ref.identifier is not None else None
            try:
                field = Field(value or "")
            except ValueError:
                raise InvalidConsentDocument(f"provision[0].actor[{i}]: unknown field code") from None
            if field not in fields:
                fields.append(field)
        elif "IRCP" in codes and ref is not None and ref.display:
            recipient = ref.display
    if not fields:
        raise InvalidConsentDocument("provision[0].actor: no custodian (CST) field")
    for coding in provision.purpose or []:
        if coding.system == "urn:jp:tsunagu:purpose" and coding.code:
            purpose = coding.code
            break

    grantors = fhir.grantor or []
    grantor = grantor_of(grantors[0].display if grantors else None)

    try:
        return ConsentV1(
            consent_id=fhir.id,
            version=_moment(fhir.date),
            status=fhir.status,
            decision=fhir.decision or "permit",
            subject_resident_no=ident.value,
            grantor=grantor,
            fields=fields,
            recipient=recipient,
            purpose=purpose,
            period_start=_day(fhir.period.start),
            period_end=_day(fhir.period.end) if fhir.period.end is not None else None,
            origin="fhir",
            fhir=resource,
        )
    except ValidationError as exc:
        raise InvalidConsentDocument(f"mapping: {_problems(exc)}") from None
