"""Dead letters: records that could not be processed, with a reason that holds no personal data."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PydField

# Reasons are fixed phrases; free text from a record never goes into one.
_MAX_REASON = 200


class DeadLetter(BaseModel):
    """One line of deadletter.jsonl / one message on the dead-letter topic."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = PydField(description="feed name (houkatsu, shogai, …) or hub stage")
    where: str = PydField(description="file and line, table and row id, or delivery id")
    record: str | None = PydField(default=None, description="record key when known")
    reason: str = PydField(description="why, in words that carry no personal data")
    stage: str = PydField(default="connector", description="connector, hub.intake, hub.household")
    event: str | None = PydField(default=None, description="CloudEvents id when the record became an event")
    at: datetime | None = None

    @field_validator("reason")
    @classmethod
    def _short(cls, v: str) -> str:
        return v[:_MAX_REASON]

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode("utf-8")
