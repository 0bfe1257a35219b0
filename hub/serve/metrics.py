"""Prometheus metrics of the service: counters by feed and stage, store counts read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from connectors.runner import ConnectorState
from hub.logging import get_logger
from hub.ops import deadletters
from hub.ops.readings import Lag, connector_outboxes, feed_last_success
from hub.pipeline.stages import HOUSEHOLD, INTAKE, HubCore, OutboxMessage, RawMessage
from hub.pipeline.tables import HubDeadLetter, HubOutbox
from hub.settings import Settings
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
        self.hub_processed = Counter(
            "tsunagu_hub_processed", "Messages this hub instance handled durably (batches committed)",
            ["stage"], registry=self.registry,
        )
        self.webhook = Counter(
            "tsunagu_webhook_deliveries", "kodomo webhook deliveries answered, by HTTP status",
            ["status_code"], registry=self.registry,
        )
        self.webhook_refused = Counter(
            "tsunagu_webhook_refused", "Unauthenticated kodomo webhook requests refused, by reason "
            "(too large, bad signature, stale timestamp, rate limited): counted, not dead-lettered",
            ["reason"], registry=self.registry,
        )
        for feed in FEEDS:
            self.published.labels(feed=feed)
        for stage in (INTAKE, HOUSEHOLD):
            self.hub_processed.labels(stage=stage)


class FeedCollector(Collector):
    """Per-feed connector metrics read from a connector state at scrape time: outbox, last success, expected
    interval, records read and dead letters written. Served by ``tsunagu serve`` (inside ``StoreCollector``) and
    by a standalone ``tsunagu connector run --metrics-port``, so both expose the same series."""

    def __init__(self, cstate: ConnectorState, settings: Settings | None = None) -> None:
        self.cstate = cstate
        self.settings = settings or Settings()

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily,
                             CounterMetricFamily]:
        return (
            GaugeMetricFamily("tsunagu_connector_outbox_pending", "Items read but not yet acknowledged by the broker",
                              labels=["feed"]),
            GaugeMetricFamily("tsunagu_feed_last_success_timestamp_seconds",
                              "Unix time the brokers last acknowledged an item of the feed", labels=["feed"]),
            GaugeMetricFamily("tsunagu_feed_expected_interval_seconds",
                              "Longest normal gap between two deliveries of the feed (setting)", labels=["feed"]),
            CounterMetricFamily("tsunagu_connector_records_read", "Records (events and dead letters) the feed's "
                                "connector read, over every pass on its connector state", labels=["feed"]),
            CounterMetricFamily("tsunagu_connector_dead_letters", "Dead letters the feed's connector wrote, over "
                                "every pass on its connector state", labels=["feed"]),
        )

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        pending, last, expected, read, dead = self._families()
        for feed in FEEDS:
            expected.add_metric([feed], self.settings.expected_interval_s(feed))
        try:
            counts = connector_outboxes(self.cstate)
            totals = self.cstate.totals()
            successes = feed_last_success(self.cstate)
        except Exception as exc:  # a scrape must not fail because the state is briefly unavailable
            log.warning("metrics: connector state not readable", error_type=type(exc).__name__)
            return [expected]
        for feed in sorted(set(FEEDS) | set(counts) | set(totals)):
            pending.add_metric([feed], float(counts.get(feed, 0)))
            read.add_metric([feed], float(totals.get(feed, {}).get("read", 0)))
            dead.add_metric([feed], float(totals.get(feed, {}).get("dead_letters", 0)))
        for feed, at in sorted(successes.items()):
            last.add_metric([feed], at.timestamp())
        return [pending, last, expected, read, dead]


class StoreCollector(Collector):
    """Counts read from the stores at scrape time: dead letters of every stage (store-wide), the hub outbox,
    (with ``lags``) the hub's consumer lag, and the connector state's per-feed metrics (``FeedCollector``)."""

    def __init__(self, hub_sessions: sessionmaker[Session], cstate: ConnectorState,
                 settings: Settings | None = None, lags: Callable[[], list[Lag]] | None = None) -> None:
        self.hub_sessions = hub_sessions
        self.feeds = FeedCollector(cstate, settings)
        self.lags = lags

    def describe(self) -> Iterable[Metric]:
        return [*self._families(), *self.feeds.describe()]

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, GaugeMetricFamily, CounterMetricFamily, GaugeMetricFamily]:
        return (
            CounterMetricFamily("tsunagu_hub_dead_letters", "Dead letters the hub recorded in its store "
                                "(store-wide: every instance reports the same total)", labels=["feed", "stage"]),
            GaugeMetricFamily("tsunagu_hub_outbox_pending", "Hub messages committed but not yet published"),
            CounterMetricFamily("tsunagu_dead_letters", "Every dead letter of every stage in the dead-letter store "
                                "(store-wide; use max, not sum)", labels=["stage", "feed", "reason"]),
            GaugeMetricFamily("tsunagu_consumer_lag", "End offset minus the group's committed offset",
                              labels=["group", "topic", "partition"]),
        )

    def collect(self) -> Iterable[Metric]:
        hub_dead, hub_pending, dead, lag = self._families()
        out: list[Metric] = []
        try:
            with self.hub_sessions() as s:
                rows = s.execute(
                    select(HubDeadLetter.source, HubDeadLetter.stage, func.count()).group_by(
                        HubDeadLetter.source, HubDeadLetter.stage
                    )
                ).all()
                for source, stage, n in rows:
                    hub_dead.add_metric([str(source), str(stage)], float(n))
                hub_pending.add_metric([], float(s.scalar(select(func.count()).select_from(HubOutbox)) or 0))
                for stage, feed, reason, n in deadletters.counts(s):
                    dead.add_metric([stage, feed, reason], float(n))
            out += [hub_dead, hub_pending, dead]
        except Exception as exc:  # a scrape must not fail because a store is briefly unavailable
            log.warning("metrics: store not readable", error_type=type(exc).__name__)
        out += list(self.feeds.collect())
        if self.lags is not None:
            try:
                for item in self.lags():
                    lag.add_metric([item.group, item.topic, str(item.partition)], float(item.lag))
                out.append(lag)
            except Exception as exc:  # brokers away: no lag series rather than a failed scrape
                log.warning("metrics: consumer lag not readable", error_type=type(exc).__name__)
        return out


class CountingCore(HubCore):
    """The hub core, counting the messages of each batch it committed (the stage's work is unchanged)."""

    on_processed: Callable[[str, int], None] | None = None

    def process_intake(self, batch: Sequence[RawMessage]) -> list[OutboxMessage]:
        written = super().process_intake(batch)
        if self.on_processed is not None:
            self.on_processed(INTAKE, len(batch))
        return written

    def process_household(self, batch: Sequence[RawMessage]) -> list[OutboxMessage]:
        written = super().process_household(batch)
        if self.on_processed is not None:
            self.on_processed(HOUSEHOLD, len(batch))
        return written
