"""Connectors in a long-lived process: service runners, their polling loop, and ``tsunagu connector run``."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from sqlalchemy import delete, func, select

from connectors.contract import Connector
from connectors.runner import CheckpointRow, ConnectorRunner, ConnectorState, RunStats, make_producer
from hub import wiring
from hub.bootstrap import open_kafka
from hub.kafka.security import kafka_python_security
from hub.logging import get_logger
from hub.ops.deadletters import sealer_of
from hub.run.state import check_sources, state_folder
from hub.serve.metrics import FEEDS, FeedCollector, Metrics
from hub.settings import Settings
from schemas.codes import Feed

log = get_logger("tsunagu.serve")

# -- connectors in service mode -----------------------------------------------------------------------


#: failed relays in a row after which a runner replaces its producer (kafka-python's idempotent producer
#: can lose its producer id after a timed-out batch and then never recovers)
RECREATE_AFTER = 2


class ServiceRunner(ConnectorRunner):
    """A runner for a long-lived process: counts acknowledgements, one thread at a time, bounded memory.

    With a ``producer_factory``, a producer that failed ``RECREATE_AFTER`` relays in a row is closed
    and replaced. ``can_publish`` is False while relays fail and items wait in the outbox (readiness).
    """

    def __init__(self, connector: Connector, state: ConnectorState, producer: KafkaProducer | None, *,
                 intake_topic: str, deadletter_topic: str, metrics: Metrics | None = None,
                 seal: Callable[[bytes], str] | None = None,
                 producer_factory: Callable[[], KafkaProducer] | None = None) -> None:
        super().__init__(connector, state, producer, intake_topic=intake_topic, deadletter_topic=deadletter_topic,
                         seal=seal)
        self.metrics = metrics
        self.lock = threading.RLock()
        self.producer_factory = producer_factory
        self.failures = 0
        self.failing_since: float | None = None
        self.recreated = 0
        self._own_producer: KafkaProducer | None = None

    @property
    def can_publish(self) -> bool:
        """False while the last relay failed and something is waiting in this feed's outbox."""
        if self.failing_since is None:
            return True
        return self.state.pending(self.connector.name) == 0

    def _replace_producer(self) -> None:
        assert self.producer_factory is not None
        old, self.producer = self.producer, None
        if old is not None and old is self._own_producer:
            with contextlib.suppress(Exception):
                old.close(timeout=0)
        try:
            self.producer = self._own_producer = self.producer_factory()
        except Exception as exc:  # still unreachable: the next failed relay tries again
            log.warning("could not create a producer yet", connector=self.connector.name,
                        error_type=type(exc).__name__)
            return
        self.recreated += 1
        log.warning("producer replaced after failed relays", connector=self.connector.name, attempt=self.failures)

    def close_producer(self) -> None:
        """Close the producer this runner made for itself (a shared one is closed by its owner)."""
        if self._own_producer is not None:
            with contextlib.suppress(Exception):
                self._own_producer.close(timeout=10)

    def read_into_outbox(self) -> int:
        with self.lock:
            n = super().read_into_outbox()
            self.stats.event_ids.clear()  # the batch run's bookkeeping; unbounded in a service
            return n

    def relay(self, limit: int = 2000) -> int:
        with self.lock:
            events = self.stats.published
            try:
                n = super().relay(limit)
            except KafkaError:
                self.failures += 1
                self.failing_since = self.failing_since or time.monotonic()
                if self.producer_factory is not None and (self.failures >= RECREATE_AFTER or self.producer is None):
                    self._replace_producer()
                raise
            else:
                self.failures, self.failing_since = 0, None
                return n
            finally:
                if self.metrics is not None:
                    feed = self.connector.name
                    self.metrics.published.labels(feed=feed).inc(self.stats.published - events)

def connector_loop(runner: ConnectorRunner, interval_s: float, stop: threading.Event) -> None:
    """``run_forever`` until ``stop``; an unexpected error is logged (type only) and the round retried."""
    name = runner.connector.name
    try:
        while not stop.is_set():
            try:
                runner.run_forever(interval_s, stop)
            except Exception as exc:
                log.error("connector round failed; retrying", connector=name, error_type=type(exc).__name__)
                stop.wait(interval_s)
    finally:
        with contextlib.suppress(Exception):
            runner.connector.close()
        log.info("connector stopped", connector=name)


def service_connectors(sources: Path, settings: Settings) -> tuple[list[Connector], list[Connector]]:
    """(registry, case feeds) under ``sources``; the kodomo delivery folder is the webhook's (see
    :func:`kodomo_files`), so its items share the webhook's runner and outbox."""
    cases = [c for c in wiring.case_connectors(sources, settings) if c.name != Feed.KODOMO.value]
    return wiring.registry_connectors(sources), cases


