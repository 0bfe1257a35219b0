"""Runs a connector: read → local outbox → Kafka, checkpoints moved only by what is safe.

Delivery contract (at-least-once, nothing lost, nothing re-published with a new id):

1. Items a connector yields are written to a local *outbox* (SQLAlchemy) in the same
   transaction that records how far reading got (``read_position``). The outbox is the
   connector's durable buffer: while the broker is unreachable, reading goes on into it.
2. The relay sends outbox rows to Kafka in order (kafka-python, idempotent producer, keyed
   by the person's record key), waits for the broker's acknowledgement, and only then
   deletes them and advances the published checkpoint (``position``).
3. On restart, rows still in the outbox are relayed first with the ids they already had.

Connectors import only ``schemas`` (and this package): the runner knows nothing of the hub.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from kafka import KafkaProducer
from kafka.errors import KafkaError
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

log = structlog.get_logger("tsunagu.connector")


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
    event_ids: set[tuple[str, str]] = field(default_factory=set)

    def as_dict(self) -> dict[str, int]:
        return {
            "read": self.read,
            "events": self.events,
            "dead_letters": self.dead_letters,
            "published": self.published,
            "published_dead_letters": self.published_dead_letters,
        }


def make_producer(bootstrap: str, client_id: str = "tsunagu-connector") -> KafkaProducer:
    """kafka-python producer: acks=all, idempotent (keeps per-key order across retries), batched."""
    return KafkaProducer(
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
    ) -> None:
        self.connector = connector
        self.state = state
        self.producer = producer
        self.intake_topic = intake_topic
        self.deadletter_topic = deadletter_topic
        self.chunk = chunk
        self.stats = RunStats()

    # -- reading into the outbox -------------------------------------------------------
    def read_into_outbox(self) -> int:
        """Read everything new from the source into the outbox; returns how many items were read."""
        name = self.connector.name
        items = self.connector.read(self.state.read_positions(name))
        n = 0
        for batch in _chunks(items, self.chunk):
            with self.state.sessions.begin() as s:
                for item in batch:
                    s.add(self._outbox_row(item))
                    _advance(s, name, item.checkpoint.scope, read=item.checkpoint.position)
                    self._count_read(item)
            n += len(batch)
        return n

    def _outbox_row(self, item: Item) -> OutboxRow:
        key: str | None
        if item.event is not None:
            topic, value, kind = self.intake_topic, item.event.to_json_bytes(), "event"
            key = item.key or item.event.sourcerecord
        else:
            assert item.dead_letter is not None
            topic, value, kind = self.deadletter_topic, item.dead_letter.to_json_bytes(), "dead_letter"
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

    def _count_read(self, item: Item) -> None:
        self.stats.read += 1
        if item.event is not None:
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
            futures = [
                self.producer.send(r.topic, key=r.key.encode() if r.key else None, value=r.value) for r in rows
            ]
            self.producer.flush(timeout=30)
            acked: list[OutboxRow] = []
            error: Exception | None = None
            for row, fut in zip(rows, futures, strict=True):
                try:
                    fut.get(timeout=30)
                except Exception as exc:  # KafkaError, timeouts
                    error = exc
                    break  # keep order: nothing after the first failure counts as sent
                acked.append(row)
            if acked:
                with self.state.sessions.begin() as s:
                    s.execute(delete(OutboxRow).where(OutboxRow.seq.in_([r.seq for r in acked])))
                    for r in acked:
                        _advance(s, name, r.scope, acked=r.position)
                for r in acked:
                    if r.kind == "event":
                        self.stats.published += 1
                    else:
                        self.stats.published_dead_letters += 1
                total += len(acked)
            if error is not None:
                log.warning("broker did not acknowledge; rows stay in the outbox",
                            connector=name, error_type=type(error).__name__, pending=len(rows) - len(acked))
                raise KafkaError("broker unreachable") from error

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
