"""A service runner whose producer cannot recover replaces it, and says it cannot publish meanwhile (readiness)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kafka.errors import KafkaError, KafkaTimeoutError

from connectors.runner import ConnectorState
from hub.serve.feeds import RECREATE_AFTER, ServiceRunner
from integration.test_outbox_proxy import GrowingFeed


class _Done:
    def get(self, timeout: float | None = None) -> None:
        return None


class BrokenProducer:
    """Like a kafka-python idempotent producer that lost its producer id: every send fails, forever."""

    def __init__(self) -> None:
        self.closed = False

    def send(self, *_a: Any, **_k: Any) -> Any:
        raise KafkaTimeoutError("producer id lost")

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


class GoodProducer(BrokenProducer):
    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def send(self, *_a: Any, **_k: Any) -> Any:
        self.sent += 1
        return _Done()


def test_runner_replaces_a_producer_that_never_recovers(tmp_path: Path) -> None:
    """After RECREATE_AFTER failed relays the producer is replaced by a new one from the factory, the outbox then
    drains, and can_publish is False exactly while relays fail with items waiting."""
    state = ConnectorState.in_dir(tmp_path)
    made: list[GoodProducer] = []

    def factory() -> Any:
        made.append(GoodProducer())
        return made[-1]

    runner = ServiceRunner(GrowingFeed(5), state, BrokenProducer(), intake_topic="i",  # type: ignore[arg-type]
                           deadletter_topic="d", producer_factory=factory)
    try:
        runner.read_into_outbox()
        assert runner.can_publish  # nothing failed yet
        for _ in range(RECREATE_AFTER):
            with pytest.raises(KafkaError):
                runner.relay()
            assert not runner.can_publish
        assert len(made) == 1 and runner.producer is made[0]
        assert runner.relay() == 5
        assert runner.can_publish and state.pending() == 0 and made[0].sent == 5
    finally:
        state.dispose()


def test_failed_relay_with_an_empty_outbox_is_still_ready(tmp_path: Path) -> None:
    """A failure with nothing waiting does not make the feed unready (nothing cannot be published)."""
    state = ConnectorState.in_dir(tmp_path)
    runner = ServiceRunner(GrowingFeed(0), state, None, intake_topic="i", deadletter_topic="d")
    try:
        runner.failing_since = 1.0
        assert runner.can_publish
    finally:
        state.dispose()
