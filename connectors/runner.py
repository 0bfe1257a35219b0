"""Runs a connector: read → local outbox → Kafka, checkpoints moved only by what is safe.

Delivery contract (at-least-once, nothing lost, nothing re-published with a new id):

1. Items a connector yields are written to a local *outbox* (SQLAlchemy) in the same
   transaction that records how far reading got (``read_position``). The outbox is the
   connector's durable buffer: while the broker is unreachable, reading goes on into it.
2. The relay sends outbox rows to Kafka in order (kafka-python, idempotent producer, keyed
   by the person's record key), waits for the broker's acknowledgement, and only then
   deletes them and advances the published checkpoint (``position``).
3. On restart, rows still in the outbox are relayed first with the ids they already had.

What the broker can never take never wedges the outbox:

* an item whose message (value and key) is larger than ``max_message_bytes`` (default 900,000,
  below Apache Kafka's default ``message.max.bytes`` of 1 MiB) is dead-lettered *before* it
  reaches the outbox, and so is an item that cannot be serialized;
* an outbox row the client or broker refuses for good (``MessageSizeTooLargeError`` and the other
  non-retriable record errors of :data:`REFUSED`) is moved aside: replaced, in its place in the
  outbox, by a dead letter naming the error type, which is relayed like any other row. A refused
  dead letter is deleted and logged. Retriable errors (timeouts, an unreachable broker) leave
  the rows as they are, to be retried.

Connectors import only ``schemas`` (and this package): the runner knows nothing of the hub.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from kafka import KafkaProducer
from kafka.errors import (
    CorruptRecordError,
    InvalidRecordError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    UnsupportedForMessageFormatError,
)
from sqlalchemy import (
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    create_engine,
    delete,
    event,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from connectors.contract import Connector, Item, position_key
from connectors.safety import display_name
from schemas.deadletter import DEADLETTER_TYPE, STAGES, DeadLetter, DeadLetterV1
from schemas.envelope import CloudEvent, stable_event_id

log = structlog.get_logger("tsunagu.connector")

#: Apache Kafka's default ``message.max.bytes`` is 1,048,588; stay clearly below it
DEFAULT_MAX_MESSAGE_BYTES = 900_000
#: errors that say "this record will never be accepted", as opposed to "try again later"
REFUSED: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    CorruptRecordError,
    InvalidRecordError,
    UnsupportedForMessageFormatError,
)


#: CloudEvents Kafka protocol binding, structured mode: the one header every tsunagu message carries
CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"
CE_HEADERS: list[tuple[str, bytes]] = [("content-type", CONTENT_TYPE.encode("ascii"))]


class _Base(DeclarativeBase):
    metadata = MetaData()


class OutboxRow(_Base):
    __tablename__ = "connector_outbox"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    connector: Mapped[str] = mapped_column(String(64), index=True)
    topic: Mapped[str] = mapped_column(String(200))
    key: Mapped[str | None] = mapped_column(String(200))
    value: Mapped[bytes] = mapped_column(LargeBinary)
    kind: Mapped[str] = mapped_column(String(16))  # event | dead_letter
    scope: Mapped[str] = mapped_column(String(200))
    position: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CheckpointRow(_Base):
    __tablename__ = "connector_checkpoints"

    connector: Mapped[str] = mapped_column(String(64), primary_key=True)
    scope: Mapped[str] = mapped_column(String(200), primary_key=True)
    read_position: Mapped[str] = mapped_column(String(200))
    position: Mapped[str | None] = mapped_column(String(200))  # acknowledged by the broker
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CounterRow(_Base):
    """A connector's counters over every pass on this state (read, published, …), moved in the same
    transaction as the outbox and checkpoints, so a resumed run's summary counts the whole run."""

    __tablename__ = "connector_counters"

    connector: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


def _bump(s: Session, connector: str, counts: Mapping[str, int]) -> None:
    for name, n in counts.items():
        if not n:
            continue
        row = s.get(CounterRow, (connector, name))
        if row is None:
            s.add(CounterRow(connector=connector, name=name, value=n))
        else:
            row.value += n


