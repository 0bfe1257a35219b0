"""Living through broker outages: capped, jittered backoff and retries that give up only after a deadline."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from kafka.errors import KafkaError

from hub.logging import get_logger

log = get_logger("tsunagu.kafka")

T = TypeVar("T")

#: what a broker outage looks like to our clients (kafka-python errors, sockets, timeouts)
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (KafkaError, OSError, TimeoutError)


class BrokerUnavailable(Exception):
    """The broker stayed unreachable for longer than allowed: one line for the operator, no data."""


@dataclass
class Backoff:
    """Delays ``base·2^n`` capped at ``cap`` with full jitter (uniform in [delay/2, delay])."""

    base_s: float = 0.5
    cap_s: float = 10.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        delay = min(self.cap_s, self.base_s * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return self.rng.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0


def retry_outage(fn: Callable[[], T], *, what: str, give_up_after_s: float, backoff: Backoff | None = None,
                 on_failure: Callable[[BaseException], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> T:
    """``fn()``, retried through broker outages until ``give_up_after_s`` has passed since the first failure.

    ``on_failure(exc)`` runs after each failure (e.g. to recreate a producer). Other errors pass through.
    """
    backoff = backoff or Backoff()
    first_failure: float | None = None
    while True:
        try:
            return fn()
        except OUTAGE_ERRORS as exc:
            now = clock()
            first_failure = now if first_failure is None else first_failure
            if now - first_failure >= give_up_after_s:
                raise BrokerUnavailable(
                    f"the Kafka broker was unreachable for {give_up_after_s:.0f} s while {what} "
                    f"({type(exc).__name__}); start again with the same --state to resume") from None
            if on_failure is not None:
                on_failure(exc)
            delay = backoff.next_delay()
            log.warning("broker unreachable; retrying", where=what, error_type=type(exc).__name__,
                        attempt=backoff.attempt, elapsed_s=round(now - first_failure, 1))
            sleep(delay)
