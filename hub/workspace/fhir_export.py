"""A household as a FHIR R5 Bundle for a 重層的支援会議, built from the policy's view only and validated on the way out.

Resources: a Patient per member (JP Core style names: kanji with the iso21090 EN representation
``IDE``, kana with ``SYL``; a masked member is a Patient with an age band and nothing else), a Group
for the household, an EpisodeOfCare per case the viewer may see, a ServiceRequest and a Task per
referral (HL7 Gravity SDOH referral Task statuses), a Consent per consent of a named member, a
CarePlan for the plan (team route only) and a Flag per alert. Resource ids are random per export
(``urn:uuid``); hub person ids appear only as identifiers of named members.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from fhir.resources.bundle import Bundle

from consent.model import JST, ConsentVersion
from hub.workspace.labels import ALERT_KIND as KIND_LABELS
from hub.workspace.labels import CASE_STATUS, REFERRAL_TARGET
from hub.workspace.labels import FIELD as FIELD_LABELS
from hub.workspace.models import Plan, Referral
from hub.workspace.policy import CaseView, HouseholdFacts, HouseholdView, MemberView

EN_REPRESENTATION = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation"
AGE_BAND_EXT = "urn:tsunagu:fhir:StructureDefinition:age-band"
SYS_FIELD = "urn:tsunagu:fhir:CodeSystem:field"
SYS_KIND = "urn:tsunagu:fhir:CodeSystem:alert-kind"
SYS_TARGET = "urn:tsunagu:fhir:CodeSystem:referral-target"
SYS_PROGRAMME = "urn:tsunagu:fhir:CodeSystem:programme"
SYS_PERSON = "urn:tsunagu:person"
SYS_RECORD = "urn:tsunagu:record"
SYS_HOUSEHOLD = "urn:tsunagu:household"
SYS_CONSENT = "urn:tsunagu:consent"
SYS_CASE_STATUS = "urn:tsunagu:fhir:CodeSystem:case-status"
CASE_STATUS_EXT = "urn:tsunagu:fhir:StructureDefinition:case-status"

_SPLIT = re.compile(r"[\s\u3000]+")

#: case status → EpisodeOfCare.status
EPISODE_STATUS = {"intake": "active", "assessment": "active", "planning": "active", "in_progress": "active",
                  "ongoing": "active", "referred": "active", "suspended": "onhold", "closed": "finished"}
#: referral (Gravity Task) status → ServiceRequest.status
REQUEST_STATUS = {"requested": "active", "accepted": "active", "in-progress": "active", "completed": "completed",
                  "rejected": "revoked", "cancelled": "revoked"}
PLAN_STATUS = {"active": "active", "evaluated": "active", "closed": "completed", "handed_over": "completed"}


def _iso(value: datetime) -> str:
    """An instant in Japan time (the workspace shows and exports JST everywhere)."""
    return value.astimezone(JST).isoformat()


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _name(text: str, representation: str) -> dict[str, Any]:
    """A HumanName in JP Core style: family and given split on a space when the source wrote one."""
    name: dict[str, Any] = {
        "extension": [{"url": EN_REPRESENTATION, "valueCode": representation}],
        "use": "official",
        "text": text,
    }
    parts = [p for p in _SPLIT.split(text.strip()) if p]
    if len(parts) >= 2:
        name["family"] = parts[0]
        name["given"] = parts[1:]
    return name


def patient(member: MemberView) -> dict[str, Any]:
    if not member.named:
        res: dict[str, Any] = {"resourceType": "Patient"}
        if member.age_band:
            res["extension"] = [{"url": AGE_BAND_EXT, "valueString": member.age_band}]
        return res
    res = {"resourceType": "Patient", "identifier": [{"system": SYS_PERSON, "value": member.person}]}
    names = []
    if member.name:
        names.append(_name(member.name, "IDE"))
    if member.kana:
        names.append(_name(member.kana, "SYL"))
    if names:
        res["name"] = names
    if member.birth_date:
        res["birthDate"] = member.birth_date.isoformat()
    res["gender"] = member.sex if member.sex in ("male", "female") else "unknown"
    return res


def _period(start: date | datetime | None, end: date | datetime | None = None) -> dict[str, str]:
    out: dict[str, str] = {}
    if start is not None:
        out["start"] = start.isoformat()
    if end is not None:
        out["end"] = end.isoformat()
    return out


def episode(case: CaseView, patient_ref: str) -> dict[str, Any]:
    """An EpisodeOfCare for one case: the field as its type, the agency's case status as an extension."""
    item = case.full if case.full is not None else case.minimal
    assert item is not None
    status = item.status or ""
    res: dict[str, Any] = {
        "resourceType": "EpisodeOfCare",
        "status": "finished" if item.closed_on is not None else EPISODE_STATUS.get(status, "active"),
        "type": [{"coding": [_coding(SYS_FIELD, case.field.value, FIELD_LABELS.get(case.field.value))]}],
        "patient": {"reference": patient_ref},
        "period": _period(item.opened_on, item.closed_on),
    }
    if status:
        res["extension"] = [{"url": CASE_STATUS_EXT,
                             "valueCoding": _coding(SYS_CASE_STATUS, status, CASE_STATUS.get(status))}]
    record = case.full.record if case.full is not None else case.minimal.record if case.minimal else None
    if record:
        res["identifier"] = [{"system": SYS_RECORD, "value": record}]
    return res


