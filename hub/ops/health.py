"""Health rules for operations: pure functions over readings, kept in a dict like the case alerts' rules.

A reading (:class:`Reading`) is what the system looked like at one moment — per feed the last
success, per consumer group and partition the lag, the outbox depths and the dead-letter total.
Each rule gets the current reading and the recent history and returns the health alerts it finds.
Nothing here touches personal data: keys are feed names, groups, topics, partitions and counts.

:class:`HealthMonitor` keeps the history and the open alerts, so an alert is raised once, shown
while its condition lasts and cleared by itself when it ends (``raised`` / ``cleared`` transitions).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hub.settings import Settings


@dataclass(frozen=True)
class HealthSettings:
    """The rules' thresholds (from ``Settings``: TSUNAGU_FEED_EXPECTED_INTERVAL_S, TSUNAGU_HEALTH_*)."""

    expected_interval_s: Mapping[str, float] = field(default_factory=dict)
    default_interval_s: float = 86400.0
    growth_checks: int = 3
    dead_letter_rate_per_min: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings, feeds: Sequence[str]) -> HealthSettings:
        return cls({f: settings.expected_interval_s(f) for f in feeds}, 86400.0, settings.health_growth_checks,
                   settings.health_dead_letter_rate_per_min)

    def interval(self, feed: str) -> float:
        return float(self.expected_interval_s.get(feed, self.default_interval_s))


@dataclass(frozen=True)
class Reading:
    """The system at one moment (counts and times only)."""

    at: datetime
    #: feed → last time the brokers acknowledged one of its items (None: never)
    last_success: Mapping[str, datetime | None]
    #: (group, topic, partition) → lag; None when the brokers could not be read
    lags: Mapping[tuple[str, str, int], int] | None
    #: "hub" and each feed → outbox rows pending
    outboxes: Mapping[str, int]
    #: dead letters stored so far, all stages
    dead_letters_total: int
    #: when the service started (a feed is not called silent before it had a chance to deliver)
    started: datetime | None = None


@dataclass(frozen=True)
class HealthAlert:
    """One operations alert: a rule, what it is about (a feed, a group/partition, an outbox) and numbers."""

    rule: str
    subject: str
    message: str
    value: float
    threshold: float

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule, self.subject)


RULE_LABELS: dict[str, str] = {
    "feed_silent": "連携停止 (feed silent)",
    "lag_growing": "処理遅延の増加 (consumer lag growing)",
    "outbox_growing": "送信待ちの増加 (outbox growing)",
    "dead_letter_rate": "デッドレター急増 (dead-letter rate)",
    "broker_unreachable": "ブローカー接続不可 (broker unreachable)",
}

Rule = Callable[[Reading, Sequence[Reading], HealthSettings], list[HealthAlert]]


def feed_silent(now: Reading, history: Sequence[Reading], cfg: HealthSettings) -> list[HealthAlert]:
    """A feed that has delivered nothing for longer than its expected interval."""
    out = []
    for feed, last in sorted(now.last_success.items()):
        since = last if last is not None else now.started
        if since is None:
            continue
        silent = (now.at - since).total_seconds()
        limit = cfg.interval(feed)
        if silent > limit:
            message = f"{feed}: no delivery for {silent:.0f} s (expected ≤ {limit:.0f} s)"
            out.append(HealthAlert("feed_silent", feed, message, silent, limit))
    return out


def _growing(series: Sequence[int], checks: int) -> bool:
    """Strictly larger at each of the last ``checks`` readings (``checks`` readings, ``checks - 1`` rises)."""
    tail = list(series)[-checks:]
    return len(tail) == checks and all(b > a for a, b in itertools.pairwise(tail))


