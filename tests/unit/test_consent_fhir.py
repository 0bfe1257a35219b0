"""FHIR R5 Consent ⇄ ConsentV1 (consent.fhir) and the 自立相談支援 form consent."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.fhir import InvalidConsentDocument, jiritsu_consent, parse_consent, to_fhir
from consent.model import JST
from schemas.codes import Field
from schemas.events import ConsentV1

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "agency-systems" / "samples" / "consent"
if not SAMPLES.exists():  # a checkout without ../shared: the copy the demo ships
    SAMPLES = Path(__file__).resolve().parents[2] / "hub" / "samples" / "consent"
SAMPLE_FILES = sorted(SAMPLES.glob("*.json"))
MINIMAL: dict[str, Any] = {
    "resourceType": "Consent",
    "id": "consent-x",
    "status": "active",
    "date": "2026-04-08",
    "subject": {"identifier": {"system": "urn:jp:lg:999999:resident-no", "value": "1055434256"}},
    "grantor": [{"display": "本人"}],
    "decision": "permit",
    "period": {"start": "2026-04-08"},
    "provision": [{
        "actor": [
            {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                  "code": "IRCP"}]},
             "reference": {"display": "重層的支援会議"}},
            {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                  "code": "CST"}]},
             "reference": {"identifier": {"system": "urn:jp:tsunagu:field", "value": "child"}}},
        ],
        "purpose": [{"system": "urn:jp:tsunagu:purpose", "code": "multi-agency-support"}],
    }],
}


def doc(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(MINIMAL)
    out.update(changes)
    return out


def without_raw(c: ConsentV1) -> ConsentV1:
    return c.model_copy(update={"fhir": None})


def test_samples_are_present() -> None:
    """The consent samples exist, so the parametrized checks below really ran."""
    assert len(SAMPLE_FILES) >= 10


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_every_sample_parses_and_round_trips(path: Path) -> None:
    """Each sample Consent maps to a ConsentV1, and to_fhir of that maps back to the same value."""
    resource = json.loads(path.read_text(encoding="utf-8"))
    c = parse_consent(resource, municipality_code="999999")
    assert c.origin == "fhir" and c.fhir == resource
    assert c.recipient == "重層的支援会議" and c.purpose == "multi-agency-support"
    assert c.subject_resident_no == resource["subject"]["identifier"]["value"]
    assert c.version == datetime.fromisoformat(resource["date"]).replace(tzinfo=JST)
    assert c.status == ("inactive" if ".withdrawn" in path.name else "active")
    assert without_raw(parse_consent(to_fhir(c))) == without_raw(c)


def test_guardian_display_maps_to_the_relation_and_date_to_midnight_jst() -> None:
    """保護者（母） becomes the relation 母, and a date-only `date` means 00:00 Japan time."""
    c = parse_consent(doc(grantor=[{"display": "保護者（母）"}]))
    assert c.grantor == "母"
    assert c.version == datetime(2026, 4, 8, tzinfo=JST)
    assert (c.fields, c.period_start, c.period_end) == ([Field.CHILD], date(2026, 4, 8), None)


@pytest.mark.parametrize(
    ("grantor", "expected"),
    [
        ({"display": "本人"}, "self"),
        ({"reference": "Patient/p1"}, "self"),
        ({"identifier": {"system": "urn:jp:lg:999999:resident-no", "value": "1055434256"}}, "self"),
        ({"display": "母"}, "母"),
        ({"display": "保護者(父)"}, "父"),
        ({"display": "保護者"}, "guardian"),
        ({"reference": "RelatedPerson/rp1", "display": "山田 花子"}, "guardian"),
        ({"display": "保護者（山田花子）"}, "guardian"),
    ],
)
def test_grantor_is_self_a_relation_or_guardian_never_a_name(grantor: dict[str, Any], expected: str) -> None:
    """A grantor display that is not a known relation word may be a name, and is stored as 'guardian'."""
    assert parse_consent(doc(grantor=[grantor])).grantor == expected


def test_deny_withdrawal_period_end_and_exact_time_map() -> None:
    """decision deny, status inactive, period.end and a dateTime period map as the rules read them."""
    c = parse_consent(doc(decision="deny", status="inactive",
                          period={"start": "2026-04-08T23:30:00+09:00", "end": "2026-12-31"}))
    assert (c.decision, c.status, c.period_start, c.period_end) == ("deny", "inactive", date(2026, 4, 8),
                                                                   date(2026, 12, 31))


def test_r5_not_done_is_rejected_and_missing_recipient_grants_nothing() -> None:
    """R5 `not-done` reads as rejected; a document without IRCP or purpose keeps empty values (no grant)."""
    bare = doc(status="not-done")
    bare["provision"] = [{"actor": [MINIMAL["provision"][0]["actor"][1]]}]
    c = parse_consent(bare)
    assert (c.status, c.recipient, c.purpose) == ("rejected", "", "")
    assert without_raw(parse_consent(to_fhir(c))) == without_raw(c)


def test_other_municipality_is_refused_when_a_code_is_given() -> None:
    """With municipality_code, a resident number from another municipality's system is invalid."""
    with pytest.raises(InvalidConsentDocument, match="another municipality"):
        parse_consent(MINIMAL, municipality_code="131016")


