"""The connector contract: a connector yields (event or dead letter, checkpoint) items.

The runner publishes each item, waits until the broker acknowledged it, and only then
saves its checkpoint. A connector therefore never persists anything itself while reading;
given the last saved checkpoints it resumes exactly after them.

Checkpoints are per *scope* (a file, a table, a delivery folder): ``scope`` → ``position``
where position is an opaque string the connector alone interprets, ordered so that a
later item of the same scope never carries a smaller position (see ``position_key``).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from schemas.deadletter import DeadLetter
from schemas.envelope import CloudEvent


@dataclass(frozen=True, slots=True)
class Checkpoint:
    scope: str
    position: str


@dataclass(frozen=True, slots=True)
class Item:
    """One thing a connector read: an event to publish or a dead letter, and how far that got us."""

    checkpoint: Checkpoint
    event: CloudEvent | None = None
    dead_letter: DeadLetter | None = None
    key: str | None = None  # Kafka key: the person's record key, so their events stay in order
    #: a dead letter's original bytes (the line, row or delivery as read); sealed before it leaves the runner
    original: bytes | None = None

    def __post_init__(self) -> None:
        if (self.event is None) == (self.dead_letter is None):
            raise ValueError("an item carries exactly one of event / dead_letter")


def position_key(position: str) -> tuple[int, str]:
    """Order positions: numeric ones numerically, others as strings (zero-padded by connectors)."""
    return (int(position), "") if position.isdigit() else (-1, position)


class Connector(abc.ABC):
    """One agency feed. Subclasses implement ``read``; everything else is the runner's job."""

    #: feed name, also the dead-letter ``source``
    name: str

    @abc.abstractmethod
    def read(self, checkpoints: Mapping[str, str]) -> Iterator[Item]:
        """Yield items after the given checkpoints (scope → position), in publishing order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (database connections)."""
