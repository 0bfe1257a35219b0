"""A poison event never blocks a partition; what the hub publishes follows the CloudEvents Kafka binding."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage as CEKafkaMessage
from cloudevents.core.bindings.kafka import from_kafka
from cloudevents.core.formats.json import JSONFormat
from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import select

from connectors.runner import make_producer
from hub.bench.pipeline import consents_for, synthetic_events
from hub.bootstrap import Database
from hub.kafka.broker import ensure_topics
from hub.kafka.service import HubService
from hub.pipeline import stages
from hub.pipeline.stages import HubCore, RawMessage
from hub.pipeline.tables import HubDeadLetter, ProcessedEvent
from hub.settings import Settings
from hub.topics import Topics
from schemas.deadletter import REASON_CODES
from schemas.envelope import CloudEvent

STRUCTURED = b"application/cloudevents+json; charset=UTF-8"


def _fault(monkeypatch: pytest.MonkeyPatch, records: set[str], failures: int | None = None) -> dict[str, int]:
    """Make identity resolution fail for these records (always, or only the first ``failures`` times)."""
    calls: dict[str, int] = {}
    real = stages.adapters.resolve_identity

    def resolve(s: Any, ev: CloudEvent, payload: Any) -> Any:
        if ev.sourcerecord in records:
            calls[ev.sourcerecord] = calls.get(ev.sourcerecord, 0) + 1
            if failures is None or calls[ev.sourcerecord] <= failures:
                raise RuntimeError("injected fault")
        return real(s, ev, payload)

    monkeypatch.setattr(stages.adapters, "resolve_identity", resolve)
    monkeypatch.setattr(HubCore, "BACKOFF_BASE_S", 0.001)
    monkeypatch.setattr(HubCore, "BACKOFF_CAP_S", 0.01)
    return calls


def _batch(topics: Topics, events: list[CloudEvent]) -> list[RawMessage]:
    return [RawMessage(topics.intake, 2, 100 + i, ev.sourcerecord.encode(), ev.to_json_bytes())
            for i, ev in enumerate(events)]


def test_poison_event_is_retried_then_dead_lettered_with_its_offset_while_the_rest_flows(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """One always-failing event is isolated, tried RETRIES more times alone, then dead-lettered with
    topic, partition and offset; the other events of its batch are resolved and forwarded."""
    topics = Topics("poison")
    core = HubCore(database.sessions, topics)
    events = synthetic_events(6)
    poison = events[3]
    calls = _fault(monkeypatch, {poison.sourcerecord})

    written = core.process_intake(_batch(topics, events))

    resolved = [CloudEvent.from_json_bytes(m.value).id for m in written if m.topic == topics.resolved]
    assert sorted(resolved) == sorted(ev.id for ev in events if ev is not poison)
    [dead_event] = [json.loads(m.value) for m in written if m.topic == topics.deadletter]
    assert dead_event["type"] == "jp.tsunagu.deadletter.v1"
    dead = dead_event["data"]
    assert dead["origin"]["where"] == f"{topics.intake}:2:103"
    assert (dead["origin"]["topic"], dead["origin"]["partition"], dead["origin"]["offset"]) == (topics.intake, 2, 103)
    assert dead["stage"] == "hub" and dead["reason"] in REASON_CODES
    assert dead["event"] == poison.id and dead["detail"].startswith("internal error (RuntimeError)")
    # the batch of 6, then its half of 3 (events 3-5), then alone: its first try plus RETRIES retries
    assert calls[poison.sourcerecord] == 2 + 1 + HubCore.RETRIES
    with database.sessions() as s:
        [row] = s.scalars(select(HubDeadLetter)).all()
        assert (row.stage, row.event_id) == ("intake", poison.id)
        outcome = s.scalar(select(ProcessedEvent.outcome).where(ProcessedEvent.event_id == poison.id))
        assert outcome == "dead"
    assert "injected" not in dead["detail"]  # exception messages never reach operators


def test_transient_failure_is_retried_and_the_event_flows(database: Database,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """An event that fails twice and then succeeds is not dead-lettered: a retry within the bound handles it."""
    topics = Topics("transient")
    core = HubCore(database.sessions, topics)
    events = synthetic_events(1)
    _fault(monkeypatch, {events[0].sourcerecord}, failures=2)

    written = core.process_intake(_batch(topics, events))

    assert [m.topic for m in written] == [topics.resolved]
    with database.sessions() as s:
        assert s.scalars(select(HubDeadLetter)).all() == []


def test_a_dead_letter_filed_again_counts_on_its_row(database: Database) -> None:
    """The same dead letter again (a still-bad replay, named at its original position) counts in ``occurrences``
    of its row, also of a row filed before rows kept the dead letter's id; another dead letter adds a row."""
    topics = Topics("again")
    core = HubCore(database.sessions, topics)
    bad = [ev.model_copy(update={"type": "jp.tsunagu.nothing.v1"}) for ev in synthetic_events(2)]
    legacy, fresh = _batch(topics, bad)
    with database.sessions.begin() as s:  # as filed before this change: no dead-letter id
        s.add(HubDeadLetter(stage="intake", source="houkatsu", event_id=bad[0].id, record=None,
                            reason="unknown event type", at=stages.now()))

    def letters() -> list[tuple[str | None, int, bool]]:
        with database.sessions() as s:
            return sorted((r.event_id, r.occurrences, r.dead_letter is not None)
                          for r in s.scalars(select(HubDeadLetter)))

    def again(msg: RawMessage) -> None:  # what replay does before republishing: the 'dead' marker goes
        with database.sessions.begin() as s:
            s.query(ProcessedEvent).filter(ProcessedEvent.stage == "intake").delete()
        core.process_intake([msg])

    again(legacy)
    again(fresh)
    assert letters() == sorted([(bad[0].id, 2, True), (bad[1].id, 1, True)])
    again(legacy)
    again(fresh)
    assert letters() == sorted([(bad[0].id, 3, True), (bad[1].id, 2, True)])


