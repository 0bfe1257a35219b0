"""Replays dead letters — a connector's through the same connector code, the hub's by putting the original
message back on its topic — keeping the original event identity.

A dead letter from a connector names its checkpoint (scope and position). Replaying reads the
feed again from its start with the connector of today (after a mapping or code fix) and keeps
only the items of those checkpoints; they go through the normal runner and outbox. Event ids are
stable (derived from the source's record and revision), so what already flowed is dropped by the
hub as a redelivery, and a record that is still bad dead-letters again with the same dead-letter
id. Dead letters whose checkpoint now yields an event are marked ``replayed``.

A dead letter of a hub stage names the topic, partition and offset of its message and, when a key
was set, keeps the message's value and key sealed: ``replay_hub`` opens those (older dead letters: reads
the message back from the broker at its position) and publishes it again to the same topic, unchanged
(see its docstring for how the hub's dedupe marker is handled so it neither no-ops nor flows twice).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from connectors.contract import Connector, Item
from connectors.runner import CE_HEADERS, ConnectorRunner
from connectors.sealing import SealError
from hub.kafka.service import REPLAY_HEADER
from hub.kafka.topicreader import StoredMessage
from hub.logging import get_logger
from hub.ops.deadletters import DeadLetterAccess, DeadLetterRow, mark_replayed, record_messages
from hub.pipeline.stages import HOUSEHOLD, INTAKE
from hub.pipeline.tables import ProcessedEvent
from schemas.envelope import CloudEvent

log = get_logger("tsunagu.deadletter")


class ReplayError(ValueError):
    """A dead letter that cannot be replayed (no checkpoint, or not a connector's)."""


class Replaying(Connector):
    """A connector restricted to some checkpoints of another: reads from the start, yields only those."""

    def __init__(self, inner: Connector, targets: set[tuple[str, str]]) -> None:
        self.inner = inner
        self.name = inner.name
        self.targets = targets
        #: checkpoints that yielded an event this time (their dead letters are replayed)
        self.flowed: set[tuple[str, str]] = set()
        self.seen: set[tuple[str, str]] = set()
        #: the dead-letter items read again (still bad)
        self.still_bad: list[Item] = []

    def read(self, checkpoints: Mapping[str, str]) -> Iterator[Item]:
        for item in self.inner.read({}):
            at = (item.checkpoint.scope, item.checkpoint.position)
            if at in self.targets:
                self.seen.add(at)
                if item.event is not None:
                    self.flowed.add(at)
                else:
                    self.still_bad.append(item)
                yield item

    def close(self) -> None:
        self.inner.close()


@dataclass(frozen=True)
class ReplayResult:
    read: int
    events: int
    dead_letters: int
    replayed: list[str]
    not_found: list[str]


def targets_of(rows: Sequence[DeadLetterRow]) -> set[tuple[str, str]]:
    out = set()
    for r in rows:
        if r.scope is None or r.position is None or r.stage not in ("connector", "webhook"):
            raise ReplayError(f"dead letter {r.id} has no connector checkpoint to replay from")
        out.add((r.scope, r.position))
    return out


def replay(rows: Sequence[DeadLetterRow], connector: Connector, make_runner: Callable[[Connector], ConnectorRunner],
           sessions: sessionmaker[Session], *, actor: str | None = None) -> ReplayResult:
    """Replay ``rows`` (dead letters of ``connector``'s feed) through ``make_runner(replaying)``; with ``actor``,
    each replay is audited (``dead_letter_access``, action ``replay``) before anything is read."""
    targets = targets_of(rows)
    if actor is not None:
        with sessions.begin() as s:
            s.add_all(_access(r.id, actor, "replay") for r in rows)
        log.info("dead letters replayed", count=len(rows), feed=connector.name)
    replaying = Replaying(connector, targets)
    runner = make_runner(replaying)
    stats = runner.run_once()
    # file the still-bad ones at once (the hub's dead-letter consumer will see the same ids again)
    record_messages(sessions, [
        (runner.dead_letter_bytes(i.dead_letter, i.checkpoint.scope, i.checkpoint.position, i.original),
         None, None, None)
        for i in replaying.still_bad if i.dead_letter is not None
    ])
    done = [r.id for r in rows if (r.scope, r.position) in replaying.flowed]
    mark_replayed(sessions, done)
    missing = [r.id for r in rows if (r.scope, r.position) not in replaying.seen]
    return ReplayResult(stats.read, stats.events, stats.dead_letters, done, missing)


# -- dead letters of the hub's own stages ----------------------------------------------------------

#: the hub stage that reads a topic, by the topic's suffix (``<prefix>.intake.v1`` → intake)
_STAGE_OF_TOPIC = {".intake.v1": INTAKE, ".resolved.v1": HOUSEHOLD}


@dataclass(frozen=True)
class HubReplayResult:
    #: dead letters whose original message went back on its topic
    republished: list[str]
    #: its event had gone through since (a redelivery, an earlier replay): nothing published, marked replayed
    already_flowed: list[str]
    #: handled by the hub after the replay (marked replayed)
    replayed: list[str]
    #: dead-lettered again (the same dead-letter id; open)
    still_bad: list[str]
    #: not handled within the wait (the hub not running, or behind)
    pending: list[str]
    #: no original kept and it is no longer on its topic (retention, or an embedded broker that was stopped)
    not_found: list[str]


def _hub_target(row: DeadLetterRow) -> tuple[str, str, int, int]:
    """(stage, topic, partition, offset) a hub dead letter came from."""
    if row.stage != "hub" or row.topic is None or row.partition is None or row.offset is None:
        raise ReplayError(f"dead letter {row.id} names no hub topic, partition and offset to replay from")
    stage = next((st for suffix, st in _STAGE_OF_TOPIC.items() if row.topic.endswith(suffix)), None)
    if stage is None:
        raise ReplayError(f"dead letter {row.id} came from {row.topic}, which no hub stage reads")
    return stage, row.topic, int(row.partition), int(row.offset)


def _event_key(value: bytes) -> tuple[str, str] | None:
    try:
        ev = CloudEvent.from_json_bytes(value)
    except ValueError:  # not a CloudEvent at all: the hub has no marker for it
        return None
    return ev.source, ev.id


def _hub_original(row: DeadLetterRow, topic: str, partition: int, offset: int,
                  fetch: Callable[[str, int, int], StoredMessage | None],
                  open_sealed: Callable[[str], bytes] | None) -> StoredMessage | None:
    """The message a hub dead letter came from: its sealed value and key as kept (with the CloudEvents header
    every hub topic carries), else (kept before originals were, or no key to open them) read at its position."""
    if row.original is None or open_sealed is None:
        return fetch(topic, partition, offset)
    try:
        value = open_sealed(row.original)
        key = open_sealed(row.original_key) if row.original_key is not None else None
    except SealError as exc:
        raise ReplayError(f"dead letter {row.id}: {exc}") from None
    return StoredMessage(key, value, list(CE_HEADERS))


def replay_hub(rows: Sequence[DeadLetterRow], sessions: sessionmaker[Session], *,
               fetch: Callable[[str, int, int], StoredMessage | None],
               publish: Callable[[str, int, StoredMessage], None], actor: str,
               open_sealed: Callable[[str], bytes] | None = None, wait_s: float = 0.0,
               poll_s: float = 0.2) -> HubReplayResult:
    """Put hub-stage dead letters' original messages back on the topic and partition they came from, unchanged
    (same key, value and so event identity) plus the ``tsunagu-replay-of`` header naming their original position.

    The original is the dead letter's kept (sealed) value and key, opened with ``open_sealed``; a dead letter
    without them (or no ``open_sealed``) is read back with ``fetch`` at its position, if the broker still has it.

    Per dead letter, in one transaction before publishing: if the event has gone through since (its
    dedupe marker is not ``dead``), nothing is published; else the ``dead`` marker is removed so the
    hub handles it again, and the replay is audited. If publishing fails the marker is put back. With
    ``wait_s``, waits for the hub: handled → ``replayed``; dead-lettered again (same id) → ``still_bad``.
    """
    targets = [(r, *_hub_target(r)) for r in rows]
    republished: list[str] = []
    flowed: list[str] = []
    missing: list[str] = []
    waiting: dict[str, tuple[str, tuple[str, str] | None]] = {}
    for row, stage, topic, partition, offset in targets:
        original = _hub_original(row, topic, partition, offset, fetch, open_sealed)
        if original is None:
            missing.append(row.id)
            continue
        key = _event_key(original.value)
        if key is not None and row.event_id is not None and key[1] != row.event_id:
            raise ReplayError(f"dead letter {row.id}: the message at {topic}:{partition}:{offset} is another event")
        removed: ProcessedEvent | None = None
        with sessions.begin() as s:
            marker = s.get(ProcessedEvent, (stage, *key)) if key is not None else None
            if marker is not None and marker.outcome != "dead":
                s.add(_access(row.id, actor, "replay.already_flowed"))
                flowed.append(row.id)
                continue
            if marker is not None:
                removed = ProcessedEvent(stage=marker.stage, source=marker.source, event_id=marker.event_id,
                                         outcome=marker.outcome, feed=marker.feed, processed_at=marker.processed_at)
                s.delete(marker)
            s.add(_access(row.id, actor, "replay"))
        headers = [(k, v) for k, v in original.headers if k != REPLAY_HEADER]
        headers.append((REPLAY_HEADER, f"{topic}:{partition}:{offset}".encode("ascii")))
        try:
            publish(topic, partition, StoredMessage(original.key, original.value, headers))
        except Exception:
            if removed is not None:  # the hub never saw it: it stays dead-lettered
                with sessions.begin() as s:
                    if s.get(ProcessedEvent, (removed.stage, removed.source, removed.event_id)) is None:
                        s.add(removed)
            raise
        log.info("dead letter replayed", dead_letter=row.id, stage=stage, topic=topic, partition=partition,
                 offset=offset)
        republished.append(row.id)
        waiting[row.id] = (stage, key)
    mark_replayed(sessions, flowed)
    done, bad = _await_hub(sessions, waiting, wait_s, poll_s)
    mark_replayed(sessions, done)
    pending = [i for i in republished if i not in done and i not in bad]
    return HubReplayResult(republished, flowed, done, bad, pending, missing)


def _access(dead_letter: str, actor: str, action: str) -> DeadLetterAccess:
    return DeadLetterAccess(dead_letter=dead_letter, actor=actor, action=action, at=datetime.now(UTC))


def _await_hub(sessions: sessionmaker[Session], waiting: Mapping[str, tuple[str, tuple[str, str] | None]],
               wait_s: float, poll_s: float) -> tuple[list[str], list[str]]:
    """(handled, dead-lettered again) among ``waiting`` once each has a marker, or when ``wait_s`` ran out."""
    deadline = time.monotonic() + wait_s
    outcome: dict[str, str] = {}
    while True:
        with sessions() as s:
            for ident, (stage, key) in waiting.items():
                if ident in outcome or key is None:
                    continue
                marker = s.get(ProcessedEvent, (stage, *key))
                if marker is not None:
                    outcome[ident] = marker.outcome
        if len(outcome) == sum(1 for _, k in waiting.values() if k is not None) or time.monotonic() >= deadline:
            break
        time.sleep(poll_s)
    return ([i for i, o in outcome.items() if o != "dead"], [i for i, o in outcome.items() if o == "dead"])