def lag_growing(now: Reading, history: Sequence[Reading], cfg: HealthSettings) -> list[HealthAlert]:
    """A consumer group whose lag on a partition rose at every one of the last checks."""
    if now.lags is None:
        return []
    out = []
    for key, lag in sorted(now.lags.items()):
        series = [r.lags[key] for r in history if r.lags is not None and key in r.lags] + [lag]
        if _growing(series, cfg.growth_checks):
            group, topic, partition = key
            out.append(HealthAlert("lag_growing", f"{group}/{topic}/{partition}",
                                   f"{group} on {topic} partition {partition}: lag {lag} and growing",
                                   float(lag), float(series[-cfg.growth_checks])))
    return out


def outbox_growing(now: Reading, history: Sequence[Reading], cfg: HealthSettings) -> list[HealthAlert]:
    """An outbox (the hub's or a connector's) that grew at every one of the last checks."""
    out = []
    for name, depth in sorted(now.outboxes.items()):
        series = [r.outboxes.get(name, 0) for r in history] + [depth]
        if _growing(series, cfg.growth_checks):
            out.append(HealthAlert("outbox_growing", name, f"outbox {name}: {depth} pending and growing",
                                   float(depth), float(series[-cfg.growth_checks])))
    return out


def dead_letter_rate(now: Reading, history: Sequence[Reading], cfg: HealthSettings) -> list[HealthAlert]:
    """Dead letters per minute since the previous reading above the threshold."""
    if not history:
        return []
    prev = history[-1]
    minutes = max((now.at - prev.at).total_seconds() / 60.0, 1e-9)
    rate = (now.dead_letters_total - prev.dead_letters_total) / minutes
    if rate > cfg.dead_letter_rate_per_min:
        return [HealthAlert("dead_letter_rate", "all", f"{rate:.1f} dead letters per minute",
                            rate, cfg.dead_letter_rate_per_min)]
    return []


def broker_unreachable(now: Reading, history: Sequence[Reading], cfg: HealthSettings) -> list[HealthAlert]:
    """The brokers could not be read at this check (the lag rules cannot see anything meanwhile)."""
    if now.lags is None:
        return [HealthAlert("broker_unreachable", "kafka", "the Kafka brokers did not answer", 1.0, 0.0)]
    return []


RULES: dict[str, Rule] = {
    "feed_silent": feed_silent,
    "lag_growing": lag_growing,
    "outbox_growing": outbox_growing,
    "dead_letter_rate": dead_letter_rate,
    "broker_unreachable": broker_unreachable,
}


def evaluate(now: Reading, history: Sequence[Reading], cfg: HealthSettings,
             rules: Mapping[str, Rule] = RULES) -> list[HealthAlert]:
    """Every alert every rule finds in this reading."""
    return [a for rule in rules.values() for a in rule(now, history, cfg)]


@dataclass
class Transition:
    kind: str  # raised | cleared
    alert: HealthAlert
    at: datetime


class HealthMonitor:
    """Keeps recent readings and the open alerts; ``check`` returns what was raised and what cleared."""

    def __init__(self, cfg: HealthSettings, keep: int = 50, max_age: timedelta = timedelta(hours=6)) -> None:
        self.cfg = cfg
        self.history: deque[Reading] = deque(maxlen=keep)
        self.max_age = max_age
        self.open: dict[tuple[str, str], tuple[HealthAlert, datetime]] = {}

    def check(self, reading: Reading) -> list[Transition]:
        found = {a.key: a for a in evaluate(reading, list(self.history), self.cfg)}
        out: list[Transition] = []
        for key, alert in found.items():
            if key not in self.open:
                out.append(Transition("raised", alert, reading.at))
                self.open[key] = (alert, reading.at)
            else:
                self.open[key] = (alert, self.open[key][1])
        for key in [k for k in self.open if k not in found]:
            alert, _since = self.open.pop(key)
            out.append(Transition("cleared", alert, reading.at))
        self.history.append(reading)
        while self.history and reading.at - self.history[0].at > self.max_age:
            self.history.popleft()
        return out

    def alerts(self) -> list[tuple[HealthAlert, datetime]]:
        return sorted(self.open.values(), key=lambda p: p[0].key)
