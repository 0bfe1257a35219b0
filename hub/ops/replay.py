"""Replays dead letters through the same connector code, keeping the original event identity.

A dead letter from a connector names its checkpoint (scope and position). Replaying reads the
feed again from its start with the connector of today (after a mapping or code fix) and keeps
only the items of those checkpoints; they go through the normal runner and outbox. Event ids are
stable (derived from the source's record and revision), so what already flowed is dropped by the
hub as a redelivery, and a record that is still bad dead-letters again with the same dead-letter
id. Dead letters whose checkpoint now yields an event are marked ``replayed``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from connectors.contract import Connector, Item
from connectors.runner import ConnectorRunner
from hub.ops.deadletters import DeadLetterRow, mark_replayed, record_messages


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
           sessions: sessionmaker[Session]) -> ReplayResult:
    """Replay ``rows`` (dead letters of ``connector``'s feed) through ``make_runner(replaying)``."""
    targets = targets_of(rows)
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
