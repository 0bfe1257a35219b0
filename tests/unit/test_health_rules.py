"""The operations health rules are pure functions: each fires on its condition and not otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.ops.health import HealthMonitor, HealthSettings, Reading, evaluate

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
CFG = HealthSettings(expected_interval_s={"kodomo": 3600}, default_interval_s=86400, growth_checks=3,
                     dead_letter_rate_per_min=5)


def reading(minutes: float, *, last: datetime | None = T0, lag: int = 0, outbox: int = 0, dead: int = 0,
            lags_known: bool = True) -> Reading:
    return Reading(at=T0 + timedelta(minutes=minutes), last_success={"kodomo": last, "registry": last},
                   lags={("g", "t", 0): lag} if lags_known else None, outboxes={"hub": outbox},
                   dead_letters_total=dead)


def rules(r: Reading, history: list[Reading]) -> set[tuple[str, str]]:
    return {a.key for a in evaluate(r, history, CFG)}


def test_feed_silent_uses_each_feeds_interval() -> None:
    """kodomo (1 h expected) is silent after 61 min while registry (default 1 day) is not."""
    assert rules(reading(59), []) == set()
    assert rules(reading(61), []) == {("feed_silent", "kodomo")}
    assert rules(reading(24 * 60 + 1), []) == {("feed_silent", "kodomo"), ("feed_silent", "registry")}


def test_growth_needs_consecutive_rises() -> None:
    """Lag and outbox alert only after rising at every one of the last three checks; a dip resets."""
    hist = [reading(0, lag=1, outbox=1), reading(1, lag=5, outbox=1)]
    assert ("lag_growing", "g/t/0") in rules(reading(2, lag=9, outbox=3), hist)
    assert ("outbox_growing", "hub") not in rules(reading(2, lag=9, outbox=3), hist)
    assert rules(reading(2, lag=4), hist) == set()
    grow = [reading(0, outbox=1), reading(1, outbox=2)]
    assert rules(reading(2, outbox=3), grow) == {("outbox_growing", "hub")}


def test_dead_letter_rate_and_unreachable_broker() -> None:
    """Six dead letters in a minute exceed 5/min; five do not; unreadable lags mean the broker is away."""
    assert rules(reading(1, dead=6), [reading(0)]) == {("dead_letter_rate", "all")}
    assert rules(reading(1, dead=5), [reading(0)]) == set()
    assert rules(reading(0, lags_known=False), []) == {("broker_unreachable", "kafka")}


def test_monitor_raises_once_and_clears_by_itself() -> None:
    """An alert is raised on the first failing check, not repeated while it lasts, and cleared when it ends."""
    mon = HealthMonitor(CFG)
    first = mon.check(reading(61))
    assert [(t.kind, t.alert.key) for t in first] == [("raised", ("feed_silent", "kodomo"))]
    assert mon.check(reading(62)) == []
    assert [a.key for a, _since in mon.alerts()] == [("feed_silent", "kodomo")]
    back = mon.check(reading(63, last=T0 + timedelta(minutes=63)))
    assert [(t.kind, t.alert.key) for t in back] == [("cleared", ("feed_silent", "kodomo"))]
    assert mon.alerts() == []
