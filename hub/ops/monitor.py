"""Runs the health rules in a service: readings every few seconds, alerts logged, counted and notified.

Each raised or cleared health alert becomes a log line (``health alert raised`` / ``cleared``), the
gauge ``tsunagu_health_alert{rule,subject}`` (1 while open, 0 once cleared) and, when
``TSUNAGU_NOTIFY_WEBHOOK_URL`` is set, a JSON POST with the rule, subject, message and state — codes,
feed names, groups and counts only, never personal data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from connectors.runner import ConnectorState
from hub.logging import get_logger
from hub.ops import deadletters
from hub.ops.health import HealthAlert, HealthMonitor, HealthSettings, Reading, Transition
from hub.ops.readings import Lag, connector_outboxes, feed_last_success
from hub.pipeline.tables import HubOutbox

log = get_logger("tsunagu.health")


def take_reading(sessions: sessionmaker[Session], cstate: ConnectorState, lags: Callable[[], list[Lag]] | None,
                 feeds: Sequence[str], started: datetime | None, now: datetime | None = None) -> Reading:
    """The system now: last success of each watched feed, lags (None if the brokers are away), outboxes."""
    last = feed_last_success(cstate)
    lag_map: dict[tuple[str, str, int], int] | None
    try:
        lag_map = {(x.group, x.topic, x.partition): x.lag for x in lags()} if lags is not None else {}
    except Exception as exc:
        log.warning("health: consumer lag not readable", error_type=type(exc).__name__)
        lag_map = None
    with sessions() as s:
        hub_outbox = int(s.scalar(select(func.count()).select_from(HubOutbox)) or 0)
        dead = sum(n for *_k, n in deadletters.counts(s))
    outboxes = {"hub": hub_outbox, **{f: 0 for f in feeds}, **connector_outboxes(cstate)}
    return Reading(at=now or datetime.now(UTC), last_success={f: last.get(f) for f in feeds}, lags=lag_map,
                   outboxes=outboxes, dead_letters_total=dead, started=started)


class Notifier:
    """POSTs health transitions to the notification webhook (if configured); failures are logged, not raised."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def __call__(self, t: Transition) -> None:
        if not self.url:
            return
        body: dict[str, Any] = {"source": "tsunagu", "kind": "ops_health", "state": t.kind, "rule": t.alert.rule,
                                "subject": t.alert.subject, "message": t.alert.message, "value": t.alert.value,
                                "threshold": t.alert.threshold, "at": t.at.isoformat()}
        try:
            httpx.post(self.url, json=body, timeout=self.timeout_s).raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("health: notification not delivered", error_type=type(exc).__name__)


class HealthLoop:
    """Evaluates the health rules every ``interval_s`` in a thread; ``alerts()`` is what /ops shows."""

    def __init__(self, read: Callable[[], Reading], cfg: HealthSettings, interval_s: float, *,
                 registry: CollectorRegistry | None = None, notify: Callable[[Transition], None] | None = None) -> None:
        self.read = read
        self.monitor = HealthMonitor(cfg)
        self.interval_s = interval_s
        self.notify = notify
        self.gauge = Gauge("tsunagu_health_alert", "Operations health alerts: 1 while open, 0 once cleared",
                           ["rule", "subject"], registry=registry) if registry is not None else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def check(self) -> list[Transition]:
        """One evaluation: read, apply the rules, report what changed."""
        reading = self.read()
        with self._lock:
            transitions = self.monitor.check(reading)
        for t in transitions:
            fields = {"rule": t.alert.rule, "subject": t.alert.subject, "value": t.alert.value,
                      "threshold": t.alert.threshold}
            if t.kind == "raised":
                log.warning("health alert raised", health_message=t.alert.message, **fields)
            else:
                log.info("health alert cleared", **fields)
            if self.gauge is not None:
                self.gauge.labels(rule=t.alert.rule, subject=t.alert.subject).set(1 if t.kind == "raised" else 0)
            if self.notify is not None:
                self.notify(t)
        return transitions

    def alerts(self) -> list[tuple[HealthAlert, datetime]]:
        with self._lock:
            return self.monitor.alerts()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception as exc:  # a failed check must not end the loop
                log.error("health: check failed", error_type=type(exc).__name__)
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="health-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