class ConnectorState:
    """A connector's local state: outbox and checkpoints (SQLite file by default)."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
        if url.startswith("sqlite"):

            @event.listens_for(self.engine, "connect")
            def _wal(dbapi_conn: Any, _rec: Any) -> None:
                dbapi_conn.execute("PRAGMA journal_mode=WAL")

        _Base.metadata.create_all(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def in_dir(cls, state_dir: Path) -> ConnectorState:
        state_dir.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{state_dir / 'connectors.sqlite'}")

    def read_positions(self, connector: str) -> dict[str, str]:
        with self.sessions() as s:
            rows = s.scalars(select(CheckpointRow).where(CheckpointRow.connector == connector))
            return {r.scope: r.read_position for r in rows}

    def published_positions(self, connector: str) -> dict[str, str]:
        with self.sessions() as s:
            rows = s.scalars(select(CheckpointRow).where(CheckpointRow.connector == connector))
            return {r.scope: r.position for r in rows if r.position is not None}

    def pending(self, connector: str | None = None) -> int:
        with self.sessions() as s:
            q = select(OutboxRow.seq)
            if connector:
                q = q.where(OutboxRow.connector == connector)
            return len(s.scalars(q).all())

    def totals(self) -> dict[str, dict[str, int]]:
        """Each connector's counters over every pass made on this state (``read``, ``published``, …)."""
        out: dict[str, dict[str, int]] = {}
        with self.sessions() as s:
            for row in s.scalars(select(CounterRow)):
                out.setdefault(row.connector, {})[row.name] = row.value
        return out

    def dispose(self) -> None:
        self.engine.dispose()


def _advance(s: Session, connector: str, scope: str, *, read: str | None = None, acked: str | None = None) -> None:
    row = s.get(CheckpointRow, (connector, scope))
    now = datetime.now(UTC)
    if row is None:
        row = CheckpointRow(connector=connector, scope=scope, read_position=read or acked or "0", position=None)
        s.add(row)
    if read is not None and position_key(read) >= position_key(row.read_position):
        row.read_position = read
    if acked is not None and (row.position is None or position_key(acked) >= position_key(row.position)):
        row.position = acked
    row.updated_at = now


@dataclass
class RunStats:
    read: int = 0
    events: int = 0
    dead_letters: int = 0
    published: int = 0
    published_dead_letters: int = 0
    #: outbox rows the broker refused for good, each replaced by a dead letter (or dropped, see ``lost``)
    refused: int = 0
    #: refused dead letters: deleted from the outbox and logged, nothing left to replace them with
    lost: int = 0
    event_ids: set[tuple[str, str]] = field(default_factory=set)

    def as_dict(self) -> dict[str, int]:
        return {
            "read": self.read,
            "events": self.events,
            "dead_letters": self.dead_letters,
            "published": self.published,
            "published_dead_letters": self.published_dead_letters,
            "refused": self.refused,
            "lost": self.lost,
        }


def make_producer(bootstrap: str, client_id: str = "tsunagu-connector", **overrides: Any) -> KafkaProducer:
    """kafka-python producer: acks=all, idempotent (keeps per-key order across retries), batched.

    ``overrides`` are further KafkaProducer settings (e.g. ``max_request_size``).
    """
    config: dict[str, Any] = dict(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        batch_size=256 * 1024,
        retries=5,
        request_timeout_ms=10000,
        max_block_ms=10000,
        # give up on a send before the relay's 30 s flush does, so a failed relay leaves nothing
        # queued in the producer to go out again beside the re-relay (duplicates after long cuts)
        delivery_timeout_ms=25000,
        reconnect_backoff_max_ms=2000,
        # murmur2 default partitioner: same key → same partition, as Apache Kafka's clients do
    )
    config.update(overrides)
    return KafkaProducer(**config)


