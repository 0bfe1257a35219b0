"""The token-bucket limiter the hub puts in front of unauthenticated webhook failures."""

from __future__ import annotations

import pytest

from connectors.ratelimit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refused_then_refilled_at_the_rate() -> None:
    """A key gets `burst` requests at once, then one more per 1/rate seconds."""
    clock = Clock()
    bucket = TokenBucket(rate_per_s=2.0, burst=3, clock=clock)
    assert [bucket.allow("10.0.0.1") for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after("10.0.0.1") == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.allow("10.0.0.1") and not bucket.allow("10.0.0.1")
    clock.now += 100
    assert [bucket.allow("10.0.0.1") for _ in range(4)] == [True, True, True, False]  # never above burst


def test_keys_are_independent() -> None:
    """One client's flood does not spend another client's tokens."""
    bucket = TokenBucket(rate_per_s=1.0, burst=1, clock=Clock())
    assert bucket.allow("a") and not bucket.allow("a")
    assert bucket.allow("b")


def test_memory_is_bounded_and_forgets_the_least_recent_key() -> None:
    """At most max_keys buckets are kept; the least recently seen key goes first."""
    bucket = TokenBucket(rate_per_s=1.0, burst=1, max_keys=3, clock=Clock())
    for key in ("a", "b", "c"):
        bucket.allow(key)
    bucket.allow("a")  # a is recent again (and refused: no time has passed)
    bucket.allow("d")
    assert len(bucket) == 3
    assert not bucket.allow("a")  # still remembered as empty
    assert bucket.allow("b")  # forgotten, so full again


def test_a_clock_stepping_back_refills_nothing() -> None:
    """A clock going backwards neither refills nor breaks the bucket."""
    clock = Clock()
    bucket = TokenBucket(rate_per_s=1.0, burst=1, clock=clock)
    assert bucket.allow("a")
    clock.now -= 50
    assert not bucket.allow("a")
    clock.now += 50.5
    assert not bucket.allow("a")
    clock.now += 0.5
    assert bucket.allow("a")


@pytest.mark.parametrize("kw", [{"rate_per_s": 0}, {"burst": 0}, {"max_keys": 0}])
def test_nonsense_settings_are_refused(kw: dict[str, float]) -> None:
    """A zero rate, burst or key budget is a configuration error."""
    with pytest.raises(ValueError):
        TokenBucket(**kw)  # type: ignore[arg-type]
