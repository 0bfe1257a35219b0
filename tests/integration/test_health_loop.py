"""Health rules on a real system: a feed that stops and a broker cut (TCP proxy) raise ops alerts that clear."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry, generate_latest
from structlog.testing import capture_logs
from test_outbox_proxy import CutProxy, GrowingFeed, proxied, quick_producer

from connectors.runner import ConnectorRunner, ConnectorState
from hub.bootstrap import Database
from hub.kafka.broker import ensure_topics
from hub.ops.health import HealthSettings
from hub.ops.monitor import HealthLoop, Notifier, take_reading
from hub.ops.readings import consumer_lags
from hub.settings import Settings
from hub.topics import Topics

__all__ = ["proxied"]


class _Sink(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Sink.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def sink() -> Iterator[str]:
    _Sink.received = []
    server = HTTPServer(("127.0.0.1", 0), _Sink)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/notify"
    finally:
        server.shutdown()


def catch_up(bootstrap: str, group: str, topic: str) -> None:
    """Commit ``group``'s offsets at the end of every partition of ``topic`` (as a consumer that caught up)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or set())]
        consumer.assign(tps)
        consumer.seek_to_end(*tps)
        consumer.commit({tp: OffsetAndMetadata(consumer.position(tp), "", -1) for tp in tps})
    finally:
        consumer.close()


def test_stopped_feed_and_cut_broker_raise_and_clear(proxied: tuple[CutProxy, str], tmp_path: Path,
                                                     sink: str) -> None:
    """Silence past the interval → feed_silent; a cut → broker_unreachable and a growing outbox; all clear after."""
    proxy, bootstrap = proxied
    topics = Topics(f"hl{uuid.uuid4().hex[:6]}")
    ensure_topics(bootstrap, topics, 1)
    settings = Settings(topic_prefix=topics.prefix, hub_group=f"g-{topics.prefix}")
    state = ConnectorState.in_dir(tmp_path / "state")
    db = Database.open(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    producer = quick_producer(bootstrap)
    clock = {"now": datetime.now(UTC)}
    feed = GrowingFeed(10)
    registry = CollectorRegistry()
    loop = HealthLoop(
        lambda: take_reading(db.sessions, state, lambda: consumer_lags(bootstrap, settings, topics), [feed.name],
                             started=clock["now"], now=clock["now"]),
        HealthSettings({feed.name: 60.0}, growth_checks=3), 1.0, registry=registry, notify=Notifier(sink))
    try:
        runner = ConnectorRunner(feed, state, producer, intake_topic=topics.intake, deadletter_topic=topics.deadletter)
        runner.run_once()
        clock["now"] = datetime.now(UTC)
        assert loop.check() == []  # delivered just now; lag readable

        # the feed stops: two minutes later (expected ≤ 60 s) it is silent
        clock["now"] += timedelta(seconds=120)
        with capture_logs() as logs:
            raised = loop.check()
        assert [(t.kind, t.alert.rule) for t in raised] == [("raised", "feed_silent")]
        assert any(e["event"] == "health alert raised" and e["rule"] == "feed_silent" for e in logs)
        assert f'tsunagu_health_alert{{rule="feed_silent",subject="{feed.name}"}} 1.0' in \
            generate_latest(registry).decode()
        assert [a.rule for a, _ in loop.alerts()] == ["feed_silent"]

        # it delivers again: cleared
        feed.n = 15
        runner.run_once()
        clock["now"] = datetime.now(UTC)
        cleared = loop.check()
        assert [(t.kind, t.alert.rule) for t in cleared] == [("cleared", "feed_silent")]
        assert loop.alerts() == []

        # the broker is cut: lags unreadable, and the outbox grows while the feed keeps reading
        proxy.cut()
        kinds: set[str] = set()
        for n in (20, 25, 30):
            feed.n = n
            runner.read_into_outbox()
            with pytest.raises(KafkaError):
                runner.relay()
            clock["now"] += timedelta(seconds=10)
            kinds |= {t.alert.rule for t in loop.check() if t.kind == "raised"}
        assert kinds == {"broker_unreachable", "outbox_growing"}

        # restored: the outbox drains, the lag is readable again, both alerts clear by themselves; nobody
        # consumes the intake in this test, so the hub group's lag (10, 15, now 30) is reported as growing
        proxy.start()
        runner.relay()
        clock["now"] = datetime.now(UTC)
        changed = {(t.kind, t.alert.rule) for t in loop.check()}
        assert changed == {("cleared", "broker_unreachable"), ("cleared", "outbox_growing"), ("raised", "lag_growing")}

        # the hub group catches up (commits to the end): the lag alert clears too
        catch_up(bootstrap, settings.hub_group, topics.intake)
        clock["now"] = datetime.now(UTC)
        assert {(t.kind, t.alert.rule) for t in loop.check()} == {("cleared", "lag_growing")}
        assert loop.alerts() == []
    finally:
        producer.close(timeout=5)
        state.dispose()
        db.close()

    states = [(m["state"], m["rule"]) for m in _Sink.received]
    assert ("raised", "feed_silent") in states and ("cleared", "feed_silent") in states
    assert ("raised", "outbox_growing") in states and ("cleared", "broker_unreachable") in states
    for m in _Sink.received:  # codes, feed names and counts only
        assert set(m) == {"source", "kind", "state", "rule", "subject", "message", "value", "threshold", "at"}