def build_bundle(view: HouseholdView, facts: HouseholdFacts, *, referrals: Sequence[Referral],
                 plan: Plan | None, alert_states: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """The Bundle as JSON (validated with fhir.resources); only what ``view`` lets its viewer see."""
    entries: list[dict[str, Any]] = []
    group_url = _urn()
    member_urls = {m.label: _urn() for m in view.members}
    person_urls = {m.person: member_urls[m.label] for m in view.members if m.named and m.person}
    for m in view.members:
        entries.append({"fullUrl": member_urls[m.label], "resource": patient(m)})
    entries.append({"fullUrl": group_url, "resource": {
        "resourceType": "Group",
        "identifier": [{"system": SYS_HOUSEHOLD, "value": view.household}],
        "type": "person",
        "membership": "enumerated",
        "name": "世帯",
        "quantity": view.member_count,
        **({"member": [{"entity": {"reference": u}} for u in member_urls.values()]} if member_urls else {}),
    }})
    for c in view.cases:
        label = c.full.member if c.full is not None else (c.minimal.member if c.minimal else None)
        ref = member_urls.get(label or "")
        if ref is None:  # a minimal item that may not be tied to a member: a Patient of its own, age band only
            ref = _urn()
            band = c.minimal.age_band if c.minimal else None
            entries.append({"fullUrl": ref, "resource": {"resourceType": "Patient", **(
                {"extension": [{"url": AGE_BAND_EXT, "valueString": band}]} if band else {})}})
        entries.append({"fullUrl": _urn(), "resource": episode(c, ref)})
    if view.route in ("team", "support_meeting"):
        for r in referrals:
            subject = person_urls.get(r.person_id or "", group_url)
            named = subject != group_url
            request_url = _urn()
            target = {"coding": [_coding(SYS_TARGET, r.target, REFERRAL_TARGET.get(r.target))]}
            request: dict[str, Any] = {
                "resourceType": "ServiceRequest", "status": REQUEST_STATUS.get(r.status, "unknown"),
                "intent": "order", "subject": {"reference": subject}, "authoredOn": _iso(r.requested_at),
                "performerType": target,
                "code": {"concept": {"coding": [_coding(SYS_TARGET, r.target, REFERRAL_TARGET.get(r.target))]}},
            }
            if named and r.record:
                request["identifier"] = [{"system": SYS_RECORD, "value": r.record}]
            entries.append({"fullUrl": request_url, "resource": request})
            entries.append({"fullUrl": _urn(), "resource": {
                "resourceType": "Task", "status": r.status, "intent": "order",
                "focus": {"reference": request_url}, "for": {"reference": subject},
                "authoredOn": _iso(r.requested_at), "lastModified": _iso(r.updated_at),
            }})
    for m in view.members:
        if not (m.named and m.person):
            continue
        for v in _current(facts.consents.get(m.person, ()), now):
            entries.append({"fullUrl": _urn(), "resource": {
                "resourceType": "Consent",
                "identifier": [{"system": SYS_CONSENT, "value": v.consent_id}],
                "status": v.status if v.status in ("active", "inactive", "draft", "entered-in-error") else "unknown",
                "subject": {"reference": person_urls[m.person]},
                "date": v.version.astimezone(JST).date().isoformat(),
                "period": _period(v.period_start, v.period_end),
                "decision": v.decision,
                "provision": [{"purpose": [{"system": "urn:tsunagu:purpose", "code": v.purpose}],
                               "documentType": [], "resourceType": []}],
            }})
    if plan is not None and view.route == "team":
        entries.append({"fullUrl": _urn(), "resource": {
            "resourceType": "CarePlan",
            "identifier": [{"system": "urn:tsunagu:plan", "value": plan.id}],
            "status": PLAN_STATUS.get(plan.state, "unknown"),
            "intent": "plan",
            "subject": {"reference": group_url},
            "created": _iso(plan.created_at),
            "category": [{"coding": [_coding(SYS_PROGRAMME, p)]} for p in plan.programmes] or [
                {"text": "多機関協働事業"}],
            "description": "／".join(plan.goals) if plan.goals else None,
            "note": [{"text": f"主担当: {FIELD_LABELS.get(plan.lead_agency, plan.lead_agency)}"}] + [
                {"text": f"{FIELD_LABELS.get(a, a)}: {role}"} for a, role in sorted(plan.roles.items())],
        }})
    for a in view.alerts:
        entries.append({"fullUrl": _urn(), "resource": {
            "resourceType": "Flag",
            "status": "inactive" if alert_states.get(a.alert_id) == "closed" else "active",
            "code": {"coding": [_coding(SYS_KIND, a.kind, KIND_LABELS.get(a.kind))]},
            "subject": {"reference": group_url},
            "period": {"start": _iso(a.raised_at)},
        }})
    bundle = {"resourceType": "Bundle", "type": "collection", "timestamp": _iso(now), "entry": entries}
    validated = Bundle.model_validate(_prune(bundle))
    out: dict[str, Any] = validated.model_dump(mode="json", exclude_none=True)
    return out


def _current(versions: Sequence[ConsentVersion], now: datetime) -> list[ConsentVersion]:
    """Each consent id's version in force at ``now`` (the latest recorded by then)."""
    latest: dict[str, ConsentVersion] = {}
    for v in versions:
        if v.version <= now and (v.consent_id not in latest or v.version >= latest[v.consent_id].version):
            latest[v.consent_id] = v
    return [latest[k] for k in sorted(latest)]


def _prune(value: Any) -> Any:
    """Drop None values and empty lists/dicts (FHIR forbids empty elements)."""
    if isinstance(value, dict):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v != [] and v != {}}
    if isinstance(value, list):
        items = [_prune(v) for v in value]
        return [v for v in items if v is not None and v != [] and v != {}]
    return value
