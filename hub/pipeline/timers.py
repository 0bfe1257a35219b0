"""Cumulative seconds per pipeline step (consent decision, audit, alerts), read by ``tsunagu bench``."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext


class StageTimers:
    """Seconds spent per named step, summed over every batch of one hub core."""

    def __init__(self) -> None:
        self._seconds: defaultdict[str, float] = defaultdict(float)

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._seconds[name] += time.perf_counter() - t0

    def get(self, name: str) -> float:
        return self._seconds.get(name, 0.0)

    def clear(self) -> None:
        self._seconds.clear()


def timed(timers: StageTimers | None, name: str) -> AbstractContextManager[None]:
    """``timers.timed(name)``, or nothing when no one is measuring."""
    return timers.timed(name) if timers is not None else nullcontext()
