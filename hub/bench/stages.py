"""``tsunagu bench stages``: each hub stage's rate on the pipeline bench's events, in process, without a broker.

The events of :func:`hub.bench.pipeline.synthetic_events` (consents preloaded, as the pipeline bench
does) are handed to :meth:`HubCore.process_intake` in batches as raw messages on a fresh migrated
SQLite file (or a given scratch database without tables, dropped again); the ``resolved`` messages
its outbox holds are then handed to :meth:`HubCore.process_household` in the same batches. Each stage
is timed on its own, so a profiler run of this command shows where one stage spends its time.

With ``registry``, a 住民記録 event for every subject (same name, reading, birth date and address, its
own 宛名番号 and 世帯) goes through intake first (timed too), so the cases are linked to known residents
rather than making new persons.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hub.bench.pipeline import _preload_consents, scratch_database, synthetic_events
from hub.bootstrap import Database
from hub.pipeline.stages import HubCore, OutboxMessage, RawMessage
from hub.topics import Topics
from schemas.codes import Relation
from schemas.envelope import CloudEvent, stable_event_id
from schemas.events import PersonRecord, ResidentObservedV1


def _raw(topic: str, values: Sequence[tuple[bytes | None, bytes]], start: int) -> list[RawMessage]:
    return [RawMessage(topic, 0, start + i, key, value) for i, (key, value) in enumerate(values)]


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


def _drain(core: HubCore, out: list[OutboxMessage]) -> None:
    if out:
        core.outbox_done([o.seq for o in out])


def stage_bench(n: int = 2000, *, batch: int = 500, database_url: str | None = None,
                stages: Sequence[str] = ("intake", "household"), registry: bool = False) -> dict[str, Any]:
    """Events per second of each stage (``intake``, then ``household`` on its output) over ``n`` events."""
    topics = Topics("bench-stages")
    events = synthetic_events(n)
    with tempfile.TemporaryDirectory(prefix="tsunagu-bench-") as tmp, \
            scratch_database(database_url, Path(tmp)) as url:
        db = Database.open(url, migrate=False)
        try:
            _preload_consents(url, events)
            core = HubCore(db.sessions, topics)
            result: dict[str, Any] = {"events": n, "batch": batch, "database": url.split(":", 1)[0]}
            values = [(ev.sourcerecord.encode(), ev.to_json_bytes()) for ev in events]
            resolved: list[tuple[bytes | None, bytes]] = []
            if registry:
                residents = [(ev.sourcerecord.encode(), ev.to_json_bytes()) for ev in registry_events(events)]
                t = time.perf_counter()
                for i in range(0, n, batch):
                    _drain(core, core.process_intake(_raw(topics.intake, residents[i:i + batch], n + i)))
                result["registry_intake_s"] = round(time.perf_counter() - t, 3)
                result["registry_intake_events_per_s"] = round(n / result["registry_intake_s"], 1)
            t = time.perf_counter()
            for i in range(0, n, batch):
                out = core.process_intake(_raw(topics.intake, values[i:i + batch], i))
                resolved += [(o.key, o.value) for o in out if o.topic == topics.resolved]
                _drain(core, out)
            result["intake_s"] = round(time.perf_counter() - t, 3)
            result["intake_events_per_s"] = round(n / result["intake_s"], 1)
            result["resolved"] = len(resolved)
            if "household" in stages:
                team = 0
                t = time.perf_counter()
                for i in range(0, len(resolved), batch):
                    out = core.process_household(_raw(topics.resolved, resolved[i:i + batch], i))
                    team += sum(1 for o in out if o.topic == topics.team)
                    _drain(core, out)
                result["household_s"] = round(time.perf_counter() - t, 3)
                result["household_events_per_s"] = round(len(resolved) / result["household_s"], 1)
                result["team_events"] = team
        finally:
            db.close()
    return result


if __name__ == "__main__":  # python -m hub.bench.stages [n] [batch] [registry] [intake|household…]: for a profiler
    import json
    import sys

    args = sys.argv[1:]
    with_registry = "registry" in args[2:]
    print(json.dumps(stage_bench(int(args[0]) if args else 2000, batch=int(args[1]) if len(args) > 1 else 500,
                                 stages=[a for a in args[2:] if a != "registry"] or ("intake", "household"),
                                 registry=with_registry)))
