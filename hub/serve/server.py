"""Service mode: ``tsunagu serve`` — the hub, the kodomo webhook and every file/DB feed, until SIGTERM.

One process, one event loop:

* the hub (``HubService``: both FastStream stages) on the configured cluster, or on the
  embedded broker when ``TSUNAGU_KAFKA_BOOTSTRAP`` is empty;
* two HTTP listeners (uvicorn, programmatic, in the same loop), on their own addresses and ports:
  the public one (``webhook_host``/``webhook_port``) has only ``POST /webhooks/kodomo`` (signed
  deliveries: written to the connector outbox and relayed to Kafka, acknowledged by the broker
  *before* the 2xx) and ``GET /healthz``; the staff one (``staff_host``/``staff_port``) has
  ``GET /metrics`` (Prometheus; counts only; bearer ``metrics_token`` when set), ``GET /ops`` /
  ``GET /ops.json`` (the operations view, ``hub.http.ops``: counts and codes only) and ``GET /healthz``;
* every file / database feed found under ``--sources`` in a background thread
  (``ConnectorRunner.run_forever``): file feeds re-scan their folders and the shogai database
  is polled every ``poll_interval_s``. The registry is read first, as in the batch run. The
  ``kodomo/`` folder of recorded deliveries is replayed as ``tsunagu run`` replays it, through the
  webhook's runner (one outbox, one checkpoint scope) and checked with the webhook's own secret.

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
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from kafka import KafkaProducer
from sqlalchemy import func, select

from connectors.contract import Connector
from connectors.kodomo import KodomoWebhook, SqlLedger
from connectors.ratelimit import TokenBucket
from connectors.runner import ConnectorRunner, ConnectorState, make_producer
from hub.anchoring import anchor_head, anchor_path, audit_key_of
from hub.bootstrap import Runtime, open_runtime
from hub.db import make_engine
from hub.http.app import make_staff_app, make_webhook_app
from hub.http.server import QuietUvicorn, listen_socket
from hub.http.webhook import PushedFeed, WebhookPublisher
from hub.kafka.security import kafka_python_security
from hub.kafka.service import HubService
from hub.kafka.topicreader import group_lag
from hub.logging import get_logger
from hub.ops.deadletters import sealer_of
from hub.ops.health import HealthSettings
from hub.ops.monitor import HealthLoop, Notifier, take_reading
from hub.ops.readings import CachedLags, consumer_lags
from hub.pipeline.tables import HubOutbox
from hub.run.state import RunError, check_sources, state_folder
from hub.serve.feeds import (
    ServiceRunner,
    connector_loop,
    first_pass,
    forget_checkpoints,
    kodomo_files,
    service_connectors,
)
from hub.serve.metrics import CountingCore, Metrics, StoreCollector
from hub.settings import SAMPLE_KODOMO_SECRET, Settings
from hub.topics import Topics
from hub.workspace.service import attach_workspace

log = get_logger("tsunagu.serve")

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
                 staff_host: str | None = None, staff_port: int | None = None,
                 poll_interval_s: float | None = None, state: Path | None = None,
                 install_signal_handlers: bool = True, startup_wait_s: float = 120.0,
                 drain_timeout_s: float = 60.0, join_timeout_s: float = 90.0, demo: bool = False) -> None:
        self.settings = settings
        self.sources = sources
        #: the public webhook listener
        self.host = host if host is not None else settings.webhook_host
        self.port = port if port is not None else settings.webhook_port
        #: the staff listener (ops, metrics, health)
        self.staff_host = staff_host if staff_host is not None else settings.staff_host
        self.staff_port = staff_port if staff_port is not None else settings.staff_port
        #: the demo may run with the public sample webhook secret; nothing else may
        self.demo = demo
        self.poll_interval_s = poll_interval_s if poll_interval_s is not None else settings.poll_interval_s
        self.state = state
        self.install_signal_handlers = install_signal_handlers
        self.startup_wait_s = startup_wait_s
        self.drain_timeout_s = drain_timeout_s
        self.join_timeout_s = join_timeout_s
        self.metrics = Metrics()
        self.health_loop: HealthLoop | None = None
        self.lags: CachedLags | None = None
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
        self._rt: _Runtime | None = None
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
            self._webhook_secret()
            if self.port and self.port == self.staff_port and self.host == self.staff_host:
                raise RunError("the webhook and staff listeners need different ports")
            with state_folder(self.state) as state_dir, \
                    open_runtime(self.settings, state_dir, core_type=CountingCore) as base:
                self.state_dir = state_dir
                rt = self._prepare(base)
                try:
                    asyncio.run(self._main(rt))
                finally:
                    self._dispose(rt)
        finally:
            self.finished.set()

    def _prepare(self, base: Runtime[CountingCore]) -> _Runtime:
        settings, state_dir, bootstrap, embedded, topics = (base.settings, base.state_dir, base.bootstrap,
                                                            base.embedded, base.topics)
        security = kafka_python_security(bootstrap)
        core = base.core
        core.on_processed = lambda stage, n: self.metrics.hub_processed.labels(stage=stage).inc(n)
        self.core = core
        cstate = base.connector_state
        if embedded:
            forgotten = forget_checkpoints(cstate)
            if forgotten:
                log.warning("embedded broker keeps nothing: feeds are read again (the hub dedupes)",
                            count=forgotten, state_dir=str(state_dir))
        ledger = SqlLedger(make_engine(f"sqlite:///{state_dir / 'kodomo_ledger.sqlite'}"))
        rt = _Runtime(bootstrap, embedded, topics, core, cstate, ledger,
                      make_producer(bootstrap, **security),
                      make_producer(bootstrap, client_id="tsunagu-webhook", **security))
        registry, cases = service_connectors(self.sources, settings)

        def runner(c: Connector, producer: KafkaProducer) -> ServiceRunner:
            return ServiceRunner(c, cstate, producer, intake_topic=topics.intake, deadletter_topic=topics.deadletter,
                                 metrics=self.metrics, seal=sealer_of(settings),
                                 producer_factory=lambda: make_producer(bootstrap, client_id=f"tsunagu-{c.name}",
                                                                        **security))

        rt.registry = [runner(c, rt.producer) for c in registry]
        rt.cases = [runner(c, rt.producer) for c in cases]
        rt.kodomo = runner(PushedFeed(kodomo_files(self.sources, self._webhook_secret())), rt.webhook_producer)
        self.lags = CachedLags(lambda: consumer_lags(bootstrap, settings, topics))
        self.metrics.registry.register(StoreCollector(core.sessions, cstate, settings, self.lags))
        watched = sorted({r.connector.name for r in (*rt.registry, *rt.cases, rt.kodomo) if r is not None})
        started = datetime.now(UTC)
        self.health_loop = HealthLoop(
            lambda: take_reading(core.sessions, cstate, self.lags, watched, started),
            HealthSettings.from_settings(settings, watched), settings.health_interval_s,
            registry=self.metrics.registry, notify=Notifier(settings.notify_webhook_url))
        self._rt = rt
        return rt

    def _dispose(self, rt: _Runtime) -> None:
        for producer in (rt.producer, rt.webhook_producer):
            with contextlib.suppress(Exception):
                producer.close(timeout=10)  # flushes what is buffered
        for r in [*rt.registry, *rt.cases, *([rt.kodomo] if rt.kodomo else [])]:
            r.close_producer()
        rt.ledger.dispose()  # the connector state and the hub database close with the runtime

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
        http: QuietUvicorn | None = None
        http_task: asyncio.Task[None] | None = None
        feeds_task: asyncio.Task[None] | None = None
        sock = listen_socket(self.host, self.port)  # a taken port fails here, before anything started
        try:
            staff_sock = listen_socket(self.staff_host, self.staff_port)
        except OSError:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        self.staff_port = int(staff_sock.getsockname()[1])
        staff: QuietUvicorn | None = None
        staff_task: asyncio.Task[None] | None = None
        try:
            await hub.start()
            http = QuietUvicorn(uvicorn.Config(self._app(rt), log_config=None, access_log=False, lifespan="off",
                                           timeout_graceful_shutdown=30))
            http_task = asyncio.create_task(http.serve(sockets=[sock]))
            staff = QuietUvicorn(uvicorn.Config(self._staff_app(rt, hub), log_config=None, access_log=False,
                                                lifespan="off", timeout_graceful_shutdown=10))
            staff_task = asyncio.create_task(staff.serve(sockets=[staff_sock]))
            while not (http.started and staff.started) and not http_task.done() and not staff_task.done():
                await asyncio.sleep(0.01)
            if http_task.done() or staff_task.done():
                raise RuntimeError("the HTTP server did not start")
            self.ready.set()
            log.info("service started", port=self.port, bootstrap=rt.bootstrap,
                     files=len(rt.registry) + len(rt.cases))
            log.info("staff listener started", port=self.staff_port)
            feeds_task = asyncio.create_task(self._start_feeds(rt))
            if self.health_loop is not None:
                self.health_loop.start()
            anchor_task = asyncio.create_task(self._anchor_loop(rt))
            stop_wait = asyncio.create_task(self._wakeup.wait())
            await asyncio.wait({stop_wait, http_task, staff_task}, return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            anchor_task.cancel()
            if (http_task.done() or staff_task.done()) and not self._stop_flag.is_set():
                log.error("HTTP server ended unexpectedly; stopping")
        finally:
            if http_task is None:
                sock.close()
            if staff_task is None:
                staff_sock.close()
            self.phase = "stopping"
            if self.health_loop is not None:
                self.health_loop.stop()
            await self._shutdown(rt, hub, http, http_task, feeds_task)
            if staff is not None and staff_task is not None:  # last: /healthz and /metrics stay up while stopping
                staff.should_exit = True
                with contextlib.suppress(Exception):
                    await staff_task
            for signum in signals:
                loop.remove_signal_handler(signum)

    async def _start_feeds(self, rt: _Runtime) -> None:
        """Registry first (reference data, as in the batch run), then every case feed in its thread."""
        for runner in rt.registry:
            await asyncio.to_thread(first_pass, runner)
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

    async def _shutdown(self, rt: _Runtime, hub: HubService, http: QuietUvicorn | None,
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
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._anchor, rt)
        log.info("service stopped", pending=rt.cstate.pending())

    def _anchor(self, rt: _Runtime) -> None:
        assert self.state_dir is not None
        anchor_head(rt.core.sessions, anchor_path(self.settings, self.state_dir), audit_key_of(self.settings))

    async def _anchor_loop(self, rt: _Runtime) -> None:
        """Anchor the audit head every ``audit_anchor_interval_s`` (only when it moved)."""
        while True:
            await asyncio.sleep(self.settings.audit_anchor_interval_s)
            try:
                await asyncio.to_thread(self._anchor, rt)
            except Exception as exc:  # a full disk must not stop the service; the next round tries again
                log.error("could not anchor the audit head", error_type=type(exc).__name__)

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
    def _webhook_secret(self) -> bytes:
        """The webhook's secret; unset (or the public sample secret) is refused except in the demo."""
        secret = self.settings.kodomo_webhook_secret.get_secret_value()
        if self.demo:
            return (secret or SAMPLE_KODOMO_SECRET).encode("utf-8")
        if not secret:
            raise RunError("TSUNAGU_KODOMO_WEBHOOK_SECRET is not set: the kodomo webhook would accept anyone's "
                           "deliveries; set it to the secret agreed with the vendor")
        if secret == SAMPLE_KODOMO_SECRET:
            raise RunError("TSUNAGU_KODOMO_WEBHOOK_SECRET is the public sample secret; set the vendor's secret")
        return secret.encode("utf-8")

    def _app(self, rt: _Runtime) -> FastAPI:
        assert rt.kodomo is not None and isinstance(rt.kodomo.connector, PushedFeed)
        s = self.settings
        webhook = KodomoWebhook(self._webhook_secret(), rt.ledger, legacy_signature=s.kodomo_legacy_signature,
                                replay_window_s=s.kodomo_replay_window_s, max_body_bytes=s.kodomo_max_body_bytes,
                                dead_letter_unauthenticated=False,
                                previous_secret=s.kodomo_webhook_secret_previous.get_secret_value().encode("utf-8"))
        limiter = TokenBucket(s.webhook_refused_rate_per_s, s.webhook_refused_burst)
        return make_webhook_app(webhook, WebhookPublisher(rt.kodomo, rt.kodomo.connector), self.metrics,
                                self._health, limiter=limiter)

    def _staff_app(self, rt: _Runtime, hub: HubService | None = None) -> FastAPI:
        app = make_staff_app(self.metrics, self._health, metrics_token=self.settings.metrics_token.get_secret_value())
        # the coordinators' workspace, /ops included (behind the ops/admin roles), last: it mounts "/"
        self.workspace = attach_workspace(app, rt.core.sessions, self.settings, connector_state=rt.cstate,
                                          topics=rt.topics, relay=hub.relay if hub is not None else None,
                                          loop=asyncio.get_running_loop(), bootstrap=rt.bootstrap, lags=self.lags,
                                          health=self.health_loop.alerts if self.health_loop is not None else None)
        return app

    def _health(self) -> tuple[dict[str, Any], bool]:
        """Readiness: running, every connector thread alive, and every feed able to publish (no failing relay
        with items waiting in its outbox)."""
        alive = {t.name.removeprefix("connector-"): t.is_alive() for t in self._threads}
        rt = self._rt
        runners = [*rt.registry, *rt.cases, *([rt.kodomo] if rt.kodomo else [])] if rt is not None else []
        try:
            publishing = {r.connector.name: r.can_publish for r in runners}
        except Exception:  # the connector state is unreadable: not ready
            publishing = {r.connector.name: False for r in runners}
        ok = self.phase in ("starting", "running") and all(alive.values()) and all(publishing.values())
        return {"status": self.phase, "connectors": alive, "publishing": publishing}, ok


def serve(settings: Settings, sources: Path, *, host: str | None = None, port: int | None = None,
          staff_host: str | None = None, staff_port: int | None = None,
          poll_interval_s: float | None = None, state: Path | None = None, demo: bool = False) -> None:
    """Run the service until SIGTERM / SIGINT; see the module docstring."""
    HubServer(settings, sources, host=host, port=port, staff_host=staff_host, staff_port=staff_port,
              poll_interval_s=poll_interval_s, state=state, demo=demo).run()