def _read_back(bootstrap: str, topic: str, partitions: int, want: int) -> list[Any]:
    """Every message of the topic, read with confluent-kafka (manual assignment from the start)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"readback-{time.time_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        out: list[Any] = []
        deadline = time.monotonic() + 60
        while len(out) < want and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                out.append(msg)
        return out
    finally:
        consumer.close()


def test_hub_topics_are_structured_cloudevents_and_a_poison_event_does_not_block_the_partition(
        kafka: str, fast_settings: Settings, database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the real broker: with one poison event on a one-partition intake the later events still reach the
    team; resolved, team and dead-letter messages carry only the structured-mode content-type header and parse
    with the cloudevents SDK; the dead letter is a jp.tsunagu.deadletter.v1 event naming topic, partition, offset."""
    settings = fast_settings.model_copy(update={"partitions": 1})
    topics = Topics(settings.topic_prefix)
    ensure_topics(kafka, topics, 1)
    events = synthetic_events(5)
    poison = events[1]
    _fault(monkeypatch, {poison.sourcerecord})
    from consent.store import ConsentRepository

    with database.sessions.begin() as s:
        for consent in consents_for(events):
            ConsentRepository(s).add_version(consent, recorded_at=consent.version)
    core = HubCore(database.sessions, topics)

    async def run() -> None:
        service = HubService(core, settings, kafka, instance="poison")
        await service.start()
        try:
            producer = make_producer(kafka, "poison-test")
            for ev in events:
                producer.send(topics.intake, key=ev.sourcerecord.encode(), value=ev.to_json_bytes())
            producer.flush(30)
            producer.close()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with database.sessions() as s:
                    done = s.scalars(select(ProcessedEvent.event_id).where(ProcessedEvent.stage == "household")).all()
                if len(done) == len(events) - 1:
                    break
                await asyncio.sleep(0.1)
        finally:
            await service.stop()

    asyncio.run(run())

    team = _read_back(kafka, topics.team, 1, len(events) - 1)
    resolved = _read_back(kafka, topics.resolved, 1, len(events) - 1)
    [dead] = _read_back(kafka, topics.deadletter, 1, 1)
    for msg in [*team, *resolved, dead]:
        assert msg.headers() == [("content-type", STRUCTURED)]
        ce = from_kafka(CEKafkaMessage(headers=dict(msg.headers()), key=msg.key(), value=msg.value()), JSONFormat())
        assert ce.get_specversion() == "1.0" and ce.get_id() and ce.get_source()
    assert sorted(CloudEvent.from_json_bytes(m.value()).id for m in team) == sorted(
        ev.id for ev in events if ev is not poison)
    dl = from_kafka(CEKafkaMessage(headers=dict(dead.headers()), key=dead.key(), value=dead.value()), JSONFormat())
    assert dl.get_type() == "jp.tsunagu.deadletter.v1"
    data = dl.get_data()
    assert isinstance(data, dict)
    assert data["origin"]["where"] == f"{topics.intake}:0:1" and data["event"] == poison.id
    assert (data["origin"]["topic"], data["origin"]["partition"], data["origin"]["offset"]) == (topics.intake, 0, 1)
