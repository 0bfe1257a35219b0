"""The workspace inside ``tsunagu serve``: mount it on the service's app and run its periodic round in a thread.

``attach_workspace(app, sessions, settings, …)`` mounts the workspace at ``/`` (after the service's own
routes: webhooks, /healthz, /metrics keep answering first) and returns a ``WorkspaceRuntime`` whose
thread, until ``stop()``:

* every ``poll_interval_s``: asks the hub to relay its outbox (``relay``, a coroutine function run on
  the service's event loop), so the CloudEvents the workspace wrote in its transactions (alert,
  referral, plan changes) and the consents recorded on /consents leave promptly;
* every ``notify_interval_s``: 支援会議 designations whose cases all closed are ended
  (``hub.workspace.meetings.end_with_cases``), then ``hub.workspace.periodic.tick`` (referral sync,
  notifications);
* every round: deletes expired login sessions.

Errors of a round are logged by type only and the round is retried at the next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from connectors.runner import ConnectorState
from hub.http.consent.models import PublishEvent
from hub.http.consent.publishers import OutboxEventPublisher
from hub.logging import get_logger
from hub.ops.health import HealthAlert
from hub.ops.readings import Lag
from hub.settings import Settings
from hub.topics import Topics
from hub.workspace.app import WorkspaceContext, create_workspace_app
from schemas.envelope import CloudEvent

log = get_logger("tsunagu.workspace")

Relay = Callable[[], Awaitable[Any]]


class RelayingPublisher:
    """Consent events: into the hub outbox, then relayed at once (the broker acknowledged before we answer)."""

    def __init__(self, sessions: sessionmaker[Session], topic: str, relay: Relay | None) -> None:
        self.outbox = OutboxEventPublisher(sessions, topic)
        self.relay = relay

    async def __call__(self, event: CloudEvent) -> None:
        await self.outbox(event)
        if self.relay is not None:
            await self.relay()


class WorkspaceRuntime:
    """The periodic thread of the workspace in a long-running service."""

    def __init__(self, ctx: WorkspaceContext, *, relay: Relay | None = None,
                 loop: asyncio.AbstractEventLoop | None = None,
                 tick: Callable[[sessionmaker[Session], Settings], Any] | None = None) -> None:
        self.ctx = ctx
        self.relay = relay
        self.loop = loop
        self.tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        #: the cluster the service runs on (None when not given)
        self.bootstrap: str | None = None

    def start(self) -> WorkspaceRuntime:
        self._thread = threading.Thread(target=self._run, name="workspace-periodic", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        settings = self.ctx.settings
        poll = settings.poll_interval_s
        next_tick = time.monotonic()  # a first round at start (referrals imported, pending notifications sent)
        while not self._stop.is_set():
            now_m = time.monotonic()
            if now_m >= next_tick:
                next_tick = now_m + settings.notify_interval_s
                self._guarded("designations", self._end_designations)
                self._guarded("tick", self._tick)
            self._guarded("relay", self._relay)
            self._guarded("sessions", self._purge)
            self.rounds += 1
            self._stop.wait(poll)

    def _guarded(self, what: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception as exc:
            log.error("workspace round failed; retried next time", step=what, error_type=type(exc).__name__)

    def _tick(self) -> None:
        if self.tick is None:
            from hub.workspace.periodic import tick

            self.tick = tick
        self.tick(self.ctx.sessions, self.ctx.settings)

    def _end_designations(self) -> None:
        """支援会議 designations end with the case (WB's rule), written so consent.decide agrees with the screens."""
        from hub.workspace.meetings import end_with_cases

        with self.ctx.sessions.begin() as s:
            ended = end_with_cases(s, self.ctx.clock())
        if ended:
            log.info("support-meeting designations ended with their cases", count=len(ended))

    def _relay(self) -> None:
        if self.relay is None or self.loop is None or self.loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(_call(self.relay), self.loop)
        with contextlib.suppress(TimeoutError):
            future.result(timeout=60)

    def _purge(self) -> None:
        from hub.workspace.auth import purge_sessions

        with self.ctx.sessions.begin() as s:
            purge_sessions(s, self.ctx.clock())


async def _call(relay: Relay) -> None:
    await relay()


@dataclass(frozen=True)
class WorkspaceTopics(Topics):
    """The workspace's own topic (``<prefix>.workspace.v1``), for ``hub.kafka.broker.ensure_topics``."""

    def all(self) -> list[str]:
        from hub.workspace.publish import workspace_topic

        return [workspace_topic(self.prefix)]


def attach_workspace(app: FastAPI, sessions: sessionmaker[Session], settings: Settings, *,
                     connector_state: ConnectorState | None = None, topics: Topics | None = None,
                     relay: Relay | None = None, loop: asyncio.AbstractEventLoop | None = None,
                     bootstrap: str | None = None, start: bool = True,
                     lags: Callable[[], list[Lag]] | None = None,
                     health: Callable[[], list[tuple[HealthAlert, datetime]]] | None = None) -> WorkspaceRuntime:
    """Mount the workspace at ``/`` of ``app`` (call after the app's own routes) and start its periodic thread.

    With ``bootstrap`` the workspace's topic is created first (a cluster may not create topics on use).
    """
    topics = topics or Topics(settings.topic_prefix)
    if bootstrap:
        from hub.kafka.broker import ensure_topics

        ensure_topics(bootstrap, WorkspaceTopics(topics.prefix), settings.partitions, settings.replication_factor)
    publish: PublishEvent = RelayingPublisher(sessions, topics.intake, relay)
    ctx = WorkspaceContext(sessions=sessions, settings=settings, publish_consent=publish,
                           connector_state=connector_state, topics=topics, lags=lags, health=health)
    app.mount("/", create_workspace_app(ctx))
    runtime = WorkspaceRuntime(ctx, relay=relay, loop=loop)
    runtime.bootstrap = bootstrap
    return runtime.start() if start else runtime
