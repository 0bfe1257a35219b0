"""Consent documents against hostile files: deep nesting, extreme dates, reversed periods, odd names and text."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from connectors.contract import Item
from connectors.fhir_consent import FhirConsentConnector
from schemas.fhir_consent import InvalidConsentDocument, parse_consent

BASE: dict[str, Any] = {
    "resourceType": "Consent",
    "id": "consent-9001",
    "status": "active",
    "date": "2025-11-07",
    "subject": {"identifier": {"system": "urn:jp:lg:999999:resident-no", "value": "1055433006"}},
    "grantor": [{"display": "本人"}],
    "decision": "permit",
    "period": {"start": "2025-11-07"},
    "provision": [{
        "actor": [
            {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                  "code": "IRCP"}]},
             "reference": {"display": "重層的支援会議"}},
            {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                  "code": "CST"}]},
             "reference": {"identifier": {"system": "urn:jp:tsunagu:field", "value": "elderly"}}},
        ],
        "purpose": [{"system": "urn:jp:tsunagu:purpose", "code": "multi-agency-support"}],
    }],
}


def doc(**over: Any) -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    out.update(over)
    return out


def read_one(tmp_path: Path, content: bytes, name: str = "c.json") -> Item:
    folder = tmp_path / "consent"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    [item] = list(FhirConsentConnector(folder).read({}))
    return item


def test_base_document_is_accepted() -> None:
    """The document the other tests mutate is a valid consent."""
    assert parse_consent(doc()).recipient == "重層的支援会議"


@pytest.mark.parametrize("depth", [100, 5000, 200_000])
def test_deeply_nested_json_is_a_dead_letter(tmp_path: Path, depth: int) -> None:
    """JSON nested thousands deep (in a free extension) is a dead letter, not a RecursionError."""
    content = json.dumps(doc()).replace('"status"', '"x": ' + "[" * depth + "]" * depth + ', "status"', 1)
    item = read_one(tmp_path, content.encode("utf-8"))
    assert item.dead_letter is not None
    assert "nested deeper than" in item.dead_letter.reason


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("date", "9999-12-31T23:59:59-14:00"),
        ("date", "0001-01-01T00:00:00+14:00"),
        ("period.start", "9999-12-31T23:59:59-14:00"),
        ("period.start", "0001-01-01T00:00:00+14:00"),
        ("period.end", "9999-12-31T23:59:59-14:00"),
        ("date", "0001-01-01"),
        ("date", "9999-12-31"),
    ],
)
def test_extreme_dates_are_rejected_without_overflow(where: str, value: str) -> None:
    """Valid but extreme FHIR dates are an InvalidConsentDocument naming the element, never an OverflowError."""
    d = doc()
    if where == "date":
        d["date"] = value
    else:
        d["period"] = {"start": "2025-11-07", **({"start": value} if where == "period.start" else {"end": value})}
    with pytest.raises(InvalidConsentDocument) as info:
        parse_consent(d)
    # out of our range, or refused by the FHIR validator itself; either names the element only
    assert str(info.value) in (f"{where}: out of range", f"FHIR validation: {where}: value_error")


def test_extreme_date_file_is_a_dead_letter(tmp_path: Path) -> None:
    """The connector turns an extreme date into a dead letter and goes on."""
    item = read_one(tmp_path / "a", json.dumps(doc(period={"start": "9999-12-31T23:59:59-14:00"})).encode())
    assert item.dead_letter is not None and item.dead_letter.reason == "invalid Consent: period.start: out of range"
    item = read_one(tmp_path / "b", json.dumps(doc(date="1899-12-31")).encode())
    assert item.dead_letter is not None and item.dead_letter.reason == "invalid Consent: date: out of range"


def test_period_that_ends_before_it_starts_is_rejected() -> None:
    """A period whose end is before its start is invalid."""
    with pytest.raises(InvalidConsentDocument, match=r"^period: ends before it starts$"):
        parse_consent(doc(period={"start": "2025-11-07", "end": "2025-11-06"}))
    assert parse_consent(doc(period={"start": "2025-11-07", "end": "2025-11-07"})).period_end is not None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("重層的支援会議\u0000", "invalid Consent: control character in a JSON string"),
        ("\ud800", "invalid Consent: lone surrogate in a JSON string"),
    ],
)
def test_control_characters_and_lone_surrogates_are_dead_letters(tmp_path: Path, text: str, reason: str) -> None:
    """A NUL or a lone surrogate escaped in the JSON is a dead letter (it could not even be stored)."""
    d = doc()
    d["provision"][0]["actor"][0]["reference"]["display"] = text
    item = read_one(tmp_path, json.dumps(d).encode("ascii"))
    assert item.dead_letter is not None and item.dead_letter.reason == reason
    item.dead_letter.to_json_bytes()


def test_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    """A consent file whose name is not UTF-8 is read; scope and where are storable text."""
    folder = tmp_path / "consent"
    folder.mkdir()
    with open(os.path.join(os.fsencode(folder), b"consent-\xff.json"), "wb") as f:
        f.write(json.dumps(doc()).encode())
    with open(os.path.join(os.fsencode(folder), b"consent-\xfe.json"), "wb") as f:
        f.write(b"{")
    items = list(FhirConsentConnector(os.fsencode(folder)).read({}))  # type: ignore[arg-type]
    assert sorted(i.checkpoint.scope for i in items) == ["consent/consent-\\xfe.json", "consent/consent-\\xff.json"]
    [letter] = [i.dead_letter for i in items if i.dead_letter is not None]
    assert letter.where == "file:consent-\\xfe.json"
    letter.to_json_bytes()
    [event] = [i.event for i in items if i.event is not None]
    event.to_json_bytes()
    # resuming with those checkpoints reads nothing again
    assert list(FhirConsentConnector(folder).read({i.checkpoint.scope: "1" for i in items})) == []


def test_file_that_is_not_utf8_is_a_dead_letter(tmp_path: Path) -> None:
    """Content in another encoding is a dead letter without quoting it."""
    item = read_one(tmp_path, json.dumps(doc(), ensure_ascii=False).encode("cp932"))
    assert item.dead_letter is not None and item.dead_letter.reason == "unreadable JSON (not UTF-8)"
