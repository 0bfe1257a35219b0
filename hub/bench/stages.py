"""``tsunagu bench stages``: each hub stage's rate on the pipeline bench's events, in process, without a broker.

The events of :func:`hub.bench.pipeline.synthetic_events` (consents preloaded, as the pipeline bench
does) are handed to :meth:`HubCore.process_intake` in batches as raw messages on a fresh migrated
SQLite file (or a given scratch database without tables, dropped again); the ``resolved`` messages
its outbox holds are then handed to :meth:`HubCore.process_household` in the same batches, exactly as
the service hands them on. Each stage is timed on its own, so a profiler run shows where one stage
spends its time (``profile_to``: stage 2 under cProfile, stats written to that file).

With ``registry``, a 住民記録 event for every subject (same name, reading, birth date and address, its
own 宛名番号 and 世帯) goes through intake first (timed too), so the cases are linked to known residents
rather than making new persons. With ``late_every`` K, every K-th subject's consent arrives only after
ten more case events (that case is held, then released by the late consent).
"""

from __future__ import annotations

import cProfile
import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hub.bench.pipeline import _preload_consents, consents_for, scratch_database, synthetic_events
from hub.bootstrap import Database, make_core
from hub.http.consent.models import RECORDED, consent_event
from hub.pipeline.stages import HubCore, OutboxMessage, RawMessage
from hub.settings import Settings
from hub.topics import Topics
from schemas.codes import Relation
from schemas.envelope import CloudEvent, stable_event_id
from schemas.events import PersonRecord, ResidentObservedV1


def _raw(topic: str, events: Sequence[CloudEvent], start: int = 0) -> list[RawMessage]:
    return [RawMessage(topic, 0, start + i, ev.sourcerecord.encode(), ev.to_json_bytes())
            for i, ev in enumerate(events)]


def _batches(msgs: Sequence[RawMessage], size: int) -> list[Sequence[RawMessage]]:
    return [msgs[i:i + size] for i in range(0, len(msgs), size)]


def _timed(core: HubCore, step: Callable[[Sequence[RawMessage]], list[OutboxMessage]],
           batches: list[Sequence[RawMessage]], profile: cProfile.Profile | None = None,
           ) -> tuple[float, list[OutboxMessage]]:
    """Seconds for all batches, and what they put in the outbox (relayed, i.e. deleted, after each batch)."""
    out: list[OutboxMessage] = []
    t0 = time.perf_counter()
    if profile is not None:
        profile.enable()
    for b in batches:
        written = step(b)
        if written:
            core.outbox_done([o.seq for o in written])
        out += written
    if profile is not None:
        profile.disable()
    return time.perf_counter() - t0, out


def registry_events(cases: Sequence[CloudEvent]) -> list[CloudEvent]:
    """A 住民記録 event for each case's subject: same person, a resident number and household of their own."""
    out = []
    for n, ev in enumerate(cases):
        subject = ev.data["subject"]
        no, household = f"{1_000_000_000 + n}", f"{5_000_000_000 + n}"
        person = PersonRecord.model_validate({**subject, "record": f"registry:{no}", "resident_no": no,
                                              "household_no": household, "relation": Relation.HEAD.value})
        data = ResidentObservedV1(resident=person, moved_on=ev.time.date(), snapshot="bench").model_dump(mode="json")
        out.append(CloudEvent(id=stable_event_id("registry", no), source="urn:tsunagu:connector:registry",
                              type="jp.tsunagu.resident.observed.v1", time=ev.time, sourcerecord=f"registry:{no}",
                              data=data))
    return out


def mixed_events(n: int, late_every: int) -> tuple[list[CloudEvent], list[CloudEvent]]:
    """The bench's ``n`` case events with, for every ``late_every``-th subject, its consent arriving only after
    ten more case events; (events in order, the cases whose consent is preloaded)."""
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


def stage_bench(n: int = 2000, *, batch: int = 500, database_url: str | None = None,
                stages: Sequence[str] = ("intake", "household"), registry: bool = False, late_every: int = 0,
                profile_to: Path | None = None) -> dict[str, Any]:
    """Events per second of each stage (``intake``, then ``household`` on its output) over ``n`` case events."""
    topics = Topics("bench-stages")
    events, preload = mixed_events(n, late_every)
    cases = [ev for ev in events if ev.type != RECORDED]
    with tempfile.TemporaryDirectory(prefix="tsunagu-bench-") as tmp, \
            scratch_database(database_url, Path(tmp)) as url:
        _preload_consents(url, preload)
        db = Database.open(url, migrate=False)
        try:
            core = make_core(Settings(), db.sessions, topics)
            result: dict[str, Any] = {"events": len(events), "batch": batch, "late_consents": len(events) - n,
                                      "database": url.split(":", 1)[0].split("+", 1)[0]}
            if registry:
                took, _ = _timed(core, core.process_intake,
                                 _batches(_raw(topics.intake, registry_events(cases), len(events)), batch))
                result["registry_intake_s"] = round(took, 3)
                result["registry_intake_events_per_s"] = round(len(cases) / took, 1)
            took, out1 = _timed(core, core.process_intake, _batches(_raw(topics.intake, events), batch))
            result["intake_s"] = round(took, 3)
            result["intake_events_per_s"] = round(len(events) / took, 1)
            resolved = [RawMessage(m.topic, 0, i, m.key, m.value) for i, m in enumerate(out1)
                        if m.topic == topics.resolved]
            result["resolved"] = len(resolved)
            if "household" in stages:
                prof = cProfile.Profile() if profile_to else None
                took, out2 = _timed(core, core.process_household, _batches(resolved, batch), prof)
                if prof is not None and profile_to is not None:
                    prof.dump_stats(str(profile_to))
                result["household_s"] = round(took, 3)
                result["household_events_per_s"] = round(len(resolved) / took, 1)
                result["team_events"] = sum(1 for o in out2 if o.topic == topics.team)
                by_topic: dict[str, int] = {}
                for m in out2:
                    name = m.topic.removeprefix(topics.prefix + ".")
                    by_topic[name] = by_topic.get(name, 0) + 1
                result["household_out"] = by_topic
            result["timers_s"] = {k: round(core.timers.get(k), 3) for k in ("decide", "audit", "alerts")}
            result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        finally:
            db.close()
    return result
