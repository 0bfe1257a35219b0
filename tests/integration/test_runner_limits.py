"""The connector runner against records the broker can never take: dead-lettered, never wedging the outbox."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

from connectors.contract import Checkpoint, Connector, Item
from connectors.runner import DEFAULT_MAX_MESSAGE_BYTES, ConnectorRunner, ConnectorState, OutboxRow, make_producer
from hub.kafka.broker import ensure_topics
from hub.kafka.topicreader import read_topic
from hub.run.export import dead_letter_row
from hub.topics import Topics
from schemas.deadletter import DeadLetter
from schemas.envelope import CloudEvent, stable_event_id

JST = timezone(timedelta(hours=9))
SECRET_NAME = "秘密の氏名"


class SizedConnector(Connector):
    """Events of given payload sizes, one per position; the payload text stands for personal data."""

    name = "sized"

    def __init__(self, sizes: list[int], *, where_bytes: bool = False) -> None:
        self.sizes = sizes
        self.where_bytes = where_bytes

    def read(self, checkpoints: Mapping[str, str]) -> Iterator[Item]:
        start = int(checkpoints.get("only", "0"))
        for i, size in enumerate(self.sizes, start=1):
            if i <= start:
                continue
            yield Item(
                Checkpoint("only", f"{i:08d}"),
                event=CloudEvent(
                    id=stable_event_id(self.name, i),
                    source="urn:tsunagu:connector:sized",
                    type="jp.tsunagu.person.observed.v1",
                    time=datetime(2026, 1, 1, tzinfo=JST) + timedelta(minutes=i),
                    sourcerecord=f"sized:{i}",
                    data={"i": i, "text": SECRET_NAME + "x" * size},
                ),
                key=f"sized:{i}",
            )


def test_default_limit_is_below_kafkas_default_message_max_bytes() -> None:
    """The default limit leaves room under Apache Kafka's default message.max.bytes (1,048,588)."""
    assert DEFAULT_MAX_MESSAGE_BYTES < 1_048_588


def test_oversize_event_is_dead_lettered_before_the_outbox(tmp_path: Path) -> None:
    """An event larger than max_message_bytes never enters the outbox; its dead letter does, without the data."""
    state = ConnectorState.in_dir(tmp_path)
    runner = ConnectorRunner(SizedConnector([10, 5000, 10]), state, None, intake_topic="in", deadletter_topic="dl",
                             max_message_bytes=2000)
    assert runner.read_into_outbox() == 3
    with state.sessions() as s:
        rows = s.query(OutboxRow).order_by(OutboxRow.seq).all()
    assert [r.kind for r in rows] == ["event", "dead_letter", "event"]
    assert all(len(r.value) < 2000 for r in rows)
    letter = dead_letter_row(json.loads(rows[1].value))  # a jp.tsunagu.deadletter.v1 CloudEvent
    assert letter["reason"].startswith("event larger than the message limit (")
    assert letter["where"] == "only:00000002" and letter["record"] == "sized:2" and letter["event"]
    assert SECRET_NAME not in rows[1].value.decode("utf-8")
    assert runner.stats.events == 2 and runner.stats.dead_letters == 1
    assert len(runner.stats.event_ids) == 2  # the batch run never waits for the dead-lettered one
    state.dispose()


def test_unserializable_event_is_a_dead_letter(tmp_path: Path) -> None:
    """An event holding text that cannot be UTF-8 (a lone surrogate) becomes a dead letter, not a crash."""

    class Surrogate(SizedConnector):
        def read(self, checkpoints: Mapping[str, str]) -> Iterator[Item]:
            for item in super().read(checkpoints):
                assert item.event is not None
                bad = item.event.model_copy(update={"data": {"text": "a\ud800b"}})
                yield Item(item.checkpoint, event=bad, key=item.key)

    state = ConnectorState.in_dir(tmp_path)
    runner = ConnectorRunner(Surrogate([1]), state, None, intake_topic="in", deadletter_topic="dl")
    runner.read_into_outbox()
    with state.sessions() as s:
        [row] = s.query(OutboxRow).all()
    assert row.kind == "dead_letter"
    assert dead_letter_row(json.loads(row.value))["reason"] == "event cannot be serialized (PydanticSerializationError)"
    state.dispose()


def test_record_the_broker_refuses_is_moved_aside_and_the_run_goes_on(
    kafka: str, tmp_path: Path, fast_settings
) -> None:
    """A record the producer refuses (MessageSizeTooLargeError) becomes a dead letter; later runs don't crash on it."""
    topics = Topics(fast_settings.topic_prefix)
    ensure_topics(kafka, topics, 3)
    state = ConnectorState.in_dir(tmp_path)
    producer = make_producer(kafka, max_request_size=4000)
    runner = ConnectorRunner(SizedConnector([10, 20, 8000, 30, 40]), state, producer, intake_topic=topics.intake,
                             deadletter_topic=topics.deadletter)
    stats = runner.run_once()
    assert state.pending("sized") == 0
    assert stats.read == 5 and stats.refused == 1 and stats.lost == 0
    assert stats.published == 4 and stats.published_dead_letters == 1
    assert len(stats.event_ids) == 4
    assert state.published_positions("sized") == {"only": "00000005"}

    # the same state and a source that still holds the record: nothing left to crash on
    again = ConnectorRunner(SizedConnector([10, 20, 8000, 30, 40, 50]), state, producer,
                            intake_topic=topics.intake, deadletter_topic=topics.deadletter).run_once()
    producer.close()
    assert again.read == 1 and again.published == 1 and again.refused == 0

    published = sorted(int(CloudEvent.from_json_bytes(v).data["i"]) for v in read_topic(kafka, topics.intake))
    assert published == [1, 2, 4, 5, 6]
    [raw] = list(read_topic(kafka, topics.deadletter))
    letter = dead_letter_row(json.loads(raw))
    assert letter["reason"] == "broker refused the record (MessageSizeTooLargeError)"
    assert letter["where"] == "only:00000003" and letter["record"] == "sized:3"
    assert SECRET_NAME not in raw.decode("utf-8")
    state.dispose()


def test_a_refused_dead_letter_is_dropped_loudly(kafka: str, tmp_path: Path, fast_settings) -> None:
    """A dead letter the broker refuses is deleted from the outbox, counted as lost and logged; the run goes on."""
    from structlog.testing import capture_logs

    class LongWhere(Connector):
        name = "longwhere"

        def read(self, checkpoints: Mapping[str, str]) -> Iterator[Item]:
            if "only" not in checkpoints:
                letter = DeadLetter(source=self.name, where="x" * 3000, reason="test")
                yield Item(Checkpoint("only", "00000001"), dead_letter=letter)

    topics = Topics(fast_settings.topic_prefix)
    ensure_topics(kafka, topics, 3)
    state = ConnectorState.in_dir(tmp_path)
    producer = make_producer(kafka, max_request_size=2000)
    with capture_logs() as logs:
        stats = ConnectorRunner(LongWhere(), state, producer, intake_topic=topics.intake,
                                deadletter_topic=topics.deadletter).run_once()
    producer.close()
    assert state.pending() == 0
    assert (stats.refused, stats.lost, stats.published_dead_letters) == (1, 1, 0)
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["broker refused a dead letter; it is dropped"]
    state.dispose()
