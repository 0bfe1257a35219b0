"""Replay after a code fix: only the dead-lettered record is re-read, it flows with its original identity, once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from connectors.contract import Checkpoint, Connector, Item
from connectors.runner import ConnectorRunner, ConnectorState, make_producer
from hub.bootstrap import Database
from hub.kafka.broker import ensure_topics
from hub.kafka.topicreader import read_topic
from hub.ops.deadletters import DeadLetterRow, listing, record_messages
from hub.ops.replay import replay
from hub.topics import Topics
from schemas.deadletter import DeadLetter
from schemas.envelope import CloudEvent, stable_event_id


class Feed(Connector):
    """Three lines; the buggy version cannot map line 3 (a mapping bug), the fixed one can."""

    name = "jiritsu"

    def __init__(self, fixed: bool) -> None:
        self.fixed = fixed
        self.reads = 0

    def read(self, checkpoints: Mapping[str, str]) -> Iterator[Item]:
        self.reads += 1
        after = int(checkpoints.get("J.csv", "0"))
        for line in (1, 2, 3):
            if line <= after:
                continue
            cp = Checkpoint("J.csv", f"{line:08d}")
            if line == 3 and not self.fixed:
                yield Item(cp, dead_letter=DeadLetter(source="jiritsu", where="J.csv:3", reason="unknown code in 状況"),
                           original=b"J99,3,???")
                continue
            yield Item(cp, event=CloudEvent(id=stable_event_id("jiritsu", line), source="urn:tsunagu:connector:jiritsu",
                                            type="jp.tsunagu.person.observed.v1",
                                            time=datetime(2026, 1, line, tzinfo=UTC), sourcerecord=f"jiritsu:{line}",
                                            data={"line": line}), key=f"jiritsu:{line}")


def test_replay_after_a_fix_publishes_only_the_record_with_its_id(kafka: str, tmp_path: Path) -> None:
    """Lines 1-2 flowed, 3 dead-lettered; after the fix the replay publishes line 3 once and marks it replayed."""
    topics = Topics(f"rp{uuid.uuid4().hex[:6]}")
    ensure_topics(kafka, topics, 1)
    state = ConnectorState.in_dir(tmp_path / "state")
    db = Database.open(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    producer = make_producer(kafka)
    try:
        def runner(c: Connector) -> ConnectorRunner:
            return ConnectorRunner(c, state, producer, intake_topic=topics.intake, deadletter_topic=topics.deadletter)

        runner(Feed(fixed=False)).run_once()
        record_messages(db.sessions, [(v, topics.deadletter, 0, i)
                                      for i, v in enumerate(read_topic(kafka, topics.deadletter))])
        with db.sessions() as s:
            rows = list(listing(s, feed="jiritsu"))
        assert [(r.reason, r.position) for r in rows] == [("mapping", "00000003")]

        result = replay(rows, Feed(fixed=True), runner, db.sessions)
        assert (result.read, result.events, result.dead_letters) == (1, 1, 0)
        assert result.replayed == [rows[0].id] and result.not_found == []
        with db.sessions() as s:
            row = s.get(DeadLetterRow, rows[0].id)
            assert row is not None and row.state == "replayed"
    finally:
        producer.close(timeout=5)
        state.dispose()
        db.close()
    ids = [CloudEvent.from_json_bytes(v).id for v in read_topic(kafka, topics.intake)]
    assert sorted(ids) == sorted(stable_event_id("jiritsu", line) for line in (1, 2, 3))  # each exactly once
