"""Consent documents: FHIR R5 ``Consent`` JSON files → consent recorded / withdrawn events.

Each ``{folder}/*.json`` is one resource version. ``status`` ``active`` →
``jp.tsunagu.consent.recorded.v1``, ``inactive`` → ``jp.tsunagu.consent.withdrawn.v1``;
other statuses (draft, rejected, entered-in-error) grant nothing and become dead letters.
The mapping is :func:`schemas.fhir_consent.parse_consent` (the one tsunagu uses everywhere): a
grantor is stored as ``self``, a 続柄 or ``guardian``, never a name; a resource without the
``重層的支援会議`` recipient or the ``multi-agency-support`` purpose is still recorded (a later
withdrawal of it must not be lost) but maps to an empty recipient / purpose, which grants nothing.
Events are keyed by ``registry:{宛名番号}``, or by the subject's record key for a consent that names
its subject only by one (``urn:jp:tsunagu:record-key``, as tsunagu's own consents can).

Checkpoints: one scope per file (``consent/{file name}``, position ``"1"`` once read).
Files can be added at any time and their names say nothing about when (a withdrawal
``consent-0002.withdrawn.json`` may arrive long after ``consent-0049.json``), so a single
"file name ≤ position" watermark would silently skip late withdrawals. New files of one
read are processed in (resource id, date, file name) order, so a withdrawal follows its
original when both are new.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.contract import Checkpoint, Connector, Item
from connectors.safety import MAX_JSON_DEPTH, display_name, json_problem
from schemas.codes import Feed
from schemas.deadletter import DeadLetter
from schemas.envelope import CloudEvent, content_hash, stable_event_id
from schemas.events import ConsentV1
from schemas.fhir_consent import InvalidConsentDocument, parse_consent

FEED = Feed.CONSENT
SOURCE = f"urn:tsunagu:connector:{FEED.value}"
SCOPE_PREFIX = "consent/"
DONE = "1"

EVENT_TYPE = {
    "active": "jp.tsunagu.consent.recorded.v1",
    "inactive": "jp.tsunagu.consent.withdrawn.v1",
}


def scope_of(path: Path) -> str:
    return f"{SCOPE_PREFIX}{display_name(path.name)}"


def record_key(resident_no: str) -> str:
    return f"registry:{resident_no}"


def subject_key(consent: ConsentV1) -> str:
    """The record key a consent event is about: the registry key of its 宛名番号, else its record key."""
    if consent.subject_resident_no:
        return record_key(consent.subject_resident_no)
    assert consent.subject_record is not None  # ConsentV1 names its subject one way or the other
    return consent.subject_record


@dataclass(frozen=True, slots=True)
class _Read:
    path: Path
    consent: ConsentV1 | None = None
    problem: str | None = None
    order_id: str = ""
    order_date: str = ""

    @property
    def order(self) -> tuple[str, str, str]:
        return (self.order_id, self.order_date, self.path.name)


def consent_event(consent: ConsentV1) -> CloudEvent:
    """The CloudEvent for one consent version; time = when that version was recorded."""
    record = subject_key(consent)
    data = consent.model_dump(mode="json")
    return CloudEvent(
        id=stable_event_id(FEED.value, record, consent.version.isoformat(), content_hash(data)),
        source=SOURCE,
        type=EVENT_TYPE[consent.status],
        time=consent.version,
        sourcerecord=record,
        field=None,
        data=data,
    )


class FhirConsentConnector(Connector):
    """Reads consent documents from a folder; every file once, late files included."""

    name = FEED.value

    def __init__(self, folder: Path | str | bytes, *, municipality_code: str | None = None) -> None:
        self.folder = Path(os.fsdecode(folder))
        #: when given, a resident number of another municipality's system is a dead letter
        self.municipality_code = municipality_code

    def read(self, checkpoints: Mapping[str, str]) -> Iterator[Item]:
        new = [p for p in sorted(self.folder.glob("*.json")) if scope_of(p) not in checkpoints]
        for read in sorted((self._load(p) for p in new), key=lambda r: r.order):
            cp = Checkpoint(scope_of(read.path), DONE)
            consent = read.consent
            if consent is None or consent.status not in EVENT_TYPE:
                reason = read.problem or (
                    f"status {consent.status}: records nothing" if consent is not None else "invalid consent"
                )
                record = subject_key(consent) if consent is not None else None
                letter = DeadLetter(
                    source=FEED.value,
                    where=f"file:{display_name(read.path.name)}",
                    record=record,
                    reason=reason,
                    at=consent.version if consent is not None else None,
                )
                yield Item(checkpoint=cp, dead_letter=letter, key=record)
                continue
            event = consent_event(consent)
            yield Item(checkpoint=cp, event=event, key=event.sourcerecord)

    def _load(self, path: Path) -> _Read:
        try:
            resource: Any = json.loads(path.read_bytes().decode("utf-8"))
        except UnicodeDecodeError:
            return _Read(path, problem="unreadable JSON (not UTF-8)")
        except RecursionError:
            return _Read(path, problem=f"unreadable JSON (nested deeper than {MAX_JSON_DEPTH} levels)")
        except (OSError, ValueError) as exc:
            return _Read(path, problem=f"unreadable JSON ({type(exc).__name__})")
        problem = json_problem(resource)
        if problem is not None:
            return _Read(path, problem=f"invalid Consent: {problem}")
        order_id = str(resource.get("id") or "") if isinstance(resource, dict) else ""
        order_date = str(resource.get("date") or "") if isinstance(resource, dict) else ""
        try:
            consent = parse_consent(resource, municipality_code=self.municipality_code)
        except InvalidConsentDocument as exc:
            return _Read(path, problem=f"invalid Consent: {exc}", order_id=order_id, order_date=order_date)
        return _Read(
            path,
            consent=consent,
            order_id=consent.consent_id,
            order_date=_sortable(consent.version),
        )


def _sortable(moment: datetime) -> str:
    return moment.isoformat()
