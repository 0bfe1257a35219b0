"""Connector-published messages (intake and dead letters) follow the CloudEvents Kafka binding, structured mode."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.v1.kafka import KafkaMessage as V1KafkaMessage
from cloudevents.v1.kafka import from_structured
from confluent_kafka import Consumer, TopicPartition

from connectors.contract import Checkpoint, Connector, Item
from connectors.runner import CONTENT_TYPE, ConnectorRunner, ConnectorState, make_producer
from hub.kafka.broker import ensure_topics
from hub.topics import Topics
from schemas.deadletter import DEADLETTER_TYPE, DeadLetter, DeadLetterV1
from schemas.envelope import CloudEvent, stable_event_id


class TwoAndOneBad(Connector):
    name = "houkatsu"

    def read(self, checkpoints: Mapping[str, str]) -> Iterator[Item]:
        for i in (1, 2):
            yield Item(Checkpoint("f.csv", f"{i:08d}"), event=CloudEvent(
                id=stable_event_id("binding", i), source="urn:tsunagu:connector:houkatsu:C01",
                type="jp.tsunagu.person.observed.v1", time=datetime(2026, 1, 1, tzinfo=UTC),
                sourcerecord=f"houkatsu:{i}", data={"i": i}), key=f"houkatsu:{i}")
        yield Item(Checkpoint("f.csv", "00000003"), dead_letter=DeadLetter(
            source="houkatsu", where="f.csv:3", record="houkatsu:3", reason="invalid 受付日 (date)"),
            key="houkatsu:3", original=b"C01,3,not-a-date")


def read_all(bootstrap: str, topic: str) -> list[Any]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ce-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        meta = consumer.list_topics(topic, timeout=10)
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.topics[topic].partitions])
        out, idle = [], 0
        while idle < 10:
            msg = consumer.poll(0.5)
            if msg is None:
                idle += 1
                continue
            if msg.error() is None:
                out.append(msg)
                idle = 0
        return out
    finally:
        consumer.close()


def test_intake_and_dead_letters_parse_with_the_cloudevents_sdk(kafka: str, tmp_path: Path) -> None:
    """content-type is the event format (no correlation_id); both SDK parsers read id, type, source and data."""
    topics = Topics(f"ce{uuid.uuid4().hex[:6]}")
    ensure_topics(kafka, topics, 1)
    state = ConnectorState.in_dir(tmp_path)
    producer = make_producer(kafka)
    try:
        stats = ConnectorRunner(TwoAndOneBad(), state, producer, intake_topic=topics.intake,
                                deadletter_topic=topics.deadletter, seal=lambda b: "sealed:" + str(len(b))).run_once()
    finally:
        producer.close(timeout=5)
        state.dispose()
    assert (stats.published, stats.published_dead_letters) == (2, 1)

    parsed: dict[str, list[Any]] = {}
    for topic in (topics.intake, topics.deadletter):
        for msg in read_all(kafka, topic):
            headers = {k: v for k, v in (msg.headers() or [])}
            assert headers == {"content-type": CONTENT_TYPE.encode()}  # nothing else, no correlation_id
            event = from_kafka(KafkaMessage(headers=headers, key=msg.key(), value=msg.value()), JSONFormat())
            old = from_structured(V1KafkaMessage(headers=headers, key=msg.key(), value=msg.value()))
            assert old["id"] == event.get_id() and old["type"] == event.get_type()
            parsed.setdefault(topic, []).append(event)
    assert sorted(e.get_id() for e in parsed[topics.intake]) == sorted(stable_event_id("binding", i) for i in (1, 2))
    [dead] = parsed[topics.deadletter]
    assert dead.get_type() == DEADLETTER_TYPE and dead.get_source() == "urn:tsunagu:connector:houkatsu"
    data = DeadLetterV1.model_validate(dead.get_data())
    assert (data.stage, data.feed, data.reason) == ("connector", "houkatsu", "date")
    assert data.origin.scope == "f.csv" and data.origin.position == "00000003"
    assert data.original == "sealed:16"  # sealed by the runner, never in clear on the topic
