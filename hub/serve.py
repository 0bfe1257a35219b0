"""Service mode: ``tsunagu serve`` — the hub, the kodomo webhook and every file/DB feed, until SIGTERM.

One process, one event loop:

* the hub (``HubService``: both FastStream stages) on the configured cluster, or on the
  embedded broker when ``TSUNAGU_KAFKA_BOOTSTRAP`` is empty;
* an HTTP server (uvicorn, programmatic, in the same loop): ``POST /webhooks/kodomo``
  (signed deliveries: written to the connector outbox and relayed to Kafka, acknowledged by
  the broker *before* the 2xx), ``GET /healthz``, ``GET /metrics`` (Prometheus; counts only),
  ``GET /ops`` / ``GET /ops.json`` (the operations view, ``hub.ops``: counts and codes only), and
  the coordinators' workspace (``hub.workspace``: /login, /alerts, /households/…, /consents, the
  consent API under /api/ …; /ops behind the ops/admin roles) mounted at ``/``;
* every file / database feed found under ``--sources`` in a background thread
  (``ConnectorRunner.run_forever``): file feeds re-scan their folders and the shogai database
  is polled every ``poll_interval_s``. The registry is read first, as in the batch run. The
  ``kodomo/`` folder of sample deliveries is not replayed: in service mode kodomo arrives by
  webhook (``tsunagu connector run kodomo`` replays a folder).

SIGTERM / SIGINT (or ``HubServer.request_stop()``) stops without losing work: the HTTP server
stops accepting and finishes the requests in flight, connector threads finish their round
(what they read is in the outbox, relayed or kept for the next start), with the embedded
broker the hub first drains what is already on the topics (the broker keeps nothing once
stopped), the hub's in-flight batches finish (FastStream's graceful stop), producers flush,
and the embedded broker stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from kafka import KafkaProducer
from kafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from connectors.contract import Connector, Item
from connectors.kodomo import WEBHOOK_PATH, KodomoWebhook, SqlLedger, make_router
from connectors.runner import CheckpointRow, ConnectorRunner, ConnectorState, OutboxRow, RunStats, make_producer
from hub import wiring
from hub.broker import Topics, ensure_topics, kafka_cluster
from hub.db import make_engine, make_sessionmaker
from hub.logging import get_logger
from hub.migrate import database_url_for, upgrade
from hub.pipeline import HOUSEHOLD, INTAKE, HubCore, RawMessage
from hub.run import check_sources, state_folder
from hub.service import HubService
from hub.settings import Settings
from hub.store import HubDeadLetter, HubOutbox
from hub.topicreader import group_lag
from schemas.codes import Feed

log = get_logger("tsunagu.serve")

#: the feeds ``tsunagu connector run NAME`` knows (folder names under ``--sources``)
FEEDS: tuple[str, ...] = tuple(f.value for f in Feed)


# -- metrics -----------------------------------------------------------------------------------------


class Metrics:
    """Prometheus metrics of one process; label values are feed and stage names only."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.published = Counter(
            "tsunagu_events_published", "Events a connector published and the broker acknowledged",
            ["feed"], registry=self.registry,
        )
        self.dead_letters = Counter(
            "tsunagu_dead_letters", "Dead letters a connector published and the broker acknowledged",
            ["feed"], registry=self.registry,
        )
        self.hub_processed = Counter(
            "tsunagu_hub_processed", "Messages this hub instance handled durably (batches committed)",
            ["stage"], registry=self.registry,
        )
        self.webhook = Counter(
            "tsunagu_webhook_deliveries", "kodomo webhook deliveries answered, by HTTP status",
            ["status_code"], registry=self.registry,
        )
        for feed in FEEDS:
            self.published.labels(feed=feed)
            self.dead_letters.labels(feed=feed)
        for stage in (INTAKE, HOUSEHOLD):
            self.hub_processed.labels(stage=stage)


