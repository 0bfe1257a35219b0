"""A token-bucket rate limiter per client key, with bounded memory, for refusing floods of unauthenticated requests.

Pure and clock-injected: the hub's HTTP layer asks ``allow(key)`` (key = the client's address)
before doing any work for a request that already failed authentication once, and answers 429
when it says no. Memory is bounded by ``max_keys``: the least recently seen keys are forgotten
first (a forgotten key starts again with a full bucket, which only ever errs on the lenient side).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_RATE_PER_S = 1.0
DEFAULT_BURST = 10
DEFAULT_MAX_KEYS = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBucket:
    """``burst`` tokens per key, refilled at ``rate_per_s``; each allowed request spends ``cost``."""

    def __init__(
        self,
        rate_per_s: float = DEFAULT_RATE_PER_S,
        burst: float = DEFAULT_BURST,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate_per_s > 0, burst >= 1 and max_keys >= 1 are required")
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(0.0, now - bucket.updated)  # a clock that steps back refills nothing
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate_per_s)
            bucket.updated = max(bucket.updated, now)
        return bucket

    def allow(self, key: str, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens of ``key`` if it has them; False (nothing spent) when it does not."""
        bucket = self._bucket(key, self.clock())
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return True
        return False

    def retry_after(self, key: str, cost: float = 1.0) -> float:
        """Seconds until ``key`` has ``cost`` tokens again (0 when it has them now); for a Retry-After header."""
        bucket = self._bucket(key, self.clock())
        missing = cost - bucket.tokens
        return 0.0 if missing <= 0 else missing / self.rate_per_s

    def __len__(self) -> int:
        return len(self._buckets)
