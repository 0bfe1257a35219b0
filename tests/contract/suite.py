"""The connector contract suite: what every connector promises the runner and the hub.

How to use it for a new connector::

    from tests.contract.suite import ConnectorContract, SourceKind

    class TestShogaiContract(ConnectorContract):
        def make_source(self, tmp_path: Path, kind: SourceKind) -> Path:
            ...  # build a source of that kind under tmp_path, return whatever make_connector needs

        def make_connector(self, source: Path) -> Connector:
            return ShogaiConnector(source)

The class name must start with ``Test`` (pytest collects the subclass, never the base). The two
methods are the suite's abstract fixtures; the tests call them afresh for every read, so a
connector holding resources (a database connection) is closed after each read.

Source kinds ``make_source`` must build:

``"sample"``
    a realistic source with several scopes (files, tables, deliveries) and many records;
    it may contain bad records too.
``"empty"``
    a source with nothing to read (an empty folder, empty tables, a header-only file…).
``"broken"``
    the *same* source as ``"sample"`` plus at least one extra bad record (wrong column count,
    undecodable bytes, impossible date, bad signature…) placed among good ones. Nothing else may
    differ: the suite checks that the broken record becomes a dead letter and that every event
    of the sample still flows with the same id.

Inherited tests:

* every event is a valid CloudEvent whose ``data`` passes ``schemas.events.parse_payload`` for
  its type; ``time`` carries an offset; the Kafka key is the event's ``sourcerecord``;
* dead letters name the connector's feed as ``source`` and say where and why;
* positions never move backwards within a scope (``connectors.contract.position_key``);
* resuming with the checkpoints of the items before an interruption yields exactly the remaining
  items (same ids, no gaps, no duplicates), at every item index. Items sharing one checkpoint (a
  case and its referral from one row) are never split by the runner, so an interruption inside
  such a group resumes at the group's first item;
* reading twice gives the same items; the checkpoints mapping is not modified;
* an empty source yields nothing;
* a broken record becomes a dead letter and the rest flows.

Class attributes and hooks tune the checks for feeds that differ legitimately
(``unique_event_ids``, ``good_event_identity``).
"""

from __future__ import annotations

import abc
import os
from collections import Counter
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest

from connectors.contract import Connector, Item, position_key
from schemas.envelope import CloudEvent
from schemas.events import EVENT_TYPES, parse_payload

SourceKind = Literal["sample", "empty", "broken"]

#: the shared sample feeds (``shared/agency-systems/samples`` beside the repository, else the copy
#: under ``hub/samples``), overridable with TSUNAGU_SAMPLES
_REPO = Path(__file__).resolve().parents[2]
_SHARED_SAMPLES = _REPO.parent / "shared" / "agency-systems" / "samples"
SAMPLES_DIR = Path(
    os.environ.get("TSUNAGU_SAMPLES", _SHARED_SAMPLES if _SHARED_SAMPLES.is_dir() else _REPO / "hub" / "samples")
)


def committed_checkpoints(items: list[Item]) -> dict[str, str]:
    """The checkpoints the runner has saved after publishing these items (last per scope)."""
    out: dict[str, str] = {}
    for it in items:
        out[it.checkpoint.scope] = it.checkpoint.position
    return out


def group_start(items: list[Item], index: int) -> int:
    """First index of the run of items sharing the checkpoint of ``items[index]``."""
    if index >= len(items):
        return len(items)
    while index > 0 and items[index - 1].checkpoint == items[index].checkpoint:
        index -= 1
    return index


def describe(item: Item) -> tuple[str, ...]:
    """A short, comparable description of an item (for assertion messages)."""
    cp = (item.checkpoint.scope, item.checkpoint.position)
    if item.event is not None:
        return ("event", item.event.type, item.event.id, *cp)
    assert item.dead_letter is not None
    return ("dead_letter", item.dead_letter.where, item.dead_letter.reason, *cp)


