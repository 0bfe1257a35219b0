"""The embedded broker: started on a free loopback port, topics created, and always stopped."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub.kafka.broker import EmbeddedBroker, ensure_topics
from hub.topics import Topics

ROOT = Path(__file__).resolve().parents[2]


def _accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def test_starts_creates_topics_and_stops() -> None:
    """The broker accepts connections once started, gets every topic, and is gone after stop()."""
    from kafka import KafkaAdminClient

    broker = EmbeddedBroker().start()
    try:
        assert _accepting(broker.port)
        ensure_topics(broker.bootstrap, Topics("x"), partitions=4)
        ensure_topics(broker.bootstrap, Topics("x"), partitions=4)  # idempotent
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            described = admin.describe_topics(Topics("x").all())
        finally:
            admin.close()
        assert {t["name"] for t in described} == set(Topics("x").all())
        assert all(len(t["partitions"]) == 4 for t in described)
    finally:
        broker.stop()
    assert not broker.running
    assert not _accepting(broker.port)


def _run_until_broker_started(tmp_path: Path, samples_dir: Path) -> tuple[subprocess.Popen[str], int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSUNAGU_")}
    env["TSUNAGU_LOG_LEVEL"] = "INFO"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli.main", "run", "--sources", str(samples_dir), "--once", "--export",
         str(tmp_path / "out"), "--quiet"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "embedded broker started":
            return proc, int(entry["port"])
    proc.kill()
    pytest.fail("the run never reported its embedded broker")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_broker_stops_when_the_command_is_interrupted(tmp_path: Path, samples_dir: Path, sig: int) -> None:
    """Ctrl-C or SIGTERM during a run stops the embedded broker with it (no orphan left listening)."""
    proc, port = _run_until_broker_started(tmp_path, samples_dir)
    assert _accepting(port)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 10
    while _accepting(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _accepting(port)
