"""The connector runner on the real broker: outbox first, checkpoints only after acknowledgement."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

from connectors.contract import Checkpoint, Connector, Item
from connectors.runner import ConnectorRunner, ConnectorState, make_producer
from hub.kafka.broker import ensure_topics
from hub.kafka.topicreader import read_topic
from hub.topics import Topics
from schemas.deadletter import DeadLetter
from schemas.envelope import CloudEvent, stable_event_id

JST = timezone(timedelta(hours=9))


class CountingConnector(Connector):
    """N events in one scope, with a dead letter at every 10th position."""

    name = "counting"

    def __init__(self, n: int) -> None:
        self.n = n

    def read(self, checkpoints: Mapping[str, str]) -> Iterator[Item]:
        start = int(checkpoints.get("only", "0"))
        for i in range(start + 1, self.n + 1):
            cp = Checkpoint("only", f"{i:08d}")
            if i % 10 == 0:
                yield Item(cp, dead_letter=DeadLetter(source=self.name, where=f"line {i}", reason="test"))
                continue
            yield Item(
                cp,
                event=CloudEvent(
                    id=stable_event_id(self.name, i),
                    source="urn:tsunagu:connector:counting",
                    type="jp.tsunagu.person.observed.v1",
                    time=datetime(2026, 1, 1, tzinfo=JST) + timedelta(minutes=i),
                    sourcerecord=f"counting:{i % 7}",
                    data={"i": i},
                ),
                key=f"counting:{i % 7}",
            )


def test_outbox_holds_items_until_the_broker_acknowledges(kafka: str, tmp_path: Path, fast_settings) -> None:
    """Reading without a broker fills the outbox and moves only the read position; relaying empties it."""
    topics = Topics(fast_settings.topic_prefix)
    ensure_topics(kafka, topics, 3)
    state = ConnectorState.in_dir(tmp_path)
    offline = ConnectorRunner(CountingConnector(50), state, None, intake_topic=topics.intake,
                              deadletter_topic=topics.deadletter)
    assert offline.read_into_outbox() == 50
    assert state.pending("counting") == 50
    assert state.read_positions("counting") == {"only": "00000050"}
    assert state.published_positions("counting") == {}

    producer = make_producer(kafka)
    online = ConnectorRunner(CountingConnector(50), state, producer, intake_topic=topics.intake,
                             deadletter_topic=topics.deadletter)
    stats = online.run_once()  # relays the outbox; reads nothing new
    producer.close()
    assert stats.read == 0 and stats.published == 45 and stats.published_dead_letters == 5
    assert state.pending("counting") == 0
    assert state.published_positions("counting") == {"only": "00000050"}

    events = [CloudEvent.from_json_bytes(v) for v in read_topic(kafka, topics.intake)]
    assert sorted(int(e.data["i"]) for e in events) == [i for i in range(1, 51) if i % 10]
    dead = list(read_topic(kafka, topics.deadletter))
    assert len(dead) == 5


def test_resume_reads_only_what_is_new(kafka: str, tmp_path: Path, fast_settings) -> None:
    """A second pass over a grown source publishes only the new items, with their stable ids."""
    topics = Topics(fast_settings.topic_prefix)
    ensure_topics(kafka, topics, 3)
    state = ConnectorState.in_dir(tmp_path)
    producer = make_producer(kafka)
    ConnectorRunner(CountingConnector(20), state, producer, intake_topic=topics.intake,
                    deadletter_topic=topics.deadletter).run_once()
    second = ConnectorRunner(CountingConnector(30), state, producer, intake_topic=topics.intake,
                             deadletter_topic=topics.deadletter).run_once()
    producer.close()
    assert second.read == 10
    ids = [CloudEvent.from_json_bytes(v).id for v in read_topic(kafka, topics.intake)]
    assert len(ids) == len(set(ids)) == 27


def test_one_persons_events_stay_in_order(kafka: str, tmp_path: Path, fast_settings) -> None:
    """Events with the same key land on one partition in the order they were read."""
    topics = Topics(fast_settings.topic_prefix)
    ensure_topics(kafka, topics, 3)
    state = ConnectorState.in_dir(tmp_path)
    producer = make_producer(kafka)
    ConnectorRunner(CountingConnector(100), state, producer, intake_topic=topics.intake,
                    deadletter_topic=topics.deadletter).run_once()
    producer.close()
    by_key: dict[str, list[int]] = {}
    for raw in read_topic(kafka, topics.intake):
        ev = CloudEvent.from_json_bytes(raw)
        by_key.setdefault(ev.sourcerecord, []).append(int(ev.data["i"]))
    assert len(by_key) == 7
    for seq in by_key.values():
        assert seq == sorted(seq)