class StoreCollector(Collector):
    """Counts read from the stores at scrape time: hub dead letters (all instances) and outbox sizes."""

    def __init__(self, hub_sessions: sessionmaker[Session], cstate: ConnectorState) -> None:
        self.hub_sessions = hub_sessions
        self.cstate = cstate

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> tuple[CounterMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            CounterMetricFamily("tsunagu_hub_dead_letters", "Dead letters the hub recorded in its store "
                                "(store-wide: every instance reports the same total)", labels=["feed", "stage"]),
            GaugeMetricFamily("tsunagu_connector_outbox_pending", "Items read but not yet acknowledged by the broker",
                              labels=["feed"]),
            GaugeMetricFamily("tsunagu_hub_outbox_pending", "Hub messages committed but not yet published"),
        )

    def collect(self) -> Iterable[Metric]:
        dead, pending, hub_pending = self._families()
        try:
            with self.hub_sessions() as s:
                rows = s.execute(
                    select(HubDeadLetter.source, HubDeadLetter.stage, func.count()).group_by(
                        HubDeadLetter.source, HubDeadLetter.stage
                    )
                ).all()
                for source, stage, n in rows:
                    dead.add_metric([str(source), str(stage)], float(n))
                hub_pending.add_metric([], float(s.scalar(select(func.count()).select_from(HubOutbox)) or 0))
            with self.cstate.sessions() as s:
                counts = dict(s.execute(select(OutboxRow.connector, func.count()).group_by(OutboxRow.connector)).all())
            for feed in sorted(set(FEEDS) | set(counts)):
                pending.add_metric([str(feed)], float(counts.get(feed, 0)))
        except Exception as exc:  # a scrape must not fail because a store is briefly unavailable
            log.warning("metrics: store not readable", error_type=type(exc).__name__)
            return []
        return [dead, pending, hub_pending]


class CountingCore(HubCore):
    """The hub core, counting the messages of each batch it committed (the stage's work is unchanged)."""

    on_processed: Callable[[str, int], None] | None = None

    def process_intake(self, batch: Sequence[RawMessage]) -> None:
        super().process_intake(batch)
        if self.on_processed is not None:
            self.on_processed(INTAKE, len(batch))

    def process_household(self, batch: Sequence[RawMessage]) -> None:
        super().process_household(batch)
        if self.on_processed is not None:
            self.on_processed(HOUSEHOLD, len(batch))


# -- connectors in service mode -----------------------------------------------------------------------


class ServiceRunner(ConnectorRunner):
    """A runner for a long-lived process: counts acknowledgements, one thread at a time, bounded memory."""

    def __init__(self, connector: Connector, state: ConnectorState, producer: KafkaProducer | None, *,
                 intake_topic: str, deadletter_topic: str, metrics: Metrics | None = None) -> None:
        super().__init__(connector, state, producer, intake_topic=intake_topic, deadletter_topic=deadletter_topic)
        self.metrics = metrics
        self.lock = threading.RLock()

    def read_into_outbox(self) -> int:
        with self.lock:
            n = super().read_into_outbox()
            self.stats.event_ids.clear()  # the batch run's bookkeeping; unbounded in a service
            return n

    def relay(self, limit: int = 2000) -> int:
        with self.lock:
            events, dead = self.stats.published, self.stats.published_dead_letters
            try:
                return super().relay(limit)
            finally:
                if self.metrics is not None:
                    feed = self.connector.name
                    self.metrics.published.labels(feed=feed).inc(self.stats.published - events)
                    self.metrics.dead_letters.labels(feed=feed).inc(self.stats.published_dead_letters - dead)


class PushedFeed(Connector):
    """The kodomo webhook as a connector: ``read`` yields the items of the delivery handed to it."""

    name = Feed.KODOMO.value

    def __init__(self) -> None:
        self._items: list[Item] = []

    def push(self, items: Iterable[Item]) -> None:
        self._items.extend(items)

    def read(self, checkpoints: Mapping[str, str]) -> Iterator[Item]:
        items, self._items = self._items, []
        yield from items