SECRET_NAME = "髙橋 裕子"
SECRET_NO = "1055434256"


def _bad_documents() -> list[tuple[str, Any]]:
    subject_name = doc(subject={"identifier": {"system": "urn:jp:lg:999999:resident-no", "value": SECRET_NAME}})
    extra = doc(patientName=SECRET_NAME)
    bad_date = doc(date="2026-13-45")
    bad_status = doc(status="unknown")
    bad_field = doc()
    bad_field["provision"][0]["actor"][1]["reference"]["identifier"]["value"] = SECRET_NAME
    no_cst = doc()
    no_cst["provision"][0]["actor"] = no_cst["provision"][0]["actor"][:1]
    nested = doc()
    nested["provision"][0]["provision"] = [{"actor": []}]
    bad_grantor_type = doc(grantor=[{"display": 12345}], text={"status": "generated",
                                                                "div": f"<div>{SECRET_NAME}</div>"})
    wrong_system = doc(subject={"identifier": {"system": "urn:other", "value": SECRET_NO}})
    no_period = doc()
    del no_period["period"]
    return [
        ("not a dict", [SECRET_NAME]),
        ("other resource", doc(resourceType="Patient", name=[{"text": SECRET_NAME}])),
        ("resident number not 10 digits", subject_name),
        ("unknown element", extra),
        ("impossible date", bad_date),
        ("unusable status", bad_status),
        ("unknown field code", bad_field),
        ("no custodian", no_cst),
        ("nested provision", nested),
        ("grantor display not a string", bad_grantor_type),
        ("not a resident-no system", wrong_system),
        ("no period", no_period),
    ]


@pytest.mark.parametrize(("why", "resource"), _bad_documents(), ids=[w for w, _ in _bad_documents()])
def test_invalid_resource_raises_without_personal_data(why: str, resource: Any) -> None:
    """A bad document raises InvalidConsentDocument naming a path and an error type, never a name or number."""
    with pytest.raises(InvalidConsentDocument) as info:
        parse_consent(resource)
    message = str(info.value)
    assert SECRET_NAME not in message and "髙橋" not in message and SECRET_NO not in message
    assert "12345" not in message
    assert message and (":" in message), "the message names where it failed"
    exc = info.value  # no chained exception whose text could carry the input
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)


def test_fhir_validation_errors_name_the_element_path() -> None:
    """fhir.resources errors are reported as element paths with the pydantic error type only."""
    with pytest.raises(InvalidConsentDocument) as info:
        parse_consent(doc(date="2026-13-45", **{SECRET_NAME: "x"}))
    assert "date: value_error" in str(info.value) and "*: extra_forbidden" in str(info.value)
    assert SECRET_NAME not in str(info.value)
    assert info.value.__suppress_context__


