"""Broker outages: capped jittered backoff, retry until a deadline, a one-line error when the broker never comes."""

from __future__ import annotations

import random

import pytest
from kafka.errors import KafkaConnectionError, KafkaTimeoutError
from typer.testing import CliRunner

from hub.cli.main import app
from hub.kafka.outage import Backoff, BrokerUnavailable, retry_outage


def test_backoff_is_capped_and_jittered() -> None:
    """Delays grow exponentially, never exceed the cap, and are spread (jitter) rather than equal."""
    b = Backoff(base_s=0.5, cap_s=10.0, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(40)]
    assert all(0 < d <= 10.0 for d in delays)
    assert delays[0] <= 0.5 and max(delays) > 5.0
    assert len({round(d, 6) for d in delays[10:]}) > 20  # capped ones still differ


def test_retry_rides_out_a_60_second_outage() -> None:
    """A call failing for 70 (simulated) seconds succeeds once the broker is back, without giving up early, and
    on_failure ran after each failure (where the batch run recreates its producer)."""
    now = [0.0]
    failures: list[str] = []

    def call() -> str:
        if now[0] < 70:
            raise KafkaTimeoutError("down")
        return "done"

    def sleep(s: float) -> None:
        now[0] += s

    result = retry_outage(call, what="test", give_up_after_s=600, sleep=sleep, clock=lambda: now[0],
                          on_failure=lambda exc: failures.append(type(exc).__name__))
    assert result == "done" and now[0] >= 70
    assert failures and set(failures) == {"KafkaTimeoutError"}


def test_retry_gives_up_after_the_deadline_with_one_line() -> None:
    """A broker that never comes back ends in BrokerUnavailable whose message names the step, not a traceback."""
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    def down() -> None:
        raise KafkaConnectionError()

    with pytest.raises(BrokerUnavailable, match="unreachable for 30 s while connecting"):
        retry_outage(down, what="connecting to x", give_up_after_s=30, sleep=sleep, clock=lambda: now[0])


def test_other_errors_are_not_retried() -> None:
    """A bug (ValueError) is not mistaken for an outage."""
    calls = []

    def bad() -> None:
        calls.append(1)
        raise ValueError("bug")

    with pytest.raises(ValueError):
        retry_outage(bad, what="x", give_up_after_s=60, sleep=lambda s: None)
    assert calls == [1]


def test_unreachable_broker_at_start_is_one_line(tmp_path, monkeypatch: pytest.MonkeyPatch, samples_dir) -> None:
    """`tsunagu run` against a broker nobody listens on exits 2 with one line naming it, no traceback."""
    from hub.kafka.broker import free_port

    monkeypatch.setenv("TSUNAGU_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("TSUNAGU_BROKER_CONNECT_S", "2")
    result = CliRunner().invoke(app, ["run", "--sources", str(samples_dir), "--once", "--export",
                                      str(tmp_path / "out"), "--state", str(tmp_path / "state"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "unreachable" in result.output and "while connecting to 127.0.0.1" in result.output
    assert "Traceback" not in result.output