class WebhookPublisher:
    """``publish`` for ``make_router``: outbox, then relay, awaiting the broker's acknowledgement.

    Runs off the event loop (``asyncio.to_thread``). Raises when the broker did not acknowledge:
    the router then answers 503 and the sender retries; what reached the outbox stays there and
    is relayed by the kodomo runner's background round (same ids, the hub dedupes).
    """

    def __init__(self, runner: ServiceRunner, feed: PushedFeed) -> None:
        self.runner = runner
        self.feed = feed

    def publish_sync(self, items: list[Item]) -> None:
        with self.runner.lock:
            self.feed.push(items)
            self.runner.read_into_outbox()
            self.runner.relay()

    async def __call__(self, items: list[Item]) -> None:
        await asyncio.to_thread(self.publish_sync, items)


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
    """(registry, case feeds) under ``sources``; the kodomo replay folder is left to the webhook."""
    cases = [c for c in wiring.case_connectors(sources, settings) if c.name != Feed.KODOMO.value]
    return wiring.registry_connectors(sources), cases


def connector_named(name: str, sources: Path, settings: Settings) -> Connector | None:
    """The connector of one feed under ``sources`` (``None`` when its folder or database is missing)."""
    found = wiring.registry_connectors(sources) if name == Feed.REGISTRY.value else [
        c for c in wiring.case_connectors(sources, settings) if c.name == name
    ]
    return found[0] if found else None


