"""CloudEvents 1.0 envelope (structured JSON mode) with tsunagu's extension attributes.

Extension attributes (lower-case alphanumerics, as CloudEvents requires):
``sourcerecord`` (the record key of the person the event is about), ``field``,
``person`` and ``household`` (hub ids, set once the hub has resolved identity).
``time`` is when the change happened at the source, not when tsunagu saw it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from schemas.codes import Field

SPECVERSION = "1.0"
TYPE_PREFIX = "jp.tsunagu."


class CloudEvent(BaseModel):
    """One event on a tsunagu topic. Frozen: derive changed copies with ``model_copy(update=...)``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str
    type: str
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None
    subject: str | None = None
    sourcerecord: str
    field: Field | None = None
    person: str | None = None
    household: str | None = None
    data: dict[str, Any]

    @field_validator("time")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError("time must carry a UTC offset")
        return v

    @field_validator("id", "source", "type", "sourcerecord")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v:
            raise ValueError("must not be empty")
        return v

    @property
    def dedupe_key(self) -> tuple[str, str]:
        """CloudEvents identity: ``source`` + ``id`` name one event, however often it is delivered."""
        return (self.source, self.id)

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")

    @classmethod
    def from_json_bytes(cls, raw: bytes) -> CloudEvent:
        return cls.model_validate_json(raw)


def stable_event_id(*parts: object) -> str:
    """A deterministic event id from what identifies a change, so re-reading a source yields the same id.

    Identical ids are what lets every consumer drop redeliveries (at-least-once + dedupe).
    """
    raw = json.dumps([str(p) for p in parts], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32]


def content_hash(data: dict[str, Any]) -> str:
    """Hash of a payload's canonical JSON (used to tell real changes from re-deliveries)."""
    raw = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32]
