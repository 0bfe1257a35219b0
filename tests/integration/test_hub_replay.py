"""Replay of hub-stage dead letters through the real broker: the original message goes back on its topic with its
identity, a fixed event flows exactly once, a still-bad one dead-letters again under the same id, all audited."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import func, select
from typer.testing import CliRunner

from connectors.runner import CE_HEADERS, ConnectorState, make_producer
from connectors.sealing import Sealer
from hub.bench.pipeline import consents_for, synthetic_events
from hub.bootstrap import Database
from hub.cli.main import app
from hub.http.ops import make_ops_router
from hub.kafka.broker import EmbeddedBroker, ensure_topics
from hub.kafka.service import REPLAY_HEADER, HubService
from hub.kafka.topicreader import StoredMessage, read_at, read_topic
from hub.ops.deadletters import DeadLetterAccess, DeadLetterRow
from hub.ops.replay import replay_hub
from hub.pipeline import stages
from hub.pipeline.stages import HubCore
from hub.pipeline.tables import HubDeadLetter, ProcessedEvent
from hub.serve.metrics import StoreCollector
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


def fail_identity_of(monkeypatch: pytest.MonkeyPatch, bad: set[str]) -> None:
    """Identity resolution fails (an injected fault) for the records in ``bad``, until they leave it."""
    real = stages.adapters.resolve_identity

    def resolve(s: Any, ev: CloudEvent, payload: Any) -> Any:
        if ev.sourcerecord in bad:
            raise RuntimeError("injected fault")
        return real(s, ev, payload)

    monkeypatch.setattr(stages.adapters, "resolve_identity", resolve)
    monkeypatch.setattr(HubCore, "BACKOFF_BASE_S", 0.001)
    monkeypatch.setattr(HubCore, "BACKOFF_CAP_S", 0.01)


def add_consents(database: Database, events: list[CloudEvent]) -> None:
    from consent.store import ConsentRepository

    with database.sessions.begin() as s:
        for consent in consents_for(events):
            ConsentRepository(s).add_version(consent, recorded_at=consent.version)


def test_hub_dead_letters_replay_once_with_their_identity(kafka: str, fast_settings: Settings, database: Database,
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dead letters kept without their original (no key set) are replayed from the topic at their position."""
    settings = fast_settings.model_copy(update={"partitions": 1, "kafka_bootstrap": kafka})
    topics = Topics(settings.topic_prefix)
    ensure_topics(kafka, topics, 1)
    events = synthetic_events(5)
    fixed, still_bad = events[1], events[3]
    bad = {fixed.sourcerecord, still_bad.sourcerecord}
    fail_identity_of(monkeypatch, bad)
    add_consents(database, events)

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
            assert first.original is None  # no TSUNAGU_DEADLETTER_KEY: nothing kept, the topic is read

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
            assert count(select(func.count()).select_from(HubDeadLetter)) == 2  # counted again, not added
            assert count(select(func.sum(HubDeadLetter.occurrences))) == 3
            assert row_of(still_bad).offset == second.offset  # named at its original position
    finally:
        producer.close(timeout=5)
    assert sorted(team_ids()) == sorted(e.id for e in events if e is not still_bad)  # each exactly once
    with database.sessions() as s:
        audited = [(a.dead_letter, a.action)
                   for a in s.scalars(select(DeadLetterAccess).order_by(DeadLetterAccess.seq))]
    assert audited == [(first.id, "replay"), (first.id, "replay.already_flowed"), (second.id, "replay")]


HUB_DEAD = re.compile(r'^tsunagu_hub_dead_letters_total\{feed="([^"]+)",stage="([^"]+)"\} ([0-9.]+)$', re.M)