# -- the HTTP server --------------------------------------------------------------------------------


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the service installs its own and shuts down in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listen(host: str, port: int) -> socket.socket:
    """Bind before starting so a taken port is an error here, not a ``sys.exit`` inside uvicorn."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


# -- the service ------------------------------------------------------------------------------------


@dataclass
class _Runtime:
    bootstrap: str
    embedded: bool
    topics: Topics
    core: CountingCore
    cstate: ConnectorState
    ledger: SqlLedger
    producer: KafkaProducer
    webhook_producer: KafkaProducer
    registry: list[ServiceRunner] = field(default_factory=list)
    cases: list[ServiceRunner] = field(default_factory=list)
    kodomo: ServiceRunner | None = None


class HubServer:
    """``tsunagu serve`` as an object: ``run()`` blocks until ``request_stop()`` (or SIGTERM/SIGINT)."""

    def __init__(self, settings: Settings, sources: Path, *, host: str | None = None, port: int | None = None,
                 poll_interval_s: float | None = None, state: Path | None = None,
                 install_signal_handlers: bool = True, startup_wait_s: float = 120.0,
                 drain_timeout_s: float = 60.0, join_timeout_s: float = 90.0) -> None:
        self.settings = settings
        self.sources = sources
        self.host = host if host is not None else settings.http_host
        self.port = port if port is not None else settings.http_port
        self.poll_interval_s = poll_interval_s if poll_interval_s is not None else settings.poll_interval_s
        self.state = state
        self.install_signal_handlers = install_signal_handlers
        self.startup_wait_s = startup_wait_s
        self.drain_timeout_s = drain_timeout_s
        self.join_timeout_s = join_timeout_s
        self.metrics = Metrics()
        #: set once the HTTP server accepts connections (``port`` is then the bound port)
        self.ready = threading.Event()
        #: set once ``run`` returned, cleanly or not
        self.finished = threading.Event()
        self.phase = "starting"
        self.core: CountingCore | None = None
        self.state_dir: Path | None = None
        self._stop_flag = threading.Event()
        self._threads_stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self.workspace: Any = None  # hub.workspace.service.WorkspaceRuntime once the app is built

    # -- control ------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """The shutdown hook (what SIGTERM does); safe from any thread, idempotent."""
        self._stop_flag.set()
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(wakeup.set)

    def _on_signal(self, signum: int) -> None:
        log.info("stop requested", reason=signal.Signals(signum).name)
        self.request_stop()

    # -- lifecycle ----------------------------------------------------------------------------
    def run(self) -> None:
        """Start everything, serve until asked to stop, stop everything in order."""
        try:
            check_sources(self.sources)
            with state_folder(self.state) as state_dir, kafka_cluster(self.settings) as bootstrap:
                self.state_dir = state_dir
                rt = self._prepare(bootstrap, state_dir)
                try:
                    asyncio.run(self._main(rt))
                finally:
                    self._dispose(rt)
        finally:
            self.finished.set()

    def _prepare(self, bootstrap: str, state_dir: Path) -> _Runtime:
        settings = self.settings
        embedded = not settings.kafka_bootstrap
        topics = Topics(settings.topic_prefix)
        ensure_topics(bootstrap, topics, settings.partitions, settings.replication_factor)
        url = database_url_for(settings, state_dir)
        upgrade(url)
        core = CountingCore(make_sessionmaker(make_engine(url)), topics, alert_settings=wiring.alert_settings(settings))
        core.on_processed = lambda stage, n: self.metrics.hub_processed.labels(stage=stage).inc(n)
        self.core = core
        cstate = ConnectorState.in_dir(state_dir)
        if embedded:
            forgotten = _forget_checkpoints(cstate)
            if forgotten:
                log.warning("embedded broker keeps nothing: feeds are read again (the hub dedupes)",
                            count=forgotten, state_dir=str(state_dir))
        ledger = SqlLedger(make_engine(f"sqlite:///{state_dir / 'kodomo_ledger.sqlite'}"))
        rt = _Runtime(bootstrap, embedded, topics, core, cstate, ledger,
                      make_producer(bootstrap), make_producer(bootstrap, client_id="tsunagu-webhook"))
        registry, cases = service_connectors(self.sources, settings)

        def runner(c: Connector, producer: KafkaProducer) -> ServiceRunner:
            return ServiceRunner(c, cstate, producer, intake_topic=topics.intake, deadletter_topic=topics.deadletter,
                                 metrics=self.metrics)

        rt.registry = [runner(c, rt.producer) for c in registry]
        rt.cases = [runner(c, rt.producer) for c in cases]
        rt.kodomo = runner(PushedFeed(), rt.webhook_producer)
        self.metrics.registry.register(StoreCollector(core.sessions, cstate))
        return rt

    def _dispose(self, rt: _Runtime) -> None:
        for producer in (rt.producer, rt.webhook_producer):
            with contextlib.suppress(Exception):
                producer.close(timeout=10)  # flushes what is buffered
        rt.cstate.dispose()
        rt.ledger.dispose()
        rt.core.sessions.kw["bind"].dispose()

    async def _main(self, rt: _Runtime) -> None:
        loop = asyncio.get_running_loop()
        self._loop, self._wakeup = loop, asyncio.Event()
        if self._stop_flag.is_set():
            self._wakeup.set()
        signals: list[int] = []
        if self.install_signal_handlers and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
                signals.append(sig)
        hub = HubService(rt.core, self.settings, rt.bootstrap, instance=f"hub-{socket.gethostname()}")
        http: _Uvicorn | None = None
        http_task: asyncio.Task[None] | None = None
        feeds_task: asyncio.Task[None] | None = None
        sock = _listen(self.host, self.port)  # a taken port fails here, before anything started
        self.port = int(sock.getsockname()[1])
        try:
            await hub.start()
            http = _Uvicorn(uvicorn.Config(self._app(rt, hub), log_config=None, access_log=False, lifespan="off",
                                           timeout_graceful_shutdown=30))
            http_task = asyncio.create_task(http.serve(sockets=[sock]))
            while not http.started and not http_task.done():
                await asyncio.sleep(0.01)
            if http_task.done():
                raise RuntimeError("the HTTP server did not start")
            self.ready.set()
            log.info("service started", port=self.port, bootstrap=rt.bootstrap,
                     files=len(rt.registry) + len(rt.cases))
            feeds_task = asyncio.create_task(self._start_feeds(rt))
            stop_wait = asyncio.create_task(self._wakeup.wait())
            await asyncio.wait({stop_wait, http_task}, return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            if http_task.done() and not self._stop_flag.is_set():
                log.error("HTTP server ended unexpectedly; stopping")
        finally:
            if http_task is None:
                sock.close()
            self.phase = "stopping"
            await self._shutdown(rt, hub, http, http_task, feeds_task)
            for signum in signals:
                loop.remove_signal_handler(signum)

    async def _start_feeds(self, rt: _Runtime) -> None:
        """Registry first (reference data, as in the batch run), then every case feed in its thread."""
        for runner in rt.registry:
            await asyncio.to_thread(_first_pass, runner)
        if rt.registry:
            await self._wait_drained(rt, self.startup_wait_s, interruptible=True)
        if self._stop_flag.is_set():
            return
        for runner in [*rt.registry, *rt.cases]:
            self._start_thread(runner, self.poll_interval_s)
        if rt.kodomo is not None:  # relays webhook items a failed request left in the outbox
            self._start_thread(rt.kodomo, self.poll_interval_s)
        self.phase = "running"

    def _start_thread(self, runner: ConnectorRunner, interval_s: float) -> None:
        t = threading.Thread(target=connector_loop, args=(runner, interval_s, self._threads_stop),
                             name=f"connector-{runner.connector.name}", daemon=True)
        t.start()
        self._threads.append(t)

    async def _shutdown(self, rt: _Runtime, hub: HubService, http: _Uvicorn | None,
                        http_task: asyncio.Task[None] | None, feeds_task: asyncio.Task[None] | None) -> None:
        self._stop_flag.set()
        if self.workspace is not None:  # the workspace's periodic round ends first
            await asyncio.to_thread(self.workspace.stop)
        # 1. stop accepting webhooks; requests in flight finish (their items are acknowledged)
        if http is not None and http_task is not None:
            http.should_exit = True
            with contextlib.suppress(Exception):
                await http_task
        # 2. connector threads finish their round (read → outbox → relay) and end
        self._threads_stop.set()
        if feeds_task is not None:
            with contextlib.suppress(Exception):
                await feeds_task
        await asyncio.to_thread(self._join_threads)
        # 3. the embedded broker keeps nothing: let the hub handle what is on the topics first
        if rt.embedded and http_task is not None:
            await self._wait_drained(rt, self.drain_timeout_s, interruptible=False)
        # 4. in-flight hub batches finish (FastStream waits for running handlers), then it stops
        try:
            await hub.relay()
            await hub.stop()
        except Exception as exc:  # e.g. it never started; its outbox is relayed at the next start
            log.error("hub did not stop cleanly", error_type=type(exc).__name__)
        log.info("service stopped", pending=rt.cstate.pending())

    def _join_threads(self) -> None:
        deadline = time.monotonic() + self.join_timeout_s
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                log.error("connector thread did not stop in time; its outbox is kept", connector=t.name)

    async def _wait_drained(self, rt: _Runtime, timeout_s: float, *, interruptible: bool) -> bool:
        """Until both hub stages have no lag and the hub's outbox is empty (bounded)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if interruptible and self._stop_flag.is_set():
                return False
            try:
                if await asyncio.to_thread(self._drained, rt):
                    return True
            except Exception as exc:
                log.warning("could not read the hub's lag", error_type=type(exc).__name__)
            await asyncio.sleep(0.2)
        log.warning("the hub did not catch up in time", elapsed_s=timeout_s)
        return False

    def _drained(self, rt: _Runtime) -> bool:
        with rt.core.sessions() as s:
            if s.scalar(select(func.count()).select_from(HubOutbox)):
                return False
        group = self.settings.hub_group
        return (group_lag(rt.bootstrap, group, rt.topics.intake) == 0
                and group_lag(rt.bootstrap, f"{group}-household", rt.topics.resolved) == 0)

    # -- the FastAPI app -----------------------------------------------------------------------
    def _app(self, rt: _Runtime, hub: HubService | None = None) -> FastAPI:
        app = FastAPI(title="tsunagu", docs_url=None, redoc_url=None, openapi_url=None)
        assert rt.kodomo is not None and isinstance(rt.kodomo.connector, PushedFeed)
        webhook = KodomoWebhook(self.settings.kodomo_webhook_secret.get_secret_value().encode("utf-8"), rt.ledger)
        app.include_router(make_router(webhook, WebhookPublisher(rt.kodomo, rt.kodomo.connector)))
        metrics = self.metrics

        @app.middleware("http")
        async def count_webhooks(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            response = await call_next(request)
            if request.url.path == WEBHOOK_PATH:
                metrics.webhook.labels(status_code=str(response.status_code)).inc()
                log.info("webhook delivery", path=WEBHOOK_PATH, status_code=response.status_code)
            return response

        @app.get("/healthz")
        async def healthz() -> JSONResponse:
            alive = {t.name.removeprefix("connector-"): t.is_alive() for t in self._threads}
            ok = self.phase in ("starting", "running") and all(alive.values())
            return JSONResponse({"status": self.phase, "connectors": alive}, status_code=200 if ok else 503)

        @app.get("/metrics")
        async def prometheus() -> Response:
            body = await asyncio.to_thread(generate_latest, metrics.registry)
            return Response(body, media_type=CONTENT_TYPE_LATEST)

        from hub.workspace.service import attach_workspace  # the workspace, /ops included, last: it mounts "/"

        self.workspace = attach_workspace(app, rt.core.sessions, self.settings, connector_state=rt.cstate,
                                          topics=rt.topics, relay=hub.relay if hub is not None else None,
                                          loop=asyncio.get_running_loop(), bootstrap=rt.bootstrap)
        return app


def _first_pass(runner: ConnectorRunner) -> None:
    try:
        runner.read_into_outbox()
        runner.relay()
    except KafkaError:
        pass  # logged by the runner; the thread retries
    except Exception as exc:
        log.error("connector round failed; retrying", connector=runner.connector.name, error_type=type(exc).__name__)


def _forget_checkpoints(cstate: ConnectorState) -> int:
    """Embedded broker: a new broker is empty, so feeds are read again from the start (outboxes are kept)."""
    with cstate.sessions.begin() as s:
        n = s.scalar(select(func.count()).select_from(CheckpointRow)) or 0
        s.execute(delete(CheckpointRow))
    return int(n)


def serve(settings: Settings, sources: Path, *, host: str | None = None, port: int | None = None,
          poll_interval_s: float | None = None, state: Path | None = None) -> None:
    """Run the service until SIGTERM / SIGINT; see the module docstring."""
    HubServer(settings, sources, host=host, port=port, poll_interval_s=poll_interval_s, state=state).run()


# -- one connector alone -----------------------------------------------------------------------------


class ConnectorNotFound(Exception):
    """The feed's folder (or database) is not under ``--sources``."""


def run_connector(settings: Settings, name: str, sources: Path, *, state: Path | None = None, once: bool = True,
                  poll_interval_s: float | None = None, stop: threading.Event | None = None) -> dict[str, Any]:
    """``tsunagu connector run NAME``: one feed → outbox → Kafka; ``once`` reads to the end, else until ``stop``."""
    check_sources(sources)
    if name not in FEEDS:
        raise ConnectorNotFound(f"unknown feed {name!r}; one of {', '.join(FEEDS)}")
    connector = connector_named(name, sources, settings)
    if connector is None:
        raise ConnectorNotFound(f"no {name} feed under {sources} (expected {sources / name})")
    stop = stop or threading.Event()
    with state_folder(state) as state_dir, kafka_cluster(settings) as bootstrap:
        if not settings.kafka_bootstrap:
            log.warning("embedded broker: what this command publishes is gone when it ends", connector=name)
        topics = Topics(settings.topic_prefix)
        ensure_topics(bootstrap, topics, settings.partitions, settings.replication_factor)
        cstate = ConnectorState.in_dir(state_dir)
        producer = make_producer(bootstrap, client_id=f"tsunagu-connector-{name}")
        runner = ServiceRunner(connector, cstate, producer, intake_topic=topics.intake,
                               deadletter_topic=topics.deadletter)
        try:
            if once:
                stats: RunStats = runner.run_once()
            else:
                connector_loop(runner, poll_interval_s or settings.poll_interval_s, stop)
                stats = runner.stats
            result = {"connector": name, **stats.as_dict(), "pending": cstate.pending(name)}
        finally:
            with contextlib.suppress(Exception):
                connector.close()
            producer.close(timeout=10)
            cstate.dispose()
    return result


def summary_line(result: Mapping[str, Any]) -> str:
    return json.dumps(dict(result), ensure_ascii=False)