def test_jiritsu_form_consent() -> None:
    """情報共有同意 on the 自立相談支援 form: livelihood only, from 同意日, versioned by the row's revision."""
    c = jiritsu_consent("jiritsu:J25-0001", "1055400001", date(2025, 5, 1), datetime(2025, 5, 3, 10, 0))
    assert c.consent_id == "jiritsu-form:J25-0001" and c.origin == "jiritsu_form"
    assert (c.fields, c.period_start, c.grantor, c.status) == ([Field.LIVELIHOOD], date(2025, 5, 1), "self", "active")
    assert c.version == datetime(2025, 5, 3, 10, 0, tzinfo=JST)
    assert c.subject_record == "jiritsu:J25-0001" and c.subject_resident_no == "1055400001"
    assert parse_consent(to_fhir(c), keep_resource=False) == c
    gone = jiritsu_consent("jiritsu:J25-0001", None, date(2025, 5, 1), datetime(2025, 6, 1, tzinfo=JST),
                           withdrawn=True)
    assert gone.status == "inactive" and gone.consent_id == c.consent_id and gone.subject_resident_no is None
    assert parse_consent(to_fhir(gone), keep_resource=False) == gone


def test_to_fhir_refuses_a_grantor_it_cannot_write() -> None:
    """A grantor that is neither self, guardian nor a 続柄 label cannot be written without loss."""
    c = parse_consent(MINIMAL).model_copy(update={"grantor": "someone"})
    with pytest.raises(ValueError):
        to_fhir(c)


_OFFSETS = st.sampled_from([JST, UTC, timezone(timedelta(hours=-5))])


@st.composite
def consents(draw: st.DrawFn) -> ConsentV1:
    start = draw(st.dates(date(2020, 1, 1), date(2030, 12, 31)))
    version = draw(st.datetimes(datetime(2020, 1, 1), datetime(2030, 12, 31), timezones=_OFFSETS))
    if draw(st.booleans()):
        version = datetime.combine(version.astimezone(JST).date(), datetime.min.time(), tzinfo=JST)
    subject = draw(st.sampled_from(["resident", "record", "both"]))
    return ConsentV1(
        consent_id=draw(st.sampled_from(["consent-0001", "jiritsu-form:J25-0001", "tsunagu:同意/7", "a.b-c"])),
        version=version,
        status=draw(st.sampled_from(["active", "inactive", "draft", "rejected", "entered-in-error"])),
        decision=draw(st.sampled_from(["permit", "deny"])),
        subject_resident_no=None if subject == "record" else draw(st.from_regex(r"[0-9]{10}", fullmatch=True)),
        subject_record=None if subject == "resident" else "kodomo:K-" + str(draw(st.integers(1, 9999))),
        grantor=draw(st.sampled_from(["self", "guardian", "母", "父", "祖母", "その他"])),
        fields=draw(st.lists(st.sampled_from(list(Field)), min_size=1, max_size=4, unique=True)),
        recipient=draw(st.sampled_from(["重層的支援会議", "", "other meeting"])),
        purpose=draw(st.sampled_from(["multi-agency-support", "", "research"])),
        period_start=start,
        period_end=draw(st.one_of(st.none(), st.dates(start, date(2031, 12, 31)))),
        origin=draw(st.sampled_from(["fhir", "jiritsu_form", "tsunagu"])),
    )


@settings(max_examples=300, deadline=None)
@given(consents())
def test_property_round_trip_is_lossless(c: ConsentV1) -> None:
    """parse_consent(to_fhir(c)) == c for every representable consent (the raw `fhir` field aside)."""
    resource = to_fhir(c)
    json.dumps(resource)  # plain JSON
    assert parse_consent(resource, keep_resource=False) == c
