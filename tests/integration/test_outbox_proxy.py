"""The connector outbox under a broken connection: a TCP proxy between the producer and a real broker.

The broker advertises the proxy's port, so every connection a Kafka client makes (bootstrap
and the leader connections it learns from metadata) goes through the proxy, and cutting the
proxy really cuts the client off.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaError
from sqlalchemy import select

from connectors.contract import Checkpoint, Connector, Item
from connectors.runner import ConnectorRunner, ConnectorState, OutboxRow
from hub.kafka.broker import EmbeddedBroker, ensure_topics, free_port
from hub.kafka.topicreader import read_topic
from hub.topics import Topics
from schemas.envelope import CloudEvent, stable_event_id

JST = timezone(timedelta(hours=9))
KEYS = 5


class CutProxy:
    """A loopback TCP proxy that can be cut (every socket closed, new connections refused) and restored."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._open = threading.Event()
        self.connections = 0

    def start(self) -> CutProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener = listener
        self._open.set()
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True, name="proxy-accept")
        self._acceptor.start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while self._open.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                if not self._open.is_set():  # cut while connecting
                    client.close()
                    upstream.close()
                    return
                self._socks |= {client, upstream}
                self.connections += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True, name="proxy-pump").start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Close every proxied socket and the listener: the client sees resets, then refusals."""
        self._open.clear()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            socks, self._socks = self._socks, set()
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def refuses(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return True
        return False


class GrowingFeed(Connector):
    """``n`` events in one scope, keys spread over a few persons; ids carry a per-instance nonce.

    A runner that re-read instead of relaying its outbox would publish the new instance's ids,
    so "the ids it had before the cut" is checked by relaying with a fresh instance.
    """

    name = "proxytest"

    def __init__(self, n: int) -> None:
        self.n = n
        self.nonce = uuid.uuid4().hex

    def read(self, checkpoints: Mapping[str, str]) -> Iterator[Item]:
        start = int(checkpoints.get("only", "0"))
        for i in range(start + 1, self.n + 1):
            key = f"proxytest:{i % KEYS}"
            yield Item(
                Checkpoint("only", f"{i:08d}"),
                event=CloudEvent(
                    id=stable_event_id(self.name, i, self.nonce),
                    source="urn:tsunagu:connector:proxytest",
                    type="jp.tsunagu.person.observed.v1",
                    time=datetime(2026, 1, 1, tzinfo=JST) + timedelta(minutes=i),
                    sourcerecord=key,
                    data={"i": i},
                ),
                key=key,
            )


def quick_producer(bootstrap: str) -> KafkaProducer:
    """``make_producer``'s settings, with timeouts short enough for a test to see a failure quickly."""
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="tsunagu-proxytest",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        batch_size=256 * 1024,
        request_timeout_ms=1000,
        delivery_timeout_ms=2000,
        max_block_ms=2000,
        reconnect_backoff_ms=20,
        reconnect_backoff_max_ms=200,
    )


@pytest.fixture
def proxied() -> Iterator[tuple[CutProxy, str]]:
    """A dedicated embedded broker that advertises a proxy's port; yields (proxy, bootstrap via the proxy)."""
    with proxied_embedded_broker() as pair:
        yield pair


@contextlib.contextmanager
def proxied_embedded_broker() -> Iterator[tuple[CutProxy, str]]:
    """An embedded broker that advertises a proxy's port (every client connection goes through the proxy)."""
    broker_port = free_port()
    proxy = CutProxy(broker_port).start()
    broker = EmbeddedBroker(broker_port, advertised_port=proxy.port).start()
    try:
        yield proxy, broker.bootstrap
    finally:
        proxy.cut()
        broker.stop()


def outbox_ids(state: ConnectorState) -> list[str]:
    with state.sessions() as s:
        rows = s.scalars(select(OutboxRow).order_by(OutboxRow.seq)).all()
        return [CloudEvent.from_json_bytes(r.value).id for r in rows]


def test_outbox_keeps_reading_while_cut_and_relays_once_restored(proxied: tuple[CutProxy, str],
                                                                 tmp_path: Path) -> None:
    """While cut nothing is acknowledged and the checkpoint holds; once restored every id arrives once."""
    proxy, bootstrap = proxied
    topics = Topics(f"px{uuid.uuid4().hex[:6]}")
    ensure_topics(bootstrap, topics, 3)
    state = ConnectorState.in_dir(tmp_path)
    producer = quick_producer(bootstrap)
    try:
        feed = GrowingFeed(30)
        runner = ConnectorRunner(feed, state, producer, intake_topic=topics.intake, deadletter_topic=topics.deadletter)
        before = runner.run_once()
        assert before.published == 30 and state.pending() == 0
        assert state.published_positions(feed.name) == {"only": "00000030"}
        assert proxy.connections > 0  # the producer really talked through the proxy

        proxy.cut()
        assert proxy.refuses()
        feed.n = 55
        assert runner.read_into_outbox() == 25
        with pytest.raises(KafkaError):
            runner.relay()
        feed.n = 80  # the connector keeps reading into the outbox while the broker is away
        assert runner.read_into_outbox() == 25
        with pytest.raises(KafkaError):
            runner.relay()
        assert runner.stats.published == 30  # nothing acknowledged meanwhile
        assert state.pending(feed.name) == 50
        assert state.read_positions(feed.name) == {"only": "00000080"}
        assert state.published_positions(feed.name) == {"only": "00000030"}
        held = outbox_ids(state)
        assert len(held) == len(set(held)) == 50

        proxy.start()
        fresh = GrowingFeed(80)  # another nonce: re-reading would publish other ids
        after = ConnectorRunner(fresh, state, producer, intake_topic=topics.intake,
                                deadletter_topic=topics.deadletter).run_once()
        assert after.read == 0 and after.published == 50
        assert state.pending() == 0
        assert state.published_positions(feed.name) == {"only": "00000080"}
    finally:
        producer.close(timeout=5)
        state.dispose()

    events = [CloudEvent.from_json_bytes(v) for v in read_topic(bootstrap, topics.intake)]
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids)) == 80  # every event exactly once
    assert set(held) <= set(ids)  # relayed with the ids it had before the cut
    assert not {stable_event_id(feed.name, i, fresh.nonce) for i in range(31, 81)} & set(ids)
    by_key: dict[str, list[int]] = {}
    for e in events:
        by_key.setdefault(e.sourcerecord, []).append(int(e.data["i"]))
    assert len(by_key) == KEYS
    for seq in by_key.values():
        assert seq == sorted(seq)  # in order per key
