"""Per-stage micro-benchmark without a broker: bench events through process_intake, then process_household.

``python -m hub.bench.stages --events 2000 [--database URL] [--batch 500] [--late-consents K] [--profile FILE]
[--default-gc]``

The ``tsunagu bench`` events (houkatsu case openings, every subject with a consent) are turned into
raw intake messages; stage 1 runs over them in batches and its outbox (the ``resolved`` topic) becomes
stage 2's input, exactly as the service hands it on. Each stage is timed on its own (events/s); with
``--profile`` stage 2 runs under cProfile and the stats are written to FILE. The database is a fresh
SQLite file (or ``--database``, a scratch database without tables, dropped at the end).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hub.bench.pipeline import _preload_consents, consents_for, scratch_database, synthetic_events
from hub.bootstrap import Database, make_core
from hub.http.consent.models import consent_event
from hub.kafka.service import tune_gc
from hub.pipeline.stages import OutboxMessage, RawMessage
from hub.settings import Settings
from hub.topics import Topics
from schemas.envelope import CloudEvent


def _batches(msgs: Sequence[RawMessage], size: int) -> list[Sequence[RawMessage]]:
    return [msgs[i:i + size] for i in range(0, len(msgs), size)]


def _timed(step: Callable[[Sequence[RawMessage]], list[OutboxMessage]], batches: list[Sequence[RawMessage]],
           profile: cProfile.Profile | None = None) -> tuple[float, list[OutboxMessage]]:
    out: list[OutboxMessage] = []
    t0 = time.perf_counter()
    if profile is not None:
        profile.enable()
    for b in batches:
        out += step(b)
    if profile is not None:
        profile.disable()
    return time.perf_counter() - t0, out


def mixed_events(n: int, late_every: int) -> tuple[list[CloudEvent], list[CloudEvent]]:
    """The bench's ``n`` case events with, for every ``late_every``-th subject, its consent arriving only after
    ten more case events (so that case is held, then released by a late consent); (events in order, preloaded)."""
    cases = synthetic_events(n)
    late = {ev.id for i, ev in enumerate(cases) if late_every and i % late_every == 0}
    consents = {c.subject_record: consent_event(c) for c in consents_for(ev for ev in cases if ev.id in late)}
    out: list[CloudEvent] = []
    waiting: list[CloudEvent] = []
    for i, ev in enumerate(cases):
        out.append(ev)
        if ev.id in late:
            waiting.append(consents[ev.sourcerecord])
        if i % 10 == 9:
            out += waiting
            waiting = []
    return out + waiting, [ev for ev in cases if ev.id not in late]


def run_stages(n: int = 2000, *, batch: int = 500, database_url: str | None = None,
               profile_to: Path | None = None, late_every: int = 0) -> dict[str, Any]:
    """Both stages on ``n`` bench events (with late consents for every ``late_every``-th subject); events/s per
    stage and the outbox counts per topic."""
    topics = Topics("stagebench")
    events, preload = mixed_events(n, late_every)
    raw = [RawMessage(topics.intake, 0, i, ev.sourcerecord.encode(), ev.to_json_bytes()) for i, ev in enumerate(events)]
    with tempfile.TemporaryDirectory(prefix="tsunagu-stages-") as tmp, scratch_database(database_url, Path(tmp)) as url:
        _preload_consents(url, preload)
        db = Database.open(url, migrate=False)
        try:
            core = make_core(Settings(), db.sessions, topics)
            intake_s, out1 = _timed(core.process_intake, _batches(raw, batch))
            resolved = [RawMessage(m.topic, 0, i, m.key, m.value) for i, m in enumerate(out1)
                        if m.topic == topics.resolved]
            core.outbox_done([m.seq for m in out1])
            prof = cProfile.Profile() if profile_to else None
            household_s, out2 = _timed(core.process_household, _batches(resolved, batch), prof)
            if prof is not None and profile_to is not None:
                prof.dump_stats(str(profile_to))
        finally:
            db.close()
    by_topic: dict[str, int] = {}
    for m in out2:
        by_topic[m.topic.removeprefix("stagebench.")] = by_topic.get(m.topic.removeprefix("stagebench."), 0) + 1
    return {
        "events": len(events), "batch": batch, "late_consents": len(events) - n,
        "database": url.split(":", 1)[0].split("+", 1)[0],
        "intake_events_per_s": round(len(events) / intake_s, 1),
        "household_events_per_s": round(len(resolved) / household_s, 1),
        "household_out": by_topic,
        "timers_s": {k: round(core.timers.get(k), 3) for k in ("decide", "audit", "alerts")},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--database", default=None)
    p.add_argument("--profile", type=Path, default=None)
    p.add_argument("--late-consents", type=int, default=0, metavar="K",
                   help="every K-th subject's consent arrives after its case (0: all preloaded)")
    p.add_argument("--default-gc", action="store_true", help="keep Python's GC thresholds (the hub service tunes them)")
    a = p.parse_args(argv)
    if not a.default_gc:
        tune_gc()
    print(json.dumps(run_stages(a.events, batch=a.batch, database_url=a.database, profile_to=a.profile,
                                late_every=a.late_consents)))


if __name__ == "__main__":
    main()
