"""FHIR R5 ``Consent`` ⇄ ``ConsentV1``, and the 自立相談支援 form's consent flag as a ``ConsentV1``.

The one FHIR consent mapping of tsunagu: the consent-documents connector (``connectors.fhir_consent``)
reads with it, and ``consent.fhir`` re-exports it for the consent package and the hub's consent API.

``parse_consent`` validates the resource with ``fhir.resources`` (R5, the package's default),
then maps it as ../shared/agency-systems/README.md (consent/) describes:

- ``subject.identifier`` ``urn:jp:lg:<municipality>:resident-no`` → ``subject_resident_no``
  (or ``urn:jp:tsunagu:record-key`` → ``subject_record``, for consents only tsunagu knows);
- ``status`` → ``status`` (R5 ``not-done`` → ``rejected``; ``unknown`` and other codes are invalid);
- ``date`` → ``version`` (a date means 00:00 Japan time; tsunagu's own consents may carry the exact
  instant in the ``consent-version`` extension);
- ``decision`` → ``decision`` (absent means ``permit``);
- ``grantor[0]`` → ``grantor``: ``self`` when it is the subject (``本人``, a ``Patient/`` reference or
  the subject's identifier); the relation for ``保護者（母）`` or ``母``; ``guardian`` for anything
  else, because a display that is not a known word may be a name and a name is never stored
  (:func:`grantor_of` tells those apart as ``other`` / ``unknown``; the mapping stores both as ``guardian``);
- ``period`` → ``period_start`` / ``period_end`` (dates in Japan time);
- ``provision[0].actor``: ``IRCP`` display → ``recipient``, each ``CST`` identifier value → a field;
- ``provision[0].purpose`` (system ``urn:jp:tsunagu:purpose``) → ``purpose``.

A missing recipient or purpose maps to ``""``, which grants nothing (the decision needs
``重層的支援会議`` and ``multi-agency-support``) but keeps the version, so a withdrawal is never lost.
Every failure raises ``InvalidConsentDocument`` whose message names the element path and the
error type only, never a value (a resident number or a name is personal data).

``to_fhir`` writes an R5 Consent such that ``parse_consent(to_fhir(c)) == c`` for every ``ConsentV1``
whose grantor is representable (``self``, ``guardian`` or a 続柄 label), except the ``fhir`` field,
which holds the resource as received and so is set by ``parse_consent`` (``keep_resource=False``
leaves it None). A consent id that is not a valid FHIR id, a subject named both ways, an origin
other than ``fhir`` and a version that is not 00:00 Japan time travel in ``identifier``,
an extension and ``meta.tag``, so nothing is lost.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import date, datetime
from typing import Any, Literal

from pydantic import ValidationError

from schemas.codes import RELATION_LABELS, Field
from schemas.digits import ascii_digits
from schemas.events import ConsentV1
from schemas.wareki import JST, jst_midnight

PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
FIELD_SYSTEM = "urn:jp:tsunagu:field"
PURPOSE_SYSTEM = "urn:jp:tsunagu:purpose"
RECORD_KEY_SYSTEM = "urn:jp:tsunagu:record-key"
CONSENT_ID_SYSTEM = "urn:jp:tsunagu:consent-id"
ORIGIN_SYSTEM = "urn:jp:tsunagu:origin"
VERSION_EXTENSION = "urn:jp:tsunagu:fhir:consent-version"
SUBJECT_RECORD_EXTENSION = "urn:jp:tsunagu:fhir:subject-record"
DEFAULT_MUNICIPALITY = "999999"

_RESIDENT_NO_SYSTEM = re.compile(r"^urn:jp:lg:([0-9]{6}):resident-no$")
_RESIDENT_NO = re.compile(r"^[0-9]{10}$")
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_GUARDIAN = re.compile(r"^保護者\s*\((.+)\)$")
_STATUS_IN: dict[str, Literal["active", "inactive", "draft", "rejected", "entered-in-error"]] = {
    "active": "active",
    "inactive": "inactive",
    "draft": "draft",
    "not-done": "rejected",
    "rejected": "rejected",  # R4 spelling, still seen in older systems
    "entered-in-error": "entered-in-error",
}
_STATUS_OUT = {"active": "active", "inactive": "inactive", "draft": "draft", "rejected": "not-done",
               "entered-in-error": "entered-in-error"}
_ORIGINS: dict[str, Literal["fhir", "jiritsu_form", "tsunagu"]] = {
    "fhir": "fhir", "jiritsu_form": "jiritsu_form", "tsunagu": "tsunagu"}
#: 続柄 words that may name a grantor (本人 means the subject: ``self``)
_RELATIONS = frozenset(RELATION_LABELS) - {"本人"}


class InvalidConsentDocument(ValueError):
    """A resource that is not a usable Consent; the message names paths and error types, never data."""


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(resource)"


def _problems(exc: ValidationError) -> str:
    """Validation errors as ``path: type`` (input values and messages left out; an unknown key, which
    a clerk may have typed anything into, is shown as ``*``)."""
    errors = exc.errors()
    parts = []
    for e in errors[:5]:
        loc = tuple(e["loc"])
        if e["type"] == "extra_forbidden" and loc:
            loc = (*loc[:-1], "*")
        parts.append(f"{_path(loc)}: {e['type']}")
    if len(errors) > 5:
        parts.append(f"… {len(errors) - 5} more")
    return "; ".join(parts)


#: the instants a consent may name; outside them a date is a typo (and near year 1 or 9999 the
#: conversion to Japan time or UTC overflows)
EARLIEST = datetime(1900, 1, 1, tzinfo=JST)
LATEST = datetime(2999, 12, 31, 23, 59, 59, tzinfo=JST)


def _in_range(value: date | datetime, where: str) -> date | datetime:
    """The value, or InvalidConsentDocument ``{where}: out of range`` (never an OverflowError)."""
    try:
        moment = value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=JST)
        ok = EARLIEST <= moment <= LATEST  # aware comparison: no conversion, no overflow
    except (OverflowError, ValueError):
        ok = False
    if not ok:
        raise InvalidConsentDocument(f"{where}: out of range")
    return value


def _moment(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=JST)
    return jst_midnight(value)


def _day(value: date | datetime) -> date:
    if isinstance(value, datetime):
        return (value if value.tzinfo is None else value.astimezone(JST)).date()
    return value


def grantor_of(display: str | None, reference: str | None = None, is_subject: bool = False) -> str:
    """Who granted, as a code that never carries a name.

    ``self`` (the subject: ``本人``, a ``Patient/`` reference or the subject's own identifier), a
    続柄 label (``母``, or ``保護者（母）`` → ``母``), ``guardian`` (``保護者``, or a ``RelatedPerson``
    reference without a display), ``other`` for a display that is no known word (it may be a
    name) and ``unknown`` when nothing says who. :func:`parse_consent` stores ``other`` and
    ``unknown`` as ``guardian``: someone other than the subject granted.
    """
    if is_subject or (reference is not None and reference.startswith("Patient/")):
        return "self"
    text = unicodedata.normalize("NFKC", display or "").strip()
    if text in ("本人", "self"):
        return "self"
    if text in _RELATIONS:
        return text
    match = _GUARDIAN.match(text)
    if match and match.group(1).strip() in _RELATIONS:
        return match.group(1).strip()
    if text in ("保護者", "guardian"):
        return "guardian"
    if not text:
        return "guardian" if reference else "unknown"
    return "other"


def _grantor_out(grantor: str) -> dict[str, Any]:
    if grantor == "self":
        return {"display": "本人"}
    if grantor == "guardian":
        return {"display": "保護者"}
    if grantor in _RELATIONS:
        return {"display": f"保護者（{grantor}）"}
    raise ValueError("grantor: not representable (use self, guardian or a 続柄 label)")


def parse_consent(resource: dict[str, Any], *, municipality_code: str | None = None,
                  keep_resource: bool = True) -> ConsentV1:
    """Validate a FHIR R5 Consent and map it; raises InvalidConsentDocument (no personal data).

    With ``municipality_code`` the resident-number system must name that municipality.
    """
    from fhir.resources.consent import Consent  # heavy import, only where needed

    if not isinstance(resource, dict):
        raise InvalidConsentDocument("(resource): not a JSON object")
    if resource.get("resourceType") != "Consent":
        raise InvalidConsentDocument("resourceType: not Consent")
    try:
        doc = Consent.model_validate(resource)
    except ValidationError as exc:
        raise InvalidConsentDocument(f"FHIR validation: {_problems(exc)}") from None
    except RecursionError:
        raise InvalidConsentDocument("(resource): nested too deeply") from None

    consent_id = doc.id
    for known in doc.identifier or []:
        if known.system == CONSENT_ID_SYSTEM and known.value:
            consent_id = known.value
    if not consent_id:
        raise InvalidConsentDocument("id: missing")

    status = _STATUS_IN.get(doc.status or "")
    if status is None:
        raise InvalidConsentDocument("status: not a usable Consent status")
    if doc.decision not in (None, "permit", "deny"):
        raise InvalidConsentDocument("decision: not permit or deny")
    decision: Literal["permit", "deny"] = "deny" if doc.decision == "deny" else "permit"

    if doc.date is None:
        raise InvalidConsentDocument("date: missing")
    version = _moment(_in_range(doc.date, "date"))
    subject_record: str | None = None
    for i, ext in enumerate(doc.extension or []):
        if ext.url == VERSION_EXTENSION:
            exact = getattr(ext, "valueDateTime", None)
            if not isinstance(exact, datetime) or exact.tzinfo is None:
                raise InvalidConsentDocument(f"extension[{i}].valueDateTime: not an instant with offset")
            _in_range(exact, f"extension[{i}].valueDateTime")
            if _day(exact) != _day(doc.date):
                raise InvalidConsentDocument(f"extension[{i}].valueDateTime: disagrees with date")
            version = exact
        elif ext.url == SUBJECT_RECORD_EXTENSION:
            value = getattr(ext, "valueString", None)
            if not value:
                raise InvalidConsentDocument(f"extension[{i}].valueString: missing")
            subject_record = value

    ident = doc.subject.identifier if doc.subject is not None else None
    if ident is None or not ident.value or not ident.system:
        raise InvalidConsentDocument("subject.identifier: missing")
    resident_no: str | None = None
    system_match = _RESIDENT_NO_SYSTEM.match(ident.system)
    if system_match:
        if municipality_code is not None and system_match.group(1) != municipality_code:
            raise InvalidConsentDocument("subject.identifier.system: another municipality")
        resident_no = ascii_digits(ident.value)
        if resident_no is None or not _RESIDENT_NO.fullmatch(resident_no):
            raise InvalidConsentDocument("subject.identifier.value: not a 10-digit resident number")
    elif ident.system == RECORD_KEY_SYSTEM:
        if subject_record is not None and subject_record != ident.value:
            raise InvalidConsentDocument("subject.identifier: disagrees with the subject-record extension")
        subject_record = ident.value
    else:
        raise InvalidConsentDocument("subject.identifier.system: not a resident-no or record-key system")

    grantors = doc.grantor or []
    if not grantors:
        raise InvalidConsentDocument("grantor: missing")
    g = grantors[0]
    g_ident = g.identifier
    is_subject = g_ident is not None and g_ident.system == ident.system and g_ident.value == ident.value
    grantor = grantor_of(g.display, g.reference, is_subject)
    if grantor in ("other", "unknown"):
        grantor = "guardian"  # never a name (see grantor_of)

    if doc.period is None or doc.period.start is None:
        raise InvalidConsentDocument("period.start: missing")
    period_start = _day(_in_range(doc.period.start, "period.start"))
    period_end = _day(_in_range(doc.period.end, "period.end")) if doc.period.end is not None else None
    if period_end is not None and period_end < period_start:
        raise InvalidConsentDocument("period: ends before it starts")

    provisions = doc.provision or []
    if not provisions:
        raise InvalidConsentDocument("provision: missing")
    if len(provisions) > 1 or provisions[0].provision:
        raise InvalidConsentDocument("provision: more than one provision is not supported")
    provision = provisions[0]
    fields: list[Field] = []
    recipient = ""
    for i, actor in enumerate(provision.actor or []):
        codes = {c.code for c in ((actor.role.coding or []) if actor.role is not None else [])
                 if c.system in (None, PARTICIPATION_TYPE) and c.code}
        ref = actor.reference
        if "CST" in codes:
            value = ref.identifier.value if ref is not None and ref.identifier is not None else None
            system = ref.identifier.system if ref is not None and ref.identifier is not None else None
            if system not in (None, FIELD_SYSTEM):
                raise InvalidConsentDocument(f"provision[0].actor[{i}].reference.identifier.system: not fields")
            try:
                field_ = Field(value or "")
            except ValueError:
                raise InvalidConsentDocument(
                    f"provision[0].actor[{i}].reference.identifier.value: unknown field code") from None
            if field_ not in fields:
                fields.append(field_)
        elif "IRCP" in codes:
            if recipient:
                raise InvalidConsentDocument(f"provision[0].actor[{i}]: more than one recipient")
            recipient = (ref.display if ref is not None else None) or ""
    if not fields:
        raise InvalidConsentDocument("provision[0].actor: no custodian (CST) field")
    purpose = ""
    for coding in provision.purpose or []:
        if coding.system == PURPOSE_SYSTEM and coding.code:
            purpose = coding.code
            break

    origin: Literal["fhir", "jiritsu_form", "tsunagu"] = "fhir"
    for tag in (doc.meta.tag or []) if doc.meta is not None else []:
        if tag.system == ORIGIN_SYSTEM:
            found = _ORIGINS.get(tag.code or "")
            if found is None:
                raise InvalidConsentDocument("meta.tag: unknown origin code")
            origin = found

    try:
        return ConsentV1(
            consent_id=consent_id,
            version=version,
            status=status,
            decision=decision,
            subject_resident_no=resident_no,
            subject_record=subject_record,
            grantor=grantor,
            fields=fields,
            recipient=recipient,
            purpose=purpose,
            period_start=period_start,
            period_end=period_end,
            origin=origin,
            fhir=resource if keep_resource else None,
        )
    except ValidationError as exc:
        raise InvalidConsentDocument(f"mapping: {_problems(exc)}") from None


def _fhir_id(consent_id: str) -> str:
    if _FHIR_ID.match(consent_id):
        return consent_id
    return "t-" + hashlib.sha256(consent_id.encode("utf-8")).hexdigest()[:40]


def to_fhir(c: ConsentV1, *, municipality_code: str = DEFAULT_MUNICIPALITY) -> dict[str, Any]:
    """An R5 Consent that ``parse_consent`` maps back to ``c`` (``fhir`` field aside), validated before returning."""
    from fhir.resources.consent import Consent

    version = c.version if c.version.tzinfo is not None else c.version.replace(tzinfo=JST)
    out: dict[str, Any] = {"resourceType": "Consent", "id": _fhir_id(c.consent_id)}
    if c.origin != "fhir":
        out["meta"] = {"tag": [{"system": ORIGIN_SYSTEM, "code": c.origin}]}
    extensions: list[dict[str, Any]] = []
    if version != jst_midnight(_day(version)):
        extensions.append({"url": VERSION_EXTENSION, "valueDateTime": version.astimezone(JST).isoformat()})
    subject: dict[str, Any]
    if c.subject_resident_no is not None:
        subject = {"system": f"urn:jp:lg:{municipality_code}:resident-no", "value": c.subject_resident_no}
        if c.subject_record is not None:
            extensions.append({"url": SUBJECT_RECORD_EXTENSION, "valueString": c.subject_record})
    else:
        subject = {"system": RECORD_KEY_SYSTEM, "value": c.subject_record}
    if extensions:
        out["extension"] = extensions
    if out["id"] != c.consent_id:
        out["identifier"] = [{"system": CONSENT_ID_SYSTEM, "value": c.consent_id}]
    out["status"] = _STATUS_OUT[c.status]
    out["date"] = _day(version).isoformat()
    out["subject"] = {"identifier": subject}
    out["grantor"] = [_grantor_out(c.grantor)]
    out["decision"] = c.decision
    period: dict[str, str] = {"start": c.period_start.isoformat()}
    if c.period_end is not None:
        period["end"] = c.period_end.isoformat()
    out["period"] = period
    actors: list[dict[str, Any]] = []
    if c.recipient:
        actors.append({"role": {"coding": [{"system": PARTICIPATION_TYPE, "code": "IRCP"}]},
                       "reference": {"display": c.recipient}})
    for f in dict.fromkeys(c.fields):
        actors.append({"role": {"coding": [{"system": PARTICIPATION_TYPE, "code": "CST"}]},
                       "reference": {"identifier": {"system": FIELD_SYSTEM, "value": f.value}}})
    provision: dict[str, Any] = {"actor": actors}
    if c.purpose:
        provision["purpose"] = [{"system": PURPOSE_SYSTEM, "code": c.purpose}]
    out["provision"] = [provision]
    Consent.model_validate(out)  # an invalid resource is our bug: let the ValidationError surface
    return out


def jiritsu_consent(record_key: str, resident_no: str | None, agreed_on: date, case_revision: datetime, *,
                    withdrawn: bool = False) -> ConsentV1:
    """The 自立相談支援 form's 情報共有同意 as a consent: livelihood only, from 同意日, version = the row's revision.

    ``withdrawn=True`` (the flag went back to 0) records an ``inactive`` version of the same consent.
    A naive ``case_revision`` is read as Japan time.
    """
    key = record_key.removeprefix("jiritsu:")
    version = case_revision if case_revision.tzinfo is not None else case_revision.replace(tzinfo=JST)
    return ConsentV1(
        consent_id=f"jiritsu-form:{key}",
        version=version,
        status="inactive" if withdrawn else "active",
        decision="permit",
        subject_resident_no=resident_no or None,
        subject_record=record_key,
        grantor="self",
        fields=[Field.LIVELIHOOD],
        period_start=agreed_on,
        origin="jiritsu_form",
    )