def test_hub_dead_letters_replay_from_their_kept_original_after_the_broker_is_gone(
        fast_settings: Settings, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a dead-letter key the hub keeps each dead letter's message sealed (never plaintext in the database);
    after its embedded broker stopped, a fresh broker has none of it, yet replay works from the kept bytes: the
    fixed event flows once, the still-bad one dead-letters again under the same id and is counted once."""
    key = Sealer.new_key()
    sealer = Sealer(key)
    settings = fast_settings.model_copy(update={"partitions": 1})
    topics = Topics(settings.topic_prefix)
    events = synthetic_events(5, start=100)
    fixed, still_bad = events[1], events[3]
    bad = {fixed.sourcerecord, still_bad.sourcerecord}
    fail_identity_of(monkeypatch, bad)
    add_consents(database, events)
    core = HubCore(database.sessions, topics, seal=sealer.seal)

    def rows() -> dict[str | None, DeadLetterRow]:
        with database.sessions() as s:
            return {r.event_id: r for r in s.scalars(select(DeadLetterRow).where(DeadLetterRow.stage == "hub"))}

    def hub_letters() -> list[tuple[str | None, int]]:
        with database.sessions() as s:
            return sorted((r.event_id, r.occurrences) for r in s.scalars(select(HubDeadLetter)))

    def flowed(ev: CloudEvent) -> bool:
        with database.sessions() as s:
            marker = s.get(ProcessedEvent, ("household", ev.source, ev.id))
            return marker is not None and marker.outcome != "dead"

    first_broker = EmbeddedBroker().start()
    try:
        ensure_topics(first_broker.bootstrap, topics, 1)
        producer = make_producer(first_broker.bootstrap, "hub-replay-kept-1")
        with RunningHub(core, settings.model_copy(update={"kafka_bootstrap": first_broker.bootstrap}),
                        first_broker.bootstrap):
            for ev in events:
                producer.send(topics.intake, key=ev.sourcerecord.encode(), value=ev.to_json_bytes(),
                              headers=list(CE_HEADERS))
            producer.flush(30)
            wait_for(lambda: len(rows()) == 2 and sum(flowed(e) for e in events) == 3,
                     "three events through and two hub dead letters filed")
        producer.close(timeout=5)
    finally:
        first_broker.stop()  # the embedded broker and every message it had are gone

    kept = rows()
    first, second = kept[fixed.id], kept[still_bad.id]
    assert first.original is not None and first.original_key is not None
    assert sealer.open(first.original) == fixed.to_json_bytes()  # the message as it was on the topic
    assert sealer.open(first.original_key) == fixed.sourcerecord.encode()
    assert hub_letters() == sorted([(fixed.id, 1), (still_bad.id, 1)])

    # sealed: neither the message nor a value only it holds is readable in the database's files
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("hub.sqlite*"))
    phone = str(still_bad.data["subject"]["phone"]).encode()
    assert phone in sealer.open(second.original or "") and phone not in stored
    assert fixed.to_json_bytes() not in stored and still_bad.to_json_bytes() not in stored

    # the original as `show --raw` gives it: admin token only, audited
    env = {"TSUNAGU_DEADLETTER_KEY": key, "TSUNAGU_API_TOKENS": json.dumps({"admin-token-0123456789": "admin"}),
           "TSUNAGU_LOG_LEVEL": "WARNING"}
    show = ["deadletter", "show", first.id, "--raw", "--database", f"sqlite:///{tmp_path / 'hub.sqlite'}"]
    refused = CliRunner().invoke(app, show, env=env)
    assert refused.exit_code == 1 and "admin" in refused.output
    raw = CliRunner().invoke(app, [*show, "--token", "admin-token-0123456789"], env=env)
    assert raw.exit_code == 0 and raw.stdout_bytes == fixed.to_json_bytes()
    with database.sessions() as s:
        assert [(a.dead_letter, a.action) for a in s.scalars(select(DeadLetterAccess))] == [(first.id, "show_raw")]

    second_broker = EmbeddedBroker().start()
    try:
        bootstrap = second_broker.bootstrap
        ensure_topics(bootstrap, topics, 1)
        assert read_at(bootstrap, topics.intake, 0, first.offset or 0) is None  # the topic lost it
        producer = make_producer(bootstrap, "hub-replay-kept-2")

        def publish(topic: str, partition: int, message: StoredMessage) -> None:
            producer.send(topic, key=message.key, value=message.value, headers=message.headers,
                          partition=partition).get(timeout=30)

        def fetch(t: str, p: int, o: int) -> StoredMessage | None:
            return read_at(bootstrap, t, p, o)

        with RunningHub(core, settings.model_copy(update={"kafka_bootstrap": bootstrap}), bootstrap):
            bad.discard(fixed.sourcerecord)  # the code fix
            result = replay_hub([first, second], database.sessions, fetch=fetch, publish=publish, actor="test",
                                open_sealed=sealer.open, wait_s=60)
            assert (result.republished, result.not_found) == ([first.id, second.id], [])
            assert (result.replayed, result.still_bad) == ([first.id], [second.id])
            wait_for(lambda: rows()[still_bad.id].occurrences == 2, "the still-bad one filed again")
            again = replay_hub([rows()[fixed.id]], database.sessions, fetch=fetch, publish=publish, actor="test",
                               open_sealed=sealer.open, wait_s=5)
            assert (again.republished, again.already_flowed) == ([], [first.id])
        producer.close(timeout=5)
        intake = [read_at(bootstrap, topics.intake, 0, offset) for offset in (0, 1, 2)]
        team = [CloudEvent.from_json_bytes(v).id for v in read_topic(bootstrap, topics.team)]
    finally:
        second_broker.stop()

    assert intake[2] is None  # published once each
    assert [(m.key, m.value) for m in intake if m is not None] == [
        (fixed.sourcerecord.encode(), fixed.to_json_bytes()),
        (still_bad.sourcerecord.encode(), still_bad.to_json_bytes())]  # key and value as they were
    assert [dict(m.headers) for m in intake if m is not None] == [
        {**dict(CE_HEADERS), REPLAY_HEADER: f"{topics.intake}:0:{letter.offset}".encode()}
        for letter in (first, second)]
    assert team == [fixed.id]  # the fixed event flowed, exactly once
    after = rows()
    assert set(after) == {fixed.id, still_bad.id} and after[still_bad.id].id == second.id
    assert (after[fixed.id].state, after[still_bad.id].state) == ("replayed", "open")
    assert hub_letters() == sorted([(fixed.id, 1), (still_bad.id, 2)])  # counted again, not added

    # /metrics and /ops count each distinct hub dead letter once
    cstate = ConnectorState.in_dir(tmp_path / "state")
    try:
        registry = CollectorRegistry()
        registry.register(StoreCollector(database.sessions, cstate, settings))
        metrics = generate_latest(registry).decode()
        ops_app = FastAPI()
        ops_app.include_router(make_ops_router(database.sessions, cstate, topics, settings=settings))
        with TestClient(ops_app) as client:
            ops = client.get("/ops.json").json()
    finally:
        cstate.dispose()
    assert sum(float(m[2]) for m in HUB_DEAD.findall(metrics)) == 2
    assert sum(f["hub_dead_letters"] for f in ops["feeds"]) == 2
    assert ops["dead_letters_total"] == 2