class ConnectorRunner:
    """Moves one connector's items through the outbox to Kafka."""

    def __init__(
        self,
        connector: Connector,
        state: ConnectorState,
        producer: KafkaProducer | None,
        *,
        intake_topic: str,
        deadletter_topic: str,
        chunk: int = 500,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        seal: Callable[[bytes], str] | None = None,
    ) -> None:
        self.connector = connector
        self.state = state
        self.producer = producer
        self.intake_topic = intake_topic
        self.deadletter_topic = deadletter_topic
        self.chunk = chunk
        self.max_message_bytes = max_message_bytes
        #: encrypts a dead letter's original bytes; None → the original is not kept on the topic
        self.seal = seal
        self.stats = RunStats()
        #: called with each dead letter the broker acknowledged (stage, feed, reason code)
        self.on_dead_letter: Callable[[str, str, str], None] | None = None

    # -- reading into the outbox -------------------------------------------------------
    def read_into_outbox(self) -> int:
        """Read everything new from the source into the outbox; returns how many items were read."""
        name = self.connector.name
        items = self.connector.read(self.state.read_positions(name))
        n = 0
        for batch in _chunks(items, self.chunk):
            before = self.stats.as_dict()
            with self.state.sessions.begin() as s:
                for item in batch:
                    row = self._outbox_row(item)
                    s.add(row)
                    _advance(s, name, item.checkpoint.scope, read=item.checkpoint.position)
                    self._count_read(item, row)
                after = self.stats.as_dict()
                _bump(s, name, {k: after[k] - before[k] for k in ("read", "events", "dead_letters")})
            n += len(batch)
        return n

    def _outbox_row(self, item: Item) -> OutboxRow:
        """The outbox row of an item; an event the broker could never take becomes a dead letter here."""
        key: str | None
        if item.event is not None:
            key = item.key or item.event.sourcerecord
            reason: str | None = None
            try:
                value = item.event.to_json_bytes()
            except (ValueError, TypeError) as exc:  # PydanticSerializationError is a ValueError
                reason = f"event cannot be serialized ({type(exc).__name__})"
            else:
                size = len(value) + len((key or "").encode("utf-8", "replace"))
                if size > self.max_message_bytes:
                    reason = f"event larger than the message limit ({size} > {self.max_message_bytes} bytes)"
            if reason is None:
                topic, kind = self.intake_topic, "event"
            else:
                where = f"{item.checkpoint.scope}:{item.checkpoint.position}"
                letter = DeadLetter(source=self.connector.name, where=where, record=key, reason=reason,
                                    event=item.event.id, code="size" if "larger" in reason else "schema")
                original = value if reason.startswith("event larger") else None
                topic, kind = self.deadletter_topic, "dead_letter"
                value = self.dead_letter_bytes(letter, item.checkpoint.scope, item.checkpoint.position, original)
        else:
            assert item.dead_letter is not None
            topic, kind = self.deadletter_topic, "dead_letter"
            value = self.dead_letter_bytes(item.dead_letter, item.checkpoint.scope, item.checkpoint.position,
                                            item.original)
            key = item.key or item.dead_letter.record
        return OutboxRow(
            connector=self.connector.name,
            topic=topic,
            key=key,
            value=value,
            kind=kind,
            scope=item.checkpoint.scope,
            position=item.checkpoint.position,
            created_at=datetime.now(UTC),
        )

    def _count_read(self, item: Item, row: OutboxRow) -> None:
        self.stats.read += 1
        if item.event is not None and row.kind == "event":
            self.stats.events += 1
            self.stats.event_ids.add(item.event.dedupe_key)
        else:
            self.stats.dead_letters += 1

    # -- relaying the outbox -----------------------------------------------------------
    def relay(self, limit: int = 2000) -> int:
        """Send outbox rows in order; delete them and move checkpoints only once acknowledged.

        Returns the number of rows acknowledged. Raises KafkaError when the broker is
        unreachable; what was not acknowledged stays in the outbox.
        """
        if self.producer is None:
            raise KafkaError("no producer")
        name = self.connector.name
        total = 0
        while True:
            with self.state.sessions() as s:
                rows = s.scalars(
                    select(OutboxRow).where(OutboxRow.connector == name).order_by(OutboxRow.seq).limit(limit)
                ).all()
            if not rows:
                return total
            futures: list[Any] = []
            error: Exception | None = None
            for r in rows:
                try:
                    futures.append(self.producer.send(r.topic, key=r.key.encode() if r.key else None, value=r.value,
                                                      headers=CE_HEADERS))
                except REFUSED as exc:  # refused by the client before sending (record too large)
                    futures.append(exc)
                except Exception as exc:  # KafkaTimeoutError waiting for metadata, …
                    error = exc
                    break
            self.producer.flush(timeout=30)
            acked: list[OutboxRow] = []
            refused: list[tuple[OutboxRow, Exception]] = []
            for row, fut in zip(rows, futures, strict=False):
                if isinstance(fut, Exception):
                    refused.append((row, fut))
                    continue
                try:
                    fut.get(timeout=30)
                except REFUSED as exc:  # refused for good: moved aside below, later rows still count
                    refused.append((row, exc))
                    continue
                except Exception as exc:  # KafkaError, timeouts
                    error = exc
                    break  # keep order: nothing after the first failure counts as sent
                acked.append(row)
            if acked or refused:
                events_acked = sum(1 for r in acked if r.kind == "event")
                with self.state.sessions.begin() as s:
                    s.execute(delete(OutboxRow).where(OutboxRow.seq.in_([r.seq for r in acked])))
                    for r in acked:
                        _advance(s, name, r.scope, acked=r.position)
                    before = self.stats.as_dict()
                    for r, why in refused:
                        self._move_aside(s, r, why)
                    after = self.stats.as_dict()
                    _bump(s, name, {"published": events_acked,
                                    "published_dead_letters": len(acked) - events_acked,
                                    "refused": after["refused"] - before["refused"],
                                    "lost": after["lost"] - before["lost"]})
                self.stats.published += events_acked
                self.stats.published_dead_letters += len(acked) - events_acked
                if self.on_dead_letter is not None:
                    for r in acked:
                        if r.kind != "event":
                            self.on_dead_letter(*dead_letter_labels(r.value, name))
                total += len(acked)
            if error is not None:
                log.warning("broker did not acknowledge; rows stay in the outbox",
                            connector=name, error_type=type(error).__name__, pending=len(rows) - len(acked))
                raise KafkaError("broker unreachable") from error

    def _move_aside(self, s: Session, row: OutboxRow, exc: Exception) -> None:
        """Replace a refused row, in its place, by a dead letter; a refused dead letter is deleted and logged."""
        db_row = s.get(OutboxRow, row.seq)
        if db_row is None:
            return
        self.stats.refused += 1
        error_type = type(exc).__name__
        if db_row.kind != "event":
            self.stats.lost += 1
            log.error("broker refused a dead letter; it is dropped", connector=self.connector.name,
                      scope=display_name(db_row.scope), position=db_row.position, error_type=error_type)
            s.delete(db_row)
            return
        event_id: str | None = None
        try:
            doc = json.loads(db_row.value)
            event_id = str(doc["id"])
            self.stats.event_ids.discard((str(doc["source"]), event_id))  # the hub will never see it
        except (ValueError, KeyError, TypeError):
            pass
        letter = DeadLetter(source=self.connector.name, where=f"{db_row.scope}:{db_row.position}",
                            record=db_row.key, reason=f"broker refused the record ({error_type})", event=event_id,
                            code="refused")
        original = db_row.value
        db_row.topic = self.deadletter_topic
        db_row.kind = "dead_letter"
        db_row.value = self.dead_letter_bytes(letter, db_row.scope, db_row.position, original)
        log.warning("broker refused a record; replaced by a dead letter", connector=self.connector.name,
                    position=db_row.position, error_type=error_type)

    def run_once(self) -> RunStats:
        """Relay leftovers, read the source to its end, relay everything."""
        if self.producer is not None:
            self.relay()
        self.read_into_outbox()
        if self.producer is not None:
            self.relay()
        log.info("connector pass done", connector=self.connector.name, **self.stats.as_dict())
        return self.stats

    def run_forever(self, interval_s: float, stop: Any) -> None:
        """Service mode: poll the source; keep reading into the outbox while the broker is away."""
        while not stop.is_set():
            self.stats.event_ids.clear()  # only batch runs wait on these; don't grow forever
            self.read_into_outbox()
            with contextlib.suppress(KafkaError):  # logged in relay; retried next round
                self.relay()
            stop.wait(interval_s)


    def dead_letter_bytes(self, letter: DeadLetter, scope: str, position: str, original: bytes | None) -> bytes:
        """The dead letter as a ``jp.tsunagu.deadletter.v1`` CloudEvent, its original sealed when a key is set."""
        sealed = self.seal(original) if (self.seal is not None and original is not None) else None
        return dead_letter_event(letter, scope=scope, position=position, sealed=sealed,
                                 stage=letter.stage if letter.stage in STAGES else "connector")


