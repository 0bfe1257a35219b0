"""The consent-documents connector: FHIR R5 Consent files → consent recorded / withdrawn events."""

from __future__ import annotations

import copy
import json
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.contract import Item
from connectors.fhir_consent import FhirConsentConnector
from schemas.events import ConsentV1
from schemas.fhir_consent import InvalidConsentDocument, grantor_of, parse_consent
from schemas.wareki import JST

RECORDED = "jp.tsunagu.consent.recorded.v1"
WITHDRAWN = "jp.tsunagu.consent.withdrawn.v1"


def read(folder: Path, checkpoints: dict[str, str] | None = None) -> list[Item]:
    return list(FhirConsentConnector(folder).read(checkpoints or {}))


def saved(items: list[Item], before: dict[str, str] | None = None) -> dict[str, str]:
    out = dict(before or {})
    out.update({i.checkpoint.scope: i.checkpoint.position for i in items})
    return out


@pytest.fixture
def folder(tmp_path: Path, samples_dir: Path) -> Path:
    dest = tmp_path / "consent"
    shutil.copytree(samples_dir / "consent", dest)
    return dest


@pytest.fixture
def resource(samples_dir: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((samples_dir / "consent" / "consent-0025.json").read_text(encoding="utf-8"))
    return doc


def test_sample_counts_and_types(samples_dir: Path) -> None:
    """57 sample files: 49 consents recorded, 8 withdrawn, no dead letter."""
    items = read(samples_dir / "consent")
    types = [i.event.type for i in items if i.event]
    assert len(items) == 57 and types.count(RECORDED) == 49 and types.count(WITHDRAWN) == 8


def test_envelope(samples_dir: Path) -> None:
    """Events are keyed by the registry record key, carry no field, and happen at the resource's date."""
    for item in read(samples_dir / "consent"):
        e = item.event
        assert e is not None
        consent = ConsentV1.model_validate(e.data)
        assert e.sourcerecord == item.key == f"registry:{consent.subject_resident_no}"
        assert e.field is None and e.source == "urn:tsunagu:connector:consent"
        assert e.time == consent.version and e.time.utcoffset() == timedelta(hours=9)


def test_withdrawal_follows_its_original(samples_dir: Path) -> None:
    """For every withdrawn consent the withdrawal comes after the original, with its own date as time."""
    events = [i.event for i in read(samples_dir / "consent") if i.event]
    seen: dict[str, datetime] = {}
    for e in events:
        consent = ConsentV1.model_validate(e.data)
        if e.type == WITHDRAWN:
            assert consent.consent_id in seen and seen[consent.consent_id] < e.time
        seen[consent.consent_id] = e.time
    e2 = [e for e in events if e.data["consent_id"] == "consent-0002"]
    assert [(e.type, e.time) for e in e2] == [
        (RECORDED, datetime(2025, 6, 30, tzinfo=JST)),
        (WITHDRAWN, datetime(2026, 7, 18, tzinfo=JST)),
    ]


def test_matches_truth_consents(samples_dir: Path, truth: dict[str, Any]) -> None:
    """Every consent of samples.truth.json is recorded with its fields and start, and withdrawn at its end."""
    events = [i.event for i in read(samples_dir / "consent") if i.event]
    recorded = {(e.sourcerecord, tuple(e.data["fields"]), e.data["period_start"]) for e in events if e.type == RECORDED}
    withdrawn = {(e.sourcerecord, e.time.date().isoformat()) for e in events if e.type == WITHDRAWN}
    for pid, consents in truth["consents"].items():
        key = f"registry:{truth['persons'][pid]['atena']}"
        for c in consents:
            assert (key, tuple(c["fields"]), c["start"]) in recorded, (pid, c)
            if c["end"]:
                assert (key, c["end"]) in withdrawn, (pid, c)


def test_mapping(resource: dict[str, Any]) -> None:
    """A guardian's consent for a child maps fields, period, grantor relation and keeps the resource."""
    consent = parse_consent(resource)
    assert consent.consent_id == "consent-0025" and consent.status == "active" and consent.decision == "permit"
    assert consent.subject_resident_no == "1055434256" and consent.fields == ["child"]
    assert consent.grantor == "母" and consent.recipient == "重層的支援会議"
    assert consent.purpose == "multi-agency-support" and consent.origin == "fhir"
    assert consent.period_start == date(2026, 4, 8) and consent.period_end is None
    assert consent.version == datetime(2026, 4, 8, tzinfo=JST)
    assert consent.fhir == resource


def test_grantor_never_carries_a_name() -> None:
    """本人 is self, 保護者（母） is 母, and anything else (possibly a name) becomes 'other'."""
    assert grantor_of("本人") == "self"
    assert grantor_of("保護者（母）") == "母"
    assert grantor_of("保護者(父)") == "父"
    assert grantor_of("山田　花子") == "other"
    assert grantor_of(None) == "unknown"


def test_resume_reads_only_new_files(folder: Path) -> None:
    """With the checkpoints of a full read nothing is read again; a file added later is read, late names too."""
    items = read(folder)
    checkpoints = saved(items)
    assert read(folder, checkpoints) == []
    late = json.loads((folder / "consent-0001.json").read_text(encoding="utf-8"))
    late.update(status="inactive", date="2026-10-30")
    # sorts before files already read: a "name <= last name" watermark would skip it
    (folder / "consent-0001.withdrawn.json").write_text(json.dumps(late), encoding="utf-8")
    [item] = read(folder, checkpoints)
    assert item.event is not None and item.event.type == WITHDRAWN
    assert item.checkpoint.scope == "consent/consent-0001.withdrawn.json"


def test_order_is_by_id_then_date(tmp_path: Path, resource: dict[str, Any]) -> None:
    """New files are processed by (id, date), whatever their names say."""
    withdrawal = {**copy.deepcopy(resource), "status": "inactive", "date": "2026-09-01"}
    (tmp_path / "a-withdrawal.json").write_text(json.dumps(withdrawal), encoding="utf-8")
    (tmp_path / "b-original.json").write_text(json.dumps(resource), encoding="utf-8")
    assert [i.event.type for i in read(tmp_path) if i.event] == [RECORDED, WITHDRAWN]


def _broken(resource: dict[str, Any], kind: str) -> Any:
    doc = copy.deepcopy(resource)
    if kind == "fhir":
        doc["date"] = "2026-13-45"
    elif kind == "subject":
        doc["subject"] = {"display": "山田　花子"}
    elif kind == "type":
        doc["resourceType"] = "Patient"
    elif kind == "field":
        doc["provision"][0]["actor"][1]["reference"]["identifier"]["value"] = "housing"
    elif kind == "status":
        doc["status"] = "draft"
    return doc


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("json", "unreadable JSON"),
        ("fhir", "date: value_error"),
        ("subject", "subject.identifier: missing"),
        ("type", "resourceType"),
        ("field", "unknown field code"),
        ("status", "status draft"),
    ],
)
def test_invalid_resource_is_a_dead_letter(tmp_path: Path, resource: dict[str, Any], kind: str, reason: str) -> None:
    """A bad file becomes a dead letter naming the file and the error path, never personal data."""
    bad = tmp_path / "consent-9999.json"
    if kind == "json":
        bad.write_text('{"resourceType": "Consent", ', encoding="utf-8")
    else:
        bad.write_text(json.dumps(_broken(resource, kind), ensure_ascii=False), encoding="utf-8")
    (tmp_path / "consent-0025.json").write_text(json.dumps(resource), encoding="utf-8")
    items = read(tmp_path)
    letters = [i.dead_letter for i in items if i.dead_letter]
    assert len(letters) == 1 and sum(i.event is not None for i in items) == 1
    letter = letters[0]
    assert letter.where == "file:consent-9999.json" and letter.source == "consent"
    assert reason in letter.reason
    for personal in ("1055434256", "山田", "2026-13-45", "housing"):
        assert personal not in letter.reason


def test_parse_consent_rejects_without_values(resource: dict[str, Any]) -> None:
    """InvalidConsentDocument messages name paths and error types, not the offending values."""
    bad = copy.deepcopy(resource)
    bad["subject"]["identifier"]["value"] = "12345"
    with pytest.raises(InvalidConsentDocument) as err:
        parse_consent(bad)
    assert "12345" not in str(err.value) and "subject.identifier.value" in str(err.value)
