"""こども家庭センター (利用者支援事業): signed webhook deliveries → case events.

Three layers share one request-handling core:

* ``KodomoWebhook.handle(headers, body)`` — pure: checks the size, verifies ``X-Signature``
  (constant-time compare), parses the body, consults a ``DeliveryLedger`` for duplicate
  deliveries, reused delivery ids and out-of-order ``record.koushin``, and returns a
  ``HandleResult`` (HTTP status, outcome, items). It changes nothing; ``acknowledge(result)``
  records the delivery in the ledger once its items are safely published (at-least-once).

Signatures. The current scheme (:func:`sign_delivery`) is HMAC-SHA256 over
``{X-Delivery-Id}.{X-Timestamp}.{raw body}`` with ``X-Timestamp`` in Unix seconds; a timestamp
further than ``replay_window_s`` (default 300 s) from now is refused, so a captured delivery
cannot be replayed later under a new id. The vendor's older scheme (:func:`sign`, HMAC over the
body alone, replayable) is accepted only where ``legacy_signature=True`` is passed (and always by
the replay of recorded files, whose timestamps are old by nature).

Limits for the HTTP side (wired by the hub): :func:`body_too_large` / :func:`read_limited`
refuse a body larger than ``max_body_bytes`` (default 1 MB) while reading it, and
:class:`~connectors.ratelimit.TokenBucket` limits unauthenticated failures per client. With
``dead_letter_unauthenticated=False`` a delivery that fails before it is authenticated (too large,
bad signature, stale timestamp) yields no dead letter: the hub counts it in a metric instead.
* ``make_router(webhook, publish)`` — FastAPI ``POST /webhooks/kodomo``: handle, await
  publish, acknowledge, then answer.
* ``KodomoReplayConnector(folder, secret)`` — the batch run: replays sample delivery files
  through the same core in file-name order.

Dead-letter reasons never carry body content: a delivery with a bad signature is not even
parsed, and its sender-chosen delivery id is only echoed when it looks like an id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError, field_validator
from sqlalchemy import Column, DateTime, MetaData, String, Table, create_engine, select
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from connectors.contract import Checkpoint, Connector, Item
from connectors.ratelimit import TokenBucket
from connectors.safety import MAX_JSON_DEPTH, display_name, json_problem, text_problem
from schemas.codes import (
    FEED_FIELD,
    KODOMO_STATUS,
    KODOMO_TOPICS,
    RELATION_LABELS,
    Feed,
    Sex,
    UnknownCode,
    lookup,
)
from schemas.deadletter import DeadLetter
from schemas.envelope import CloudEvent, content_hash, stable_event_id
from schemas.events import CASE_TYPES, CaseV1, PersonRecord, RelatedPerson
from schemas.normalize import split_name
from schemas.wareki import JST, InvalidDate, parse_date

FEED = Feed.KODOMO
SOURCE = f"urn:tsunagu:connector:{FEED.value}"
FIELD = FEED_FIELD[FEED]
SCOPE = "kodomo"
WEBHOOK_PATH = "/webhooks/kodomo"

SEX_LABELS: dict[str, Sex] = {"男": Sex.MALE, "女": Sex.FEMALE}
EVENT_CHANGE: dict[str, str] = {"record.created": "opened", "record.updated": "updated", "record.closed": "closed"}

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")

Outcome = Literal[
    "accepted", "stale", "duplicate", "bad signature", "stale timestamp", "too large", "conflict", "malformed",
    "invalid",
]
#: outcomes of deliveries that were never authenticated (the hub rate-limits and counts these)
UNAUTHENTICATED: frozenset[str] = frozenset({"bad signature", "stale timestamp", "too large"})
DEFAULT_MAX_BODY_BYTES = 1_000_000
DEFAULT_REPLAY_WINDOW_S = 300


def record_key(taishosha_no: str) -> str:
    """Record key of a person in a kodomo record (README: ``kodomo:{taishosha_no}``)."""
    return f"{FEED.value}:{taishosha_no}"


def case_key(kiroku_id: str) -> str:
    return f"{FEED.value}:case:{kiroku_id}"


def sign(secret: bytes, body: bytes) -> str:
    """The vendor's older ``X-Signature`` value: HMAC over the body alone (accepted only where configured)."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signed_payload(delivery_id: str, timestamp: str, body: bytes) -> bytes:
    """What the current scheme signs: ``{delivery id}.{timestamp}.{raw body}``."""
    return delivery_id.encode("utf-8") + b"." + timestamp.encode("utf-8") + b"." + body