#: a checkpoint position goes into a dead letter only when it is plainly a position (a line number, an id, a
#: timestamp watermark); one built from an unreadable source value might carry data, and is left out
_SAFE_POSITION = re.compile(r"^[0-9A-Za-z:.+_| -]{1,200}$")


def dead_letter_id(letter: DeadLetter, stage: str) -> str:
    """The CloudEvents id of ``letter``'s dead-letter message: stage, feed, origin and original event only."""
    return stable_event_id("deadletter", stage, letter.source, display_name(letter.where), letter.event or "")


def dead_letter_event(letter: DeadLetter, *, stage: str, scope: str | None = None, position: str | None = None,
                      sealed: str | None = None, topic: str | None = None, partition: int | None = None,
                      offset: int | None = None, sealed_key: str | None = None) -> bytes:
    """A dead letter's message (CloudEvent ``jp.tsunagu.deadletter.v1``, structured JSON).

    Its id depends only on where the record came from (stage, feed, origin, original event), so a
    record that is still bad when replayed dead-letters again with the same id. Text that cannot be
    encoded (a file name that is not UTF-8) is escaped. ``sealed`` (and, for a hub message, ``sealed_key``)
    are the original's bytes already encrypted.
    """
    safe = letter.model_copy(update={
        "where": display_name(letter.where),
        "record": display_name(letter.record) if letter.record is not None else None,
        "reason": display_name(letter.reason),
    })
    at = safe.at or datetime.now(UTC)
    data = DeadLetterV1.from_dead_letter(
        safe, stage=stage, at=at, scope=display_name(scope) if scope is not None else None,  # type: ignore[arg-type]
        position=position if position is not None and _SAFE_POSITION.match(position) else None,
        delivery=safe.where.removeprefix("delivery:") if safe.where.startswith("delivery:") else None,
        topic=topic, partition=partition, offset=offset, original=sealed, original_key=sealed_key,
    )
    ev = CloudEvent(
        id=dead_letter_id(safe, stage),
        source=f"urn:tsunagu:{stage}:{safe.source}",
        type=DEADLETTER_TYPE,
        time=at,
        sourcerecord=safe.record or safe.source,
        data=data.model_dump(mode="json"),
    )
    return ev.to_json_bytes()


def dead_letter_labels(value: bytes, feed: str) -> tuple[str, str, str]:
    """(stage, feed, reason code) of a dead-letter message, for ``tsunagu_dead_letters_total``."""
    try:
        data = json.loads(value)["data"]
        return str(data["stage"]), str(data["feed"]), str(data["reason"])
    except (ValueError, KeyError, TypeError):
        return "connector", feed, "other"


def _chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """Chunks never split the items of one checkpoint (a case and its referral share a line)."""
    batch: list[Item] = []
    for item in items:
        if len(batch) >= size and item.checkpoint != batch[-1].checkpoint:
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def summarize(stats: Mapping[str, RunStats]) -> str:
    return json.dumps({k: v.as_dict() for k, v in stats.items()}, ensure_ascii=False)


def wait_seconds(start: float) -> float:
    return round(time.monotonic() - start, 3)