def kodomo_files(sources: Path, secret: bytes) -> Connector | None:
    """The replay of ``sources/kodomo/*.json`` delivery files, exactly as ``tsunagu run`` reads them,
    checked with ``secret``: the one the webhook itself accepts (the sample secret only in the demo)."""
    if not (sources / "kodomo").is_dir():
        return None
    from connectors.kodomo import KodomoReplayConnector

    return KodomoReplayConnector(sources / "kodomo", secret)


def connector_named(name: str, sources: Path, settings: Settings) -> Connector | None:
    """The connector of one feed under ``sources`` (``None`` when its folder or database is missing)."""
    found = wiring.registry_connectors(sources) if name == Feed.REGISTRY.value else [
        c for c in wiring.case_connectors(sources, settings) if c.name == name
    ]
    return found[0] if found else None

def first_pass(runner: ConnectorRunner) -> None:
    try:
        runner.read_into_outbox()
        runner.relay()
    except KafkaError:
        pass  # logged by the runner; the thread retries
    except Exception as exc:
        log.error("connector round failed; retrying", connector=runner.connector.name, error_type=type(exc).__name__)


def forget_checkpoints(cstate: ConnectorState) -> int:
    """Embedded broker: a new broker is empty, so feeds are read again from the start (outboxes are kept)."""
    with cstate.sessions.begin() as s:
        n = s.scalar(select(func.count()).select_from(CheckpointRow)) or 0
        s.execute(delete(CheckpointRow))
    return int(n)

# -- one connector alone -----------------------------------------------------------------------------


class ConnectorNotFound(Exception):
    """The feed's folder (or database) is not under ``--sources``."""


def run_connector(settings: Settings, name: str, sources: Path, *, state: Path | None = None, once: bool = True,
                  poll_interval_s: float | None = None, stop: threading.Event | None = None,
                  metrics_host: str | None = None, metrics_port: int | None = None,
                  on_listening: Callable[[int], None] | None = None) -> dict[str, Any]:
    """``tsunagu connector run NAME``: one feed → outbox → Kafka; ``once`` reads to the end, else until ``stop``.

    What it reads, publishes and dead-letters, and its checkpoints, go to the connector state in ``state``
    (the same rows ``tsunagu serve``'s ``/ops`` and ``tsunagu status --state`` read when they share the
    folder). With ``metrics_port`` it also serves ``GET /metrics`` (the same per-feed series as the
    service: last success, records read, dead letters, outbox, published; bearer ``metrics_token``) and
    ``GET /healthz`` on ``metrics_host`` (default the staff host); ``on_listening`` gets the bound port.
    """
    check_sources(sources)
    if name not in FEEDS:
        raise ConnectorNotFound(f"unknown feed {name!r}; one of {', '.join(FEEDS)}")
    connector = connector_named(name, sources, settings)
    if connector is None:
        raise ConnectorNotFound(f"no {name} feed under {sources} (expected {sources / name})")
    stop = stop or threading.Event()
    with state_folder(state) as state_dir, open_kafka(settings) as kafka:
        bootstrap, topics = kafka.bootstrap, kafka.topics
        if kafka.embedded:
            log.warning("embedded broker: what this command publishes is gone when it ends", connector=name)
        cstate = ConnectorState.in_dir(state_dir)
        metrics = Metrics()
        producer = make_producer(bootstrap, client_id=f"tsunagu-connector-{name}", **kafka_python_security(bootstrap))
        runner = ServiceRunner(connector, cstate, producer, intake_topic=topics.intake,
                               deadletter_topic=topics.deadletter, seal=sealer_of(settings), metrics=metrics)
        http = None
        try:
            if metrics_port is not None:
                http = _metrics_listener(settings, metrics, cstate, runner, metrics_host, metrics_port)
                log.info("metrics listener started", connector=name, port=http.port)
                if on_listening is not None:
                    on_listening(http.port)
            if once:
                stats: RunStats = runner.run_once()
            else:
                connector_loop(runner, poll_interval_s or settings.poll_interval_s, stop)
                stats = runner.stats
            result = {"connector": name, **stats.as_dict(), "pending": cstate.pending(name)}
        finally:
            if http is not None:
                http.stop()
            with contextlib.suppress(Exception):
                connector.close()
            producer.close(timeout=10)
            cstate.dispose()
    return result


def _metrics_listener(settings: Settings, metrics: Metrics, cstate: ConnectorState, runner: ServiceRunner,
                      host: str | None, port: int) -> Any:
    """``/metrics`` and ``/healthz`` of a standalone connector, on a thread (a taken port fails here)."""
    from hub.http.app import make_staff_app
    from hub.http.server import ThreadedServer

    metrics.registry.register(FeedCollector(cstate, settings))

    def health() -> tuple[dict[str, Any], bool]:
        ok = runner.can_publish
        return {"status": "running", "publishing": {runner.connector.name: ok}}, ok

    app = make_staff_app(metrics, health, metrics_token=settings.metrics_token.get_secret_value())
    return ThreadedServer(app, host or settings.staff_host, port).start()


def summary_line(result: Mapping[str, Any]) -> str:
    return json.dumps(dict(result), ensure_ascii=False)
