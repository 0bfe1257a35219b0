"""Replay of hub-stage dead letters through the real broker: the original message goes back on its topic with its
identity, a fixed event flows exactly once, a still-bad one dead-letters again under the same id, all audited."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from connectors.runner import make_producer
from hub.bench.pipeline import consents_for, synthetic_events
from hub.bootstrap import Database
from hub.cli.main import app
from hub.kafka.broker import ensure_topics
from hub.kafka.service import HubService
from hub.kafka.topicreader import StoredMessage, read_at, read_topic
from hub.ops.deadletters import DeadLetterAccess, DeadLetterRow
from hub.ops.replay import replay_hub
from hub.pipeline import stages
from hub.pipeline.stages import HubCore
from hub.pipeline.tables import ProcessedEvent
from hub.settings import Settings
from hub.topics import Topics
from schemas.envelope import CloudEvent


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class RunningHub:
    """A HubService on its own thread and event loop, until ``stop``."""

    def __init__(self, core: HubCore, settings: Settings, bootstrap: str) -> None:
        self.service = HubService(core, settings, bootstrap, instance="replay")
        self.started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        await self.service.start()
        self.started.set()
        try:
            await self._stop.wait()
        finally:
            await self.service.stop()

    def __enter__(self) -> RunningHub:
        self._thread.start()
        assert self.started.wait(60), "the hub did not start"
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)


def test_hub_dead_letters_replay_once_with_their_identity(kafka: str, fast_settings: Settings, database: Database,
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = fast_settings.model_copy(update={"partitions": 1, "kafka_bootstrap": kafka})
    topics = Topics(settings.topic_prefix)
    ensure_topics(kafka, topics, 1)
    events = synthetic_events(5)
    fixed, still_bad = events[1], events[3]
    bad = {fixed.sourcerecord, still_bad.sourcerecord}
    real = stages.adapters.resolve_identity

    def resolve(s: Any, ev: CloudEvent, payload: Any) -> Any:
        if ev.sourcerecord in bad:
            raise RuntimeError("injected fault")
        return real(s, ev, payload)

    monkeypatch.setattr(stages.adapters, "resolve_identity", resolve)
    monkeypatch.setattr(HubCore, "BACKOFF_BASE_S", 0.001)
    monkeypatch.setattr(HubCore, "BACKOFF_CAP_S", 0.01)
    from consent.store import ConsentRepository

    with database.sessions.begin() as s:
        for consent in consents_for(events):
            ConsentRepository(s).add_version(consent, recorded_at=consent.version)

    def count(q: Any) -> int:
        with database.sessions() as s:
            return int(s.scalar(q) or 0)

    def household_done(ev: CloudEvent) -> bool:
        with database.sessions() as s:
            marker = s.get(ProcessedEvent, ("household", ev.source, ev.id))
            return marker is not None and marker.outcome != "dead"

    def row_of(ev: CloudEvent) -> DeadLetterRow:
        with database.sessions() as s:
            return s.scalars(select(DeadLetterRow).where(DeadLetterRow.event_id == ev.id)).one()

    def intake_count() -> int:
        return sum(1 for _ in read_topic(kafka, topics.intake))

    def team_ids() -> list[str]:
        return [CloudEvent.from_json_bytes(v).id for v in read_topic(kafka, topics.team)]

    producer = make_producer(kafka, "hub-replay-test")

    def publish(topic: str, partition: int, message: StoredMessage) -> None:
        producer.send(topic, key=message.key, value=message.value, headers=message.headers,
                      partition=partition).get(timeout=30)

    hub_rows = select(func.count()).select_from(DeadLetterRow).where(DeadLetterRow.stage == "hub")
    core = HubCore(database.sessions, topics)
    try:
        with RunningHub(core, settings, kafka):
            for ev in events:
                producer.send(topics.intake, key=ev.sourcerecord.encode(), value=ev.to_json_bytes())
            producer.flush(30)
            wait_for(lambda: count(hub_rows) == 2 and sum(household_done(e) for e in events) == 3,
                     "three events through and two hub dead letters filed")
            first, second = row_of(fixed), row_of(still_bad)
            assert (first.topic, first.partition, first.offset) == (topics.intake, 0, 1)

            bad.discard(fixed.sourcerecord)  # the code fix
            result = replay_hub([first], database.sessions, fetch=lambda t, p, o: read_at(kafka, t, p, o),
                                publish=publish, actor="test", wait_s=60)
            assert (result.republished, result.replayed, result.still_bad) == ([first.id], [first.id], [])
            assert household_done(fixed) and row_of(fixed).state == "replayed"
            assert intake_count() == len(events) + 1

            # the event has flowed: a second replay publishes nothing
            again = replay_hub([row_of(fixed)], database.sessions, fetch=lambda t, p, o: read_at(kafka, t, p, o),
                               publish=publish, actor="test", wait_s=5)
            assert (again.republished, again.already_flowed) == ([], [first.id])
            assert intake_count() == len(events) + 1

            # the still-bad one, through the CLI (`--feed`: every open dead letter of the feed)
            env = {"TSUNAGU_KAFKA_BOOTSTRAP": kafka, "TSUNAGU_TOPIC_PREFIX": settings.topic_prefix,
                   "TSUNAGU_HUB_GROUP": settings.hub_group, "TSUNAGU_PARTITIONS": "1", "TSUNAGU_LOG_LEVEL": "WARNING"}
            out = CliRunner().invoke(app, ["deadletter", "replay", "--feed", second.feed, "--database",
                                           f"sqlite:///{tmp_path / 'hub.sqlite'}", "--wait", "60", "--json"],
                                     env=env, catch_exceptions=False)
            assert out.exit_code == 0, out.output
            hub = json.loads(out.stdout)["hub"]
            assert (hub["republished"], hub["still_bad"], hub["replayed"]) == ([second.id], [second.id], [])
            wait_for(lambda: row_of(still_bad).occurrences == 2, "the dead letter filed again")
            assert count(hub_rows) == 2 and row_of(still_bad).id == second.id and row_of(still_bad).state == "open"
            assert row_of(still_bad).offset == second.offset  # named at its original position
    finally:
        producer.close(timeout=5)
    assert sorted(team_ids()) == sorted(e.id for e in events if e is not still_bad)  # each exactly once
    with database.sessions() as s:
        audited = [(a.dead_letter, a.action)
                   for a in s.scalars(select(DeadLetterAccess).order_by(DeadLetterAccess.seq))]
    assert audited == [(first.id, "replay"), (first.id, "replay.already_flowed"), (second.id, "replay")]