def sign_delivery(secret: bytes, delivery_id: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Signature`` value of the current scheme (sent with ``X-Timestamp: {timestamp}``)."""
    return sign(secret, signed_payload(delivery_id, str(timestamp), body))


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """Constant-time check of ``X-Signature`` against the raw bytes it signs."""
    if not header:
        return False
    expected = sign(secret, body).encode("ascii")
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "replace"))


_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


def check_signature(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    replay_window_s: float | None = DEFAULT_REPLAY_WINDOW_S,
    legacy_signature: bool = False,
) -> Literal["ok", "bad signature", "stale timestamp"]:
    """Judge a delivery's signature (headers with lower-case names).

    The current scheme needs a valid ``x-delivery-id`` and ``x-timestamp``; its timestamp must lie
    within ``replay_window_s`` of ``now`` (``None``: no window, for replays of recorded files).
    The body-only scheme counts only with ``legacy_signature``.
    """
    header = headers.get("x-signature")
    delivery_id = (headers.get("x-delivery-id") or "").strip()
    stamp = (headers.get("x-timestamp") or "").strip()
    if (
        _SAFE_ID.match(delivery_id)
        and _TIMESTAMP.match(stamp)
        and verify_signature(secret, signed_payload(delivery_id, stamp, body), header)
    ):
        if replay_window_s is not None and abs(now - int(stamp)) > replay_window_s:
            return "stale timestamp"
        return "ok"
    if legacy_signature and verify_signature(secret, body, header):
        return "ok"
    return "bad signature"


# -- size limits (the HTTP side reads with these) ----------------------------------------------


class BodyTooLarge(ValueError):
    """A request body over the limit; raised before more of it is read."""


def body_too_large(content_length: str | None, limit: int = DEFAULT_MAX_BODY_BYTES) -> bool:
    """Whether a declared ``Content-Length`` already exceeds the limit (an unparsable one counts as too large)."""
    if content_length is None:
        return False
    text = content_length.strip()
    return not text.isdigit() or not text.isascii() or int(text) > limit


async def read_limited(chunks: AsyncIterable[bytes], limit: int = DEFAULT_MAX_BODY_BYTES) -> bytes:
    """Gather a streamed body (``request.stream()``); raises BodyTooLarge as soon as it passes ``limit``."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body larger than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def body_digest(body: bytes) -> str:
    """What the ledger remembers of a delivery's content (to tell a retry from a reused id)."""
    return hashlib.sha256(body).hexdigest()


# -- the ledger: what has been seen ----------------------------------------------------------


class DeliveryLedger(Protocol):
    """Memory of deliveries (for duplicates), their content digests (for reused ids) and of the
    newest ``koushin`` per record (for order)."""

    def seen(self, delivery_id: str) -> bool: ...

    def digest(self, delivery_id: str) -> str | None: ...

    def mark(self, delivery_id: str, digest: str | None = None) -> None: ...

    def last_koushin(self, kiroku_id: str) -> datetime | None: ...

    def set_koushin(self, kiroku_id: str, t: datetime) -> None: ...


class InMemoryLedger:
    """A ledger for tests and batch replays."""

    def __init__(self) -> None:
        self._deliveries: dict[str, str | None] = {}
        self._koushin: dict[str, datetime] = {}

    def seen(self, delivery_id: str) -> bool:
        return delivery_id in self._deliveries

    def digest(self, delivery_id: str) -> str | None:
        return self._deliveries.get(delivery_id)

    def mark(self, delivery_id: str, digest: str | None = None) -> None:
        if self._deliveries.get(delivery_id) is None:
            self._deliveries[delivery_id] = digest

    def last_koushin(self, kiroku_id: str) -> datetime | None:
        return self._koushin.get(kiroku_id)

    def set_koushin(self, kiroku_id: str, t: datetime) -> None:
        """Only ever moves forward."""
        current = self._koushin.get(kiroku_id)
        if current is None or t > current:
            self._koushin[kiroku_id] = t


ledger_metadata = MetaData()

kodomo_deliveries = Table(
    "kodomo_deliveries",
    ledger_metadata,
    Column("delivery_id", String(100), primary_key=True),
    Column("seen_at", DateTime(timezone=True), nullable=False),
)

#: content digest per delivery id, in a table of its own so that existing ledgers gain it by create_all
kodomo_delivery_digests = Table(
    "kodomo_delivery_digests",
    ledger_metadata,
    Column("delivery_id", String(100), primary_key=True),
    Column("digest", String(64), nullable=False),
)

kodomo_records = Table(
    "kodomo_records",
    ledger_metadata,
    Column("kiroku_id", String(100), primary_key=True),
    Column("koushin", DateTime(timezone=True), nullable=False),
)


def _as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes: they were stored as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SqlLedger:
    """A ledger in any SQLAlchemy database (its own tables ``kodomo_deliveries``, ``kodomo_records``)."""

    def __init__(self, engine: Engine | str, *, create: bool = True) -> None:
        self.engine = create_engine(engine) if isinstance(engine, str) else engine
        if create:
            ledger_metadata.create_all(self.engine)

    def seen(self, delivery_id: str) -> bool:
        with self.engine.connect() as conn:
            stmt = select(kodomo_deliveries.c.delivery_id).where(kodomo_deliveries.c.delivery_id == delivery_id)
            return conn.execute(stmt).first() is not None

    def digest(self, delivery_id: str) -> str | None:
        with self.engine.connect() as conn:
            stmt = select(kodomo_delivery_digests.c.digest).where(
                kodomo_delivery_digests.c.delivery_id == delivery_id
            )
            value = conn.execute(stmt).scalar_one_or_none()
        return None if value is None else str(value)

    def mark(self, delivery_id: str, digest: str | None = None) -> None:
        with self.engine.begin() as conn:
            stmt = select(kodomo_deliveries.c.delivery_id).where(kodomo_deliveries.c.delivery_id == delivery_id)
            if conn.execute(stmt).first() is None:
                conn.execute(kodomo_deliveries.insert().values(delivery_id=delivery_id, seen_at=datetime.now(UTC)))
            if digest is not None:
                known = select(kodomo_delivery_digests.c.digest).where(
                    kodomo_delivery_digests.c.delivery_id == delivery_id
                )
                if conn.execute(known).first() is None:
                    conn.execute(kodomo_delivery_digests.insert().values(delivery_id=delivery_id, digest=digest))

    def last_koushin(self, kiroku_id: str) -> datetime | None:
        with self.engine.connect() as conn:
            stmt = select(kodomo_records.c.koushin).where(kodomo_records.c.kiroku_id == kiroku_id)
            value = conn.execute(stmt).scalar_one_or_none()
        return None if value is None else _as_utc(value)

    def set_koushin(self, kiroku_id: str, t: datetime) -> None:
        """Only ever moves forward."""
        t = _as_utc(t)
        with self.engine.begin() as conn:
            stmt = select(kodomo_records.c.koushin).where(kodomo_records.c.kiroku_id == kiroku_id)
            current = conn.execute(stmt).scalar_one_or_none()
            if current is None:
                conn.execute(kodomo_records.insert().values(kiroku_id=kiroku_id, koushin=t))
            elif t > _as_utc(current):
                conn.execute(
                    kodomo_records.update().where(kodomo_records.c.kiroku_id == kiroku_id).values(koushin=t)
                )

    def dispose(self) -> None:
        self.engine.dispose()


# -- the body as the vendor sends it ---------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _PersonIn(_Body):
    taishosha_no: str
    atena_no: str | None = None
    shimei: str
    kana: str | None = None
    seinengappi: str | None = None

    @field_validator("taishosha_no")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _SAFE_ID.match(v):
            raise ValueError("not an id")
        return v


class _ChildIn(_PersonIn):
    seibetsu: str | None = None


class _GuardianIn(_PersonIn):
    zokugara: str


class _RecordIn(_Body):
    kiroku_id: str
    setai_no: str | None = None
    koushin: AwareDatetime
    uketsuke_bi: str
    joukyou: str
    soudan_naiyou: list[str] = []
    kodomo: list[_ChildIn]
    hogosha: list[_GuardianIn] = []
    shuuketsu_bi: str | None = None

    @field_validator("kiroku_id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _SAFE_ID.match(v):
            raise ValueError("not an id")
        return v

    @field_validator("kodomo")
    @classmethod
    def _some_child(cls, v: list[_ChildIn]) -> list[_ChildIn]:
        if not v:
            raise ValueError("no child")
        return v


class _DeliveryIn(_Body):
    event: Literal["record.created", "record.updated", "record.closed"]
    record: _RecordIn


class BadRecord(ValueError):
    """A signed body whose content cannot be mapped; the message names fields, never values."""


def _date(value: str | None, where: str, *, required: bool = False) -> date | None:
    if value is None or not value.strip():
        if required:
            raise BadRecord(f"missing {where}")
        return None
    try:
        return parse_date(value)
    except (InvalidDate, ValueError):
        raise BadRecord(f"impossible date in {where}") from None


def _person(p: _PersonIn, where: str) -> PersonRecord:
    name = p.shimei.strip()
    if not name:
        raise BadRecord(f"empty name in {where}")
    sex = Sex.UNKNOWN
    if isinstance(p, _ChildIn) and p.seibetsu is not None and p.seibetsu.strip():
        try:
            sex = lookup(SEX_LABELS, p.seibetsu, f"{where}.seibetsu")
        except UnknownCode as exc:
            raise BadRecord(str(exc)) from None
    relation = None
    if isinstance(p, _GuardianIn):
        try:
            relation = lookup(RELATION_LABELS, p.zokugara, f"{where}.zokugara")
        except UnknownCode as exc:
            raise BadRecord(str(exc)) from None
    family, given = _split(name)
    try:
        return PersonRecord(
            record=record_key(p.taishosha_no),
            name=name,
            family_name=family,
            given_name=given,
            kana=(p.kana or "").strip() or None,
            birth_date=_date(p.seinengappi, f"{where}.seinengappi"),
            sex=sex,
            resident_no=(p.atena_no or "").strip() or None,
            relation=relation,
        )
    except ValidationError as exc:
        raise BadRecord(_problems(exc, prefix=where)) from None


def _split(name: str) -> tuple[str | None, str | None]:
    """(family, given) when the source separated them; (None, None) for an unseparated name."""
    family, given = split_name(name)
    return (family, given) if given else (None, None)


def _problems(exc: ValidationError, prefix: str = "") -> str:
    """pydantic errors as 'loc: type' only (input values are personal data)."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{prefix + '.' if prefix and loc else prefix}{loc}: {err['type']}")
    return "; ".join(parts)


def case_events(delivery: _DeliveryIn) -> list[tuple[str, CloudEvent]]:
    """One case event per child in the record: (child record key, event)."""
    rec = delivery.record
    try:
        status = lookup(KODOMO_STATUS, rec.joukyou, "joukyou")
        topics = []
        for label in rec.soudan_naiyou:
            topic = lookup(KODOMO_TOPICS, label, "soudan_naiyou")
            if topic not in topics:
                topics.append(topic)
    except UnknownCode as exc:
        raise BadRecord(str(exc)) from None
    opened_on = _date(rec.uketsuke_bi, "uketsuke_bi", required=True)
    assert opened_on is not None
    closed_on = _date(rec.shuuketsu_bi, "shuuketsu_bi")
    household = (rec.setai_no or "").strip() or None
    children = [_person(c, f"kodomo.{i}") for i, c in enumerate(rec.kodomo)]
    guardians = [_person(g, f"hogosha.{i}") for i, g in enumerate(rec.hogosha)]
    moment = rec.koushin.astimezone(JST)
    revision = moment.isoformat()
    change = EVENT_CHANGE[delivery.event]
    out: list[tuple[str, CloudEvent]] = []
    for child in children:
        related = [RelatedPerson(person=o, role="child") for o in children if o.record != child.record]
        related += [RelatedPerson(person=g, role="guardian") for g in guardians]
        try:
            payload = CaseV1(
                feed=FEED,
                case=case_key(rec.kiroku_id),
                opened_on=opened_on,
                closed_on=closed_on,
                status=status,
                topics=topics,
                subject=child,
                related_persons=related,
                source_household_no=household,
                revision=revision,
            )
        except ValidationError as exc:
            raise BadRecord(_problems(exc)) from None
        data = payload.model_dump(mode="json")
        event = CloudEvent(
            id=stable_event_id(FEED.value, child.record, revision, content_hash(data)),
            source=SOURCE,
            type=CASE_TYPES[change],
            time=moment,
            sourcerecord=child.record,
            field=FIELD,
            data=data,
        )
        out.append((child.record, event))
    return out


# -- the request-handling core --------------------------------------------------------------


@dataclass(frozen=True)
class HandleResult:
    """What a delivery came to: the HTTP status to answer and the items to publish first."""

    status: int
    outcome: Outcome
    delivery_id: str | None
    items: list[Item] = field(default_factory=list)
    kiroku_id: str | None = None
    koushin: datetime | None = None
    digest: str | None = None

    @property
    def authenticated(self) -> bool:
        """False for deliveries refused before their signature held (too large, bad signature, stale)."""
        return self.outcome not in UNAUTHENTICATED

    @property
    def events(self) -> list[CloudEvent]:
        return [i.event for i in self.items if i.event is not None]

    @property
    def dead_letters(self) -> list[DeadLetter]:
        return [i.dead_letter for i in self.items if i.dead_letter is not None]


class KodomoWebhook:
    """Verifies, parses and judges one delivery; the ledger remembers what was acknowledged.

    ``emit_stale``: a delivery whose ``record.koushin`` is older than one already accepted for
    the same ``kiroku_id`` is reported as ``stale``. It is still a real earlier change (in
    the samples, ``record.created`` often arrives after ``record.updated``), so by default
    its events are published with their own older ``time`` / ``revision`` and the hub's
    store, which never lets an older revision overwrite a newer one, keeps the newest
    state. With ``emit_stale=False`` a stale delivery yields no event (status 200).
    """

    def __init__(
        self,
        secret: bytes,
        ledger: DeliveryLedger | None = None,
        *,
        emit_stale: bool = True,
        legacy_signature: bool = False,
        replay_window_s: float | None = DEFAULT_REPLAY_WINDOW_S,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        dead_letter_unauthenticated: bool = True,
        clock: Callable[[], float] = time.time,
        previous_secret: bytes = b"",
    ) -> None:
        self._secret = secret
        #: during a rotation of the shared secret, deliveries still signed with the old one count too
        self._previous_secret = previous_secret
        self.ledger: DeliveryLedger = ledger if ledger is not None else InMemoryLedger()
        self.emit_stale = emit_stale
        self.legacy_signature = legacy_signature
        self.replay_window_s = replay_window_s
        self.max_body_bytes = max_body_bytes
        self.dead_letter_unauthenticated = dead_letter_unauthenticated
        self.clock = clock

    def handle(
        self, headers: Mapping[str, str], body: bytes, *, checkpoint: Checkpoint | None = None
    ) -> HandleResult:
        h = {k.lower(): v for k, v in headers.items()}
        raw_id = (h.get("x-delivery-id") or "").strip()
        delivery_id = raw_id if _SAFE_ID.match(raw_id) else None
        where = f"delivery:{delivery_id or 'invalid-id'}"
        cp = checkpoint or Checkpoint(SCOPE, delivery_id or "invalid-id")

        if len(body) > self.max_body_bytes:
            reason = f"delivery larger than {self.max_body_bytes} bytes"
            return self._rejected(body, 413, "too large", delivery_id, cp, where, None, reason)
        verdict = check_signature(self._secret, h, body, now=self.clock(), replay_window_s=self.replay_window_s,
                                  legacy_signature=self.legacy_signature)
        if verdict == "bad signature" and self._previous_secret:
            verdict = check_signature(self._previous_secret, h, body, now=self.clock(),
                                      replay_window_s=self.replay_window_s, legacy_signature=self.legacy_signature)
        if verdict != "ok":
            # never parsed and never marked: a forged id must not shadow a real delivery
            return self._rejected(body, 401, verdict, delivery_id, cp, where, None, verdict)
        if delivery_id is None:
            return self._rejected(body, 400, "malformed", None, cp, where, None, "missing or invalid X-Delivery-Id")
        digest = body_digest(body)
        if self.ledger.seen(delivery_id):
            known = self.ledger.digest(delivery_id)
            if known is not None and not hmac.compare_digest(known, digest):
                reason = "delivery id reused with different content"
                return self._rejected(body, 409, "conflict", delivery_id, cp, where, None, reason)
            return HandleResult(200, "duplicate", delivery_id)

        try:
            delivery = _DeliveryIn.model_validate_json(body)
        except ValidationError as exc:
            kind = _json_failure(exc)
            reason = kind or f"schema: {_problems(exc)}"
            record = _first_child_key(body) if kind is None else None
            return self._rejected(body, 400, "malformed" if kind else "invalid", delivery_id, cp, where, record, reason,
                                  digest=digest)

        rec = delivery.record
        first_child = record_key(rec.kodomo[0].taishosha_no)
        try:
            _check_text(delivery)
            events = case_events(delivery)
        except BadRecord as exc:
            return self._rejected(body, 400, "invalid", delivery_id, cp, where, first_child, str(exc), rec,
                                  digest=digest)

        last = self.ledger.last_koushin(rec.kiroku_id)
        stale = last is not None and rec.koushin < last
        if stale and not self.emit_stale:
            return HandleResult(200, "stale", delivery_id, [], rec.kiroku_id, rec.koushin, digest)
        items = [Item(checkpoint=cp, event=event, key=key) for key, event in events]
        return HandleResult(202, "stale" if stale else "accepted", delivery_id, items, rec.kiroku_id, rec.koushin,
                            digest)

    def acknowledge(self, result: HandleResult) -> None:
        """Remember a delivery once its items are published (a retry is then a duplicate)."""
        if result.delivery_id is None or not result.authenticated or result.outcome in ("duplicate", "conflict"):
            return
        if result.kiroku_id is not None and result.koushin is not None and result.outcome == "accepted":
            self.ledger.set_koushin(result.kiroku_id, result.koushin)
        self.ledger.mark(result.delivery_id, result.digest)

    def _rejected(
        self,
        body: bytes,
        status: int,
        outcome: Outcome,
        delivery_id: str | None,
        cp: Checkpoint,
        where: str,
        record: str | None,
        reason: str,
        rec: _RecordIn | None = None,
        *,
        digest: str | None = None,
    ) -> HandleResult:
        kiroku_id = rec.kiroku_id if rec else None
        if outcome in UNAUTHENTICATED and not self.dead_letter_unauthenticated:
            return HandleResult(status, outcome, delivery_id, [], kiroku_id)
        try:
            at = rec.koushin.astimezone(JST) if rec is not None else None
        except OverflowError:
            at = None
        code = {"bad signature": "signature", "stale timestamp": "signature", "too large": "size"}.get(outcome)
        letter = DeadLetter(source=FEED.value, where=where, record=record, reason=reason, at=at, stage="webhook",
                            code=code)
        item = Item(checkpoint=cp, dead_letter=letter, key=record, original=body)
        return HandleResult(status, outcome, delivery_id, [item], kiroku_id, digest=digest)


def _json_failure(exc: ValidationError) -> str | None:
    """'malformed JSON' (or 'JSON nested too deeply') when the body is no JSON to validate, else None."""
    errors = exc.errors()
    if not any(e["type"] == "json_invalid" for e in errors):
        return None
    if any("recursion" in str(e.get("msg", "")) for e in errors):
        return f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    return "malformed JSON"


def _check_text(delivery: _DeliveryIn) -> None:
    """BadRecord for a control character (NUL, ESC, …) in any text the delivery carries on."""
    problem = json_problem(delivery.model_dump(mode="json"))
    if problem is not None:
        raise BadRecord(problem)


def _first_child_key(body: bytes) -> str | None:
    """Record key of the first child of a signed body that failed validation, when it has one."""
    try:
        doc = json.loads(body)
        value = doc["record"]["kodomo"][0]["taishosha_no"]
    except (ValueError, KeyError, IndexError, TypeError, RecursionError):
        return None
    return record_key(value) if isinstance(value, str) and _SAFE_ID.match(value) else None


# -- FastAPI ----------------------------------------------------------------------------------


def make_router(
    webhook: KodomoWebhook,
    publish: Callable[[list[Item]], Awaitable[None]],
    *,
    limiter: TokenBucket | None = None,
    on_refused: Callable[[str], None] | None = None,
) -> APIRouter:
    """``POST /webhooks/kodomo``: answers 2xx only after ``publish`` returned (else 503, sender retries).

    The body is read with ``webhook.max_body_bytes`` as a limit (413 as soon as it is passed, from
    ``Content-Length`` or while streaming). With a ``limiter``, every unauthenticated failure spends a
    token of the client's address, and a client without tokens gets 429 before anything is read.
    ``on_refused(outcome)`` is called for each refused unauthenticated request (``too large``,
    ``bad signature``, ``stale timestamp``, ``rate limited``): the hub counts them in a metric.
    """
    router = APIRouter()

    def refused(outcome: str, status: int, client: str, headers: dict[str, str] | None = None) -> JSONResponse:
        if on_refused is not None:
            on_refused(outcome)
        if limiter is not None and outcome != "rate limited":
            limiter.allow(client)
        return JSONResponse({"status": outcome}, status_code=status, headers=headers)

    @router.post(WEBHOOK_PATH)
    async def receive_kodomo(request: Request) -> JSONResponse:
        client = request.client.host if request.client is not None else "unknown"
        if limiter is not None:
            wait = limiter.retry_after(client)
            if wait > 0:
                return refused("rate limited", 429, client, {"Retry-After": str(max(1, round(wait)))})
        if body_too_large(request.headers.get("content-length"), webhook.max_body_bytes):
            return refused("too large", 413, client)
        try:
            body = await read_limited(request.stream(), webhook.max_body_bytes)
        except BodyTooLarge:
            return refused("too large", 413, client)
        headers = dict(request.headers)
        result = await run_in_threadpool(webhook.handle, headers, body)
        if not result.authenticated and not result.items:
            return refused(result.outcome, result.status, client)
        if not result.authenticated:
            if on_refused is not None:
                on_refused(result.outcome)
            if limiter is not None:
                limiter.allow(client)
        if result.items:
            try:
                await publish(result.items)
            except Exception:
                return JSONResponse({"status": "unavailable"}, status_code=503)
        await run_in_threadpool(webhook.acknowledge, result)
        return JSONResponse({"status": result.outcome}, status_code=result.status)

    return router


# -- batch replay of sample delivery files ------------------------------------------------------


class KodomoReplayConnector(Connector):
    """Replays ``{folder}/*.json`` deliveries through ``KodomoWebhook.handle`` in file-name order.

    Files are ``{"headers": {...}, "body": "<raw body>"}``; the body's UTF-8 bytes are what was
    signed. The ledger is rebuilt from the first file on every read, so duplicates and
    staleness are judged the same however far the checkpoint (a zero-padded index into the
    sorted file list) got; only files after it are yielded.

    Recorded deliveries are old by nature: no replay window applies, and the vendor's body-only
    signature is accepted unless ``legacy_signature=False``. A later file reusing a delivery id
    with other content is a dead letter ("delivery id reused with different content").
    """

    name = FEED.value

    def __init__(
        self,
        folder: Path | str | bytes,
        secret: bytes | str,
        *,
        emit_stale: bool = True,
        legacy_signature: bool = True,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.folder = Path(os.fsdecode(folder))
        self.secret = secret.encode("utf-8") if isinstance(secret, str) else secret
        self.emit_stale = emit_stale
        self.legacy_signature = legacy_signature
        self.max_body_bytes = max_body_bytes
        self.results: list[tuple[str, HandleResult]] = []

    def read(self, checkpoints: Mapping[str, str]) -> Iterator[Item]:
        done = checkpoints.get(SCOPE)
        after = int(done) if done is not None and done.isdigit() else -1
        webhook = KodomoWebhook(self.secret, InMemoryLedger(), emit_stale=self.emit_stale,
                                legacy_signature=self.legacy_signature, replay_window_s=None,
                                max_body_bytes=self.max_body_bytes)
        self.results = []
        for index, path in enumerate(sorted(self.folder.glob("*.json"))):
            cp = Checkpoint(SCOPE, f"{index:06d}")
            result = self._replay(webhook, path, cp)
            webhook.acknowledge(result)
            self.results.append((display_name(path.name), result))
            if index > after:
                yield from result.items

    def _replay(self, webhook: KodomoWebhook, path: Path, cp: Checkpoint) -> HandleResult:
        def unreadable(why: str) -> HandleResult:
            letter = DeadLetter(
                source=FEED.value, where=f"file:{display_name(path.name)}", reason=f"unreadable delivery file ({why})"
            )
            return HandleResult(400, "malformed", None, [Item(checkpoint=cp, dead_letter=letter)])

        try:
            size = path.stat().st_size
            if size > 2 * self.max_body_bytes + 65536:  # the body, JSON-escaped, and its headers
                return unreadable("too large")
            text = path.read_bytes().decode("utf-8")
            doc = json.loads(text)
            headers = doc["headers"]
            body = doc["body"]
            if not isinstance(headers, dict) or not isinstance(body, str):
                raise TypeError("headers / body")
            raw = body.encode("utf-8")
            header_map = {str(k): str(v) for k, v in headers.items()}
        except UnicodeError:  # not UTF-8, or a lone surrogate escaped in the body or a header
            return unreadable("not valid Unicode")
        except RecursionError:
            return unreadable(f"nested deeper than {MAX_JSON_DEPTH} levels")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return unreadable(type(exc).__name__)
        if any(text_problem(k) or text_problem(v) for k, v in header_map.items()):
            return unreadable("control character or lone surrogate in a header")
        return webhook.handle(header_map, raw, checkpoint=cp)