class ConnectorContract(abc.ABC):
    """Base class of every connector's contract tests. Subclass it in a ``Test…`` class."""

    #: events of one read must have distinct (source, id); switch off for a feed that legitimately
    #: re-delivers the same change (the hub drops duplicates by id)
    unique_event_ids: ClassVar[bool] = True

    # -- abstract fixtures ---------------------------------------------------------------------

    @abc.abstractmethod
    def make_source(self, tmp_path: Path, kind: SourceKind) -> Any:
        """Build a source of the given kind under ``tmp_path`` and return what make_connector takes."""

    @abc.abstractmethod
    def make_connector(self, source: Any) -> Connector:
        """A fresh connector reading ``source``."""

    def good_event_identity(self, event: CloudEvent) -> Hashable:
        """What must stay the same for a good record when bad records are added to its source.

        The CloudEvents identity by default. Override for a feed whose event data names the
        whole delivery (the registry's ``snapshot`` hashes the entire file, so adding a bad line
        changes every id, by design).
        """
        return event.dedupe_key

    # -- helpers -------------------------------------------------------------------------------

    def read_all(self, source: Any, checkpoints: Mapping[str, str] | None = None) -> list[Item]:
        connector = self.make_connector(source)
        try:
            return list(connector.read(dict(checkpoints or {})))
        finally:
            connector.close()

    def source(self, tmp_path: Path, kind: SourceKind) -> Any:
        folder = tmp_path / kind
        folder.mkdir(parents=True, exist_ok=True)
        return self.make_source(folder, kind)

    # -- tests ---------------------------------------------------------------------------------

    def test_sample_yields_events(self, tmp_path: Path) -> None:
        items = self.read_all(self.source(tmp_path, "sample"))
        assert any(it.event is not None for it in items), "the sample source yielded no event"

    @pytest.mark.parametrize("kind", ["sample", "broken"])
    def test_yields_only_valid_events(self, tmp_path: Path, kind: SourceKind) -> None:
        source = self.source(tmp_path, kind)
        connector = self.make_connector(source)
        connector_name = connector.name
        connector.close()
        items = self.read_all(source)
        seen: set[tuple[str, str]] = set()
        for it in items:
            assert it.checkpoint.scope, describe(it)
            assert it.checkpoint.position, describe(it)
            if it.event is None:
                dl = it.dead_letter
                assert dl is not None
                assert dl.source == connector_name, describe(it)
                assert dl.where and dl.reason, describe(it)
                continue
            ev = it.event
            assert CloudEvent.from_json_bytes(ev.to_json_bytes()) == ev, describe(it)
            assert ev.type in EVENT_TYPES, describe(it)
            parse_payload(ev.type, ev.data)
            assert ev.time.utcoffset() is not None, describe(it)
            assert ev.source.startswith(f"urn:tsunagu:connector:{connector_name}"), describe(it)
            assert it.key == ev.sourcerecord, describe(it)
            if self.unique_event_ids:
                assert ev.dedupe_key not in seen, f"duplicate event {describe(it)}"
                seen.add(ev.dedupe_key)

    @pytest.mark.parametrize("kind", ["sample", "broken"])
    def test_positions_never_move_backwards(self, tmp_path: Path, kind: SourceKind) -> None:
        last: dict[str, str] = {}
        for it in self.read_all(self.source(tmp_path, kind)):
            scope, pos = it.checkpoint.scope, it.checkpoint.position
            if scope in last:
                assert position_key(pos) >= position_key(last[scope]), describe(it)
            last[scope] = pos

    @pytest.mark.parametrize("kind", ["sample", "broken"])
    def test_resume_at_every_item_yields_exactly_the_rest(self, tmp_path: Path, kind: SourceKind) -> None:
        source = self.source(tmp_path, kind)
        items = self.read_all(source)
        assert items
        for index in range(len(items) + 1):
            start = group_start(items, index)
            checkpoints = committed_checkpoints(items[:start])
            frozen = dict(checkpoints)
            resumed = self.read_all(source, checkpoints)
            assert checkpoints == frozen, "read() modified the checkpoints it was given"
            assert [describe(i) for i in resumed] == [describe(i) for i in items[start:]], (
                f"resume after item {start} of {len(items)}"
            )
            assert resumed == items[start:]

    def test_reading_twice_gives_the_same_items(self, tmp_path: Path) -> None:
        source = self.source(tmp_path, "sample")
        assert self.read_all(source) == self.read_all(source)

    def test_empty_source_yields_nothing(self, tmp_path: Path) -> None:
        assert self.read_all(self.source(tmp_path, "empty")) == []

    def test_broken_record_becomes_dead_letter_and_the_rest_flows(self, tmp_path: Path) -> None:
        sample = self.read_all(self.source(tmp_path, "sample"))
        broken = self.read_all(self.source(tmp_path, "broken"))
        sample_dead = [it for it in sample if it.dead_letter is not None]
        broken_dead = [it for it in broken if it.dead_letter is not None]
        assert len(broken_dead) > len(sample_dead), "the broken record did not become a dead letter"

        def ids(items: list[Item]) -> Counter[Hashable]:
            return Counter(self.good_event_identity(it.event) for it in items if it.event is not None)

        assert ids(broken) == ids(sample), "events of good records changed or went missing"
