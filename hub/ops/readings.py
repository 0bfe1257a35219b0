"""What operations read from the running system: last success per feed, consumer lag, outbox depths.

Shared by ``/metrics``, ``/ops.json``, ``tsunagu status`` and the health rules, so every view shows
the same numbers. Only counts, times, feed names, groups, topics and partitions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from connectors.runner import CheckpointRow, ConnectorState, OutboxRow
from hub.kafka.topicreader import partition_lags
from hub.logging import get_logger
from hub.settings import Settings
from hub.topics import Topics

log = get_logger("tsunagu.ops")


@dataclass(frozen=True)
class Lag:
    group: str
    topic: str
    partition: int
    lag: int


def hub_groups(settings: Settings, topics: Topics) -> list[tuple[str, str]]:
    """(consumer group, topic) of every hub consumer."""
    return [(settings.hub_group, topics.intake), (f"{settings.hub_group}-household", topics.resolved),
            (f"{settings.hub_group}-deadletter", topics.deadletter)]


def consumer_lags(bootstrap: str, settings: Settings, topics: Topics) -> list[Lag]:
    """End offset minus committed offset, per group and partition, read from the brokers now."""
    out: list[Lag] = []
    for group, topic in hub_groups(settings, topics):
        for partition, lag in sorted(partition_lags(bootstrap, group, topic).items()):
            out.append(Lag(group, topic, partition, lag))
    return out


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def feed_last_success(cstate: ConnectorState) -> dict[str, datetime]:
    """Per feed: when the broker last acknowledged one of its items (the newest published checkpoint).

    Read from the connector state, so a restart neither makes a quiet feed look fresh nor a
    healthy one stalled.
    """
    with cstate.sessions() as s:
        rows = s.execute(select(CheckpointRow.connector, func.max(CheckpointRow.updated_at))
                         .where(CheckpointRow.position.is_not(None)).group_by(CheckpointRow.connector)).all()
    return {str(feed): _aware(at) for feed, at in rows if at is not None}


def connector_outboxes(cstate: ConnectorState) -> dict[str, int]:
    with cstate.sessions() as s:
        return {str(c): int(n) for c, n in
                s.execute(select(OutboxRow.connector, func.count()).group_by(OutboxRow.connector)).all()}


class CachedLags:
    """Consumer lags read at most every ``ttl_s`` seconds (each reading opens clients to the brokers)."""

    def __init__(self, read: Callable[[], list[Lag]], ttl_s: float = 10.0) -> None:
        self.read = read
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._at = -1e18
        self._value: list[Lag] = []

    def __call__(self) -> list[Lag]:
        with self._lock:
            if time.monotonic() - self._at >= self.ttl_s:
                self._value = self.read()
                self._at = time.monotonic()
            return list(self._value)
