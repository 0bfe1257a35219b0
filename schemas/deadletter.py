"""Dead letters: records that could not be processed, with a reason that holds no personal data.

Two shapes live here:

* :class:`DeadLetter` — what a connector (or the hub) says about one record it could not use,
  as the code that found the problem writes it (free-form but personal-data-free ``reason``).
* :class:`DeadLetterV1` — the ``data`` of the CloudEvent ``jp.tsunagu.deadletter.v1`` that goes
  to the dead-letter topic from every stage (connector, webhook, hub). It carries a reason *code*
  from the fixed set :data:`REASON_CODES`, the origin of the record (feed, file and line / row id
  / delivery id; for the hub topic, partition and offset) and, when a key is configured, the
  original bytes (for the hub, the message's value and key) encrypted (never readable from the topic
  without the key).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PydField

# Reasons are fixed phrases; free text from a record never goes into one.
_MAX_REASON = 200

#: the CloudEvents type of every dead letter on the dead-letter topic
DEADLETTER_TYPE = "jp.tsunagu.deadletter.v1"

Stage = Literal["connector", "webhook", "hub"]
STAGES: tuple[str, ...] = ("connector", "webhook", "hub")

#: reason codes (label values of ``tsunagu_dead_letters_total{reason}``), with Japanese labels
REASON_CODES: dict[str, str] = {
    "schema": "スキーマ不適合",
    "parse": "読み取り不能",
    "encoding": "文字コード不正",
    "mapping": "項目対応の誤り",
    "date": "日付不正",
    "missing": "必須項目なし",
    "signature": "署名不正",
    "size": "サイズ超過",
    "duplicate": "重複・内容不一致",
    "refused": "ブローカー拒否",
    "source": "連携元の異常",
    "identity": "本人特定不能",
    "consent": "同意処理不能",
    "unknown_type": "未知のイベント種別",
    "other": "その他",
}

# ordered: the first pattern that matches a reason phrase names its code
_CODE_PATTERNS: tuple[tuple[str, str], ...] = (
    ("signature", r"signature|署名|hmac"),
    ("refused", r"broker refused"),
    ("size", r"larger than|too large|message limit|size"),
    ("parse", r"column count|unterminated quoted|malformed csv|malformed json"),
    ("duplicate", r"reused|duplicate|different content"),
    ("encoding", r"encod|decod|utf|shift_jis|cp932|control character|nul byte|undecodable"),
    ("unknown_type", r"unknown event type"),
    ("identity", r"identity|resolve|household"),
    ("consent", r"consent"),
    ("date", r"date|wareki|和暦|日付|era\b"),
    ("missing", r"missing|required|empty|no \w+ column|needs"),
    ("mapping", r"mapping|unknown code|code list|not in the code"),
    ("source", r"unreadable file|unreadable delivery|database unreadable|table .* missing|rest of the table"),
    ("schema", r"schema|invalid|validation|not a valid|json"),
    ("parse", r"parse|unreadable|malformed|cannot be serialized|not an? |non-integer"),
)


def reason_code(reason: str, stage: str = "connector") -> str:
    """The fixed reason code of a reason phrase (``other`` when none fits)."""
    text = reason.lower()
    if stage == "webhook" and "signature" in text:
        return "signature"
    for code, pattern in _CODE_PATTERNS:
        if re.search(pattern, text):
            return code
    return "other"


class DeadLetter(BaseModel):
    """One line of deadletter.jsonl / one record a connector or the hub could not use."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = PydField(description="feed name (houkatsu, shogai, …) or hub stage")
    where: str = PydField(description="file and line, table and row id, or delivery id")
    record: str | None = PydField(default=None, description="record key when known")
    reason: str = PydField(description="why, in words that carry no personal data")
    stage: str = PydField(default="connector", description="connector, hub.intake, hub.household")
    event: str | None = PydField(default=None, description="CloudEvents id when the record became an event")
    at: datetime | None = None
    code: str | None = PydField(default=None, description="reason code (REASON_CODES); derived when unset")

    @field_validator("reason")
    @classmethod
    def _short(cls, v: str) -> str:
        return v[:_MAX_REASON]

    @property
    def reason_code(self) -> str:
        if self.code in REASON_CODES:
            return self.code
        return reason_code(self.reason, self.stage)

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode("utf-8")


class DeadLetterOrigin(BaseModel):
    """Where a dead-lettered record came from; only positions and names of files, tables, topics."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    where: str = PydField(description="as the stage wrote it: file:line, row id, delivery id, topic@offset")
    scope: str | None = PydField(default=None, description="connector checkpoint scope (file, table, delivery folder)")
    position: str | None = PydField(default=None, description="connector checkpoint position within the scope")
    delivery: str | None = PydField(default=None, description="webhook delivery id")
    topic: str | None = PydField(default=None, description="hub: the topic the message was read from")
    partition: int | None = PydField(default=None, ge=0)
    offset: int | None = PydField(default=None, ge=0)


class DeadLetterV1(BaseModel):
    """The data of ``jp.tsunagu.deadletter.v1``: one dead letter from any stage, no personal data in clear."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: Stage
    feed: str = PydField(description="feed name, or 'hub' when the feed is not known")
    reason: str = PydField(description="reason code, one of REASON_CODES")
    detail: str = PydField(description="the stage's reason phrase (fixed words, no values from the record)")
    origin: DeadLetterOrigin
    event: str | None = PydField(default=None, description="CloudEvents id of the original event, when it had one")
    record: str | None = PydField(default=None, description="record key when known (never shown on /ops)")
    original: str | None = PydField(
        default=None, description="the original bytes, Fernet-encrypted with TSUNAGU_DEADLETTER_KEY (urlsafe base64)"
    )
    original_key: str | None = PydField(
        default=None, description="hub: the original message's Kafka key, Fernet-encrypted like original"
    )
    at: datetime

    @field_validator("reason")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in REASON_CODES:
            raise ValueError("unknown reason code")
        return v

    @field_validator("detail")
    @classmethod
    def _short(cls, v: str) -> str:
        return v[:_MAX_REASON]

    @classmethod
    def from_dead_letter(
        cls, letter: DeadLetter, *, stage: Stage, at: datetime, scope: str | None = None,
        position: str | None = None, delivery: str | None = None, topic: str | None = None,
        partition: int | None = None, offset: int | None = None, original: str | None = None,
        original_key: str | None = None,
    ) -> DeadLetterV1:
        """The published form of a dead letter found at ``stage``."""
        return cls(
            stage=stage,
            feed=letter.source,
            reason=letter.reason_code,
            detail=letter.reason,
            origin=DeadLetterOrigin(where=letter.where, scope=scope, position=position, delivery=delivery,
                                    topic=topic, partition=partition, offset=offset),
            event=letter.event,
            record=letter.record,
            original=original,
            original_key=original_key,
            at=letter.at or at,
        )
