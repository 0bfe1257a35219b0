"""The batch run: ``tsunagu run --sources DIR --once --export OUT`` (../shared/domain/outputs.md).

Everything goes through the broker and the hub: connectors publish to Kafka, the hub
consumes, and the export reads the team, alert and dead-letter topics back. ``--state``
keeps the database, connector checkpoints/outboxes and the topic names between runs, so
a run interrupted at any moment and started again with the same state and the same
external broker ends with the same export as an uninterrupted one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import func, select

from connectors.runner import ConnectorRunner, ConnectorState, RunStats, make_producer
from hub import wiring
from hub.bootstrap import open_runtime
from hub.kafka.service import HubService
from hub.kafka.topicreader import group_lag, read_topic
from hub.logging import get_logger
from hub.pipeline.stages import HOUSEHOLD, INTAKE, HubCore
from hub.pipeline.tables import HubOutbox, ProcessedEvent
from hub.settings import Settings
from hub.topics import Topics

log = get_logger("tsunagu.run")


class RunError(Exception):
    """A run that cannot start (missing sources, unreadable folder): one line for the operator."""


@dataclass
class RunResult:
    export: Path
    summary: dict[str, Any]
    stats: dict[str, RunStats] = field(default_factory=dict)


def check_sources(sources: Path) -> None:
    if not sources.exists():
        raise RunError(f"sources folder not found: {sources}")
    if not sources.is_dir():
        raise RunError(f"sources is not a folder: {sources}")
    if not os.access(sources, os.R_OK | os.X_OK):
        raise RunError(f"sources folder is not readable: {sources}")
    try:
        next(iter(sources.iterdir()), None)
    except OSError as exc:
        raise RunError(f"sources folder is not readable: {sources} ({type(exc).__name__})") from None


STATE_FILES = ("run.json", "hub.sqlite", "hub.sqlite-wal", "hub.sqlite-shm", "connectors.sqlite",
               "connectors.sqlite-wal", "connectors.sqlite-shm")


def run_identity(state_dir: Path, settings: Settings) -> str:
    """A stable id per state folder: topics and consumer groups of a resumed run are the same ones.

    The embedded broker keeps nothing once it stops, so a state folder made with it cannot be
    resumed: the run starts over from the sources (ids are stable, so the result is the same).
    A state made with one external cluster cannot be resumed against another.
    """
    marker = state_dir / "run.json"
    broker = settings.kafka_bootstrap or "embedded"
    if marker.exists():
        prior = json.loads(marker.read_text(encoding="utf-8"))
        if prior.get("broker") == broker != "embedded":
            return str(prior["run"])
        if prior.get("broker") != "embedded":
            raise RunError("this --state was made with another Kafka cluster; use a new --state folder")
        if settings.database_url:
            raise RunError("this --state was made with the embedded broker and cannot be resumed; use a new --state")
        log.warning("state made with the embedded broker: starting over", state_dir=str(state_dir))
        for name in STATE_FILES:
            (state_dir / name).unlink(missing_ok=True)
    rid = uuid.uuid4().hex[:12]
    marker.write_text(json.dumps({"run": rid, "broker": broker}), encoding="utf-8")
    return rid


@contextlib.contextmanager
def state_folder(state: Path | None) -> Iterator[Path]:
    if state is not None:
        state.mkdir(parents=True, exist_ok=True)
        yield state
        return
    with tempfile.TemporaryDirectory(prefix="tsunagu-state-") as tmp:
        yield Path(tmp)


class Progress:
    """A progress line on stderr for long runs (counts only, never data)."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self.start = time.monotonic()
        self._last = 0.0

    def show(self, phase: str, done: int, total: int, force: bool = False) -> None:
        if self.stream is None:
            return
        t = time.monotonic()
        if not force and t - self._last < 2.0:
            return
        self._last = t
        self.stream.write(f"\r[{t - self.start:6.1f}s] {phase}: {done}/{total} 処理済み processed   ")
        self.stream.flush()

    def end(self) -> None:
        if self.stream is not None and self._last:
            self.stream.write("\n")
            self.stream.flush()


def batch_run(
    sources: Path,
    export: Path,
    *,
    settings: Settings,
    state: Path | None = None,
    progress: TextIO | None = sys.stderr,
    stop_after: Callable[[str], None] | None = None,
    hub_instances: int = 1,
) -> RunResult:
    """Run every feed under ``sources`` once through Kafka and the hub and write ``export``."""
    check_sources(sources)
    started = time.monotonic()
    with state_folder(state) as state_dir:
        rid = run_identity(state_dir, settings)
        if not settings.kafka_bootstrap or settings.topic_prefix == "tsunagu":
            settings = settings.model_copy(update={"topic_prefix": f"tsunagu.run-{rid}",
                                                   "hub_group": f"tsunagu-hub-{rid}"})
        with open_runtime(settings, state_dir) as rt:
            stats = asyncio.run(
                _drive(rt.core, settings, rt.bootstrap, rt.topics, sources, rt.connector_state, Progress(progress),
                       stop_after, hub_instances)
            )
            summary = write_export(export, rt.core, rt.bootstrap, rt.topics, stats, time.monotonic() - started)
    return RunResult(export=export, summary=summary, stats=stats)


async def _drive(core: HubCore, settings: Settings, bootstrap: str, topics: Topics, sources: Path,
                 cstate: ConnectorState, progress: Progress,
                 stop_after: Callable[[str], None] | None, hub_instances: int = 1) -> dict[str, RunStats]:
    services = [HubService(core, settings, bootstrap, instance=f"hub-{i}") for i in range(hub_instances)]
    for service in services:
        await service.start()
    producer = make_producer(bootstrap)
    stats: dict[str, RunStats] = {}
    try:
        for phase in wiring.phases(sources, settings, cstate):
            ids: set[tuple[str, str]] = set()
            for connector in phase:
                runner = ConnectorRunner(connector, cstate, producer, intake_topic=topics.intake,
                                         deadletter_topic=topics.deadletter)
                try:
                    st = await asyncio.to_thread(runner.run_once)
                finally:
                    connector.close()
                stats[connector.name] = st
                ids |= st.event_ids
                if stop_after:
                    stop_after(connector.name)
            await _wait_processed(core, ids, progress, lag=lambda: _lag(bootstrap, settings, topics))
    finally:
        producer.close(timeout=10)
        for service in services:
            await service.stop()
        progress.end()
    return stats


def _lag(bootstrap: str, settings: Settings, topics: Topics) -> int:
    return group_lag(bootstrap, settings.hub_group, topics.intake) + group_lag(
        bootstrap, f"{settings.hub_group}-household", topics.resolved
    )


async def _wait_processed(core: HubCore, ids: set[tuple[str, str]], progress: Progress, *,
                          lag: Callable[[], int] | None = None, quiet_s: float = 0.5,
                          timeout_s: float = 3600) -> None:
    """Wait until the hub finished every event of this phase and both stages have no lag.

    Finished = handled at the household stage, or dead-lettered at intake. The lag check (the
    hub's committed offsets against the topics' highwater) also covers events an interrupted
    earlier run had published but the hub had not yet handled.
    """
    deadline = time.monotonic() + timeout_s
    total = len(ids)
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        done, activity, outbox = await asyncio.to_thread(_progress_counts, core, ids)
        progress.show("hub", done, total)
        if activity != last_count or outbox:
            last_count, last_change = activity, time.monotonic()
        if done >= total and not outbox and time.monotonic() - last_change >= quiet_s:
            if lag is None or await asyncio.to_thread(lag) == 0:
                progress.show("hub", done, total, force=True)
                return
            last_change = time.monotonic()
        await asyncio.sleep(0.1)
    raise RunError("the hub did not finish processing in time")


def _progress_counts(core: HubCore, ids: set[tuple[str, str]]) -> tuple[int, int, int]:
    with core.sessions() as s:
        finished = {
            (r.source, r.event_id)
            for r in s.execute(
                select(ProcessedEvent.source, ProcessedEvent.event_id).where(
                    (ProcessedEvent.stage == HOUSEHOLD)
                    | ((ProcessedEvent.stage == INTAKE) & (ProcessedEvent.outcome == "dead"))
                )
            )
        }
        activity = s.scalar(select(func.count()).select_from(ProcessedEvent)) or 0
        outbox = s.scalar(select(func.count()).select_from(HubOutbox)) or 0
    return len(ids & finished), activity, outbox


def _jsonl(path: Path, rows: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n")
            n += 1
    return n


def _unique_events(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    seen: set[tuple[str, str]] = set()
    out: list[dict[str, Any]] = []
    for raw in read_topic(bootstrap, topic):
        ev = json.loads(raw)
        key = (ev.get("source", ""), ev.get("id", ""))
        if key in seen:
            continue  # at-least-once: a redelivered copy
        seen.add(key)
        out.append(ev)
    return out


def write_export(export: Path, core: HubCore, bootstrap: str, topics: Topics,
                 stats: dict[str, RunStats], wall: float) -> dict[str, Any]:
    export.mkdir(parents=True, exist_ok=True)
    team = sorted(_unique_events(bootstrap, topics.team), key=lambda e: (e["time"], e["id"]))
    alerts = sorted(_unique_events(bootstrap, topics.alerts), key=lambda e: (e["time"], e["id"]))
    dead: list[dict[str, Any]] = []
    seen_dead: set[tuple[Any, ...]] = set()
    for raw in read_topic(bootstrap, topics.deadletter):
        dl = json.loads(raw)
        key = (dl.get("source"), dl.get("where"), dl.get("record"), dl.get("reason"))
        if key not in seen_dead:
            seen_dead.add(key)
            dead.append({k: dl.get(k) for k in ("source", "where", "record", "reason", "stage", "event")})
    with core.sessions() as s:
        persons = list(wiring.persons_rows(s))
        audit = list(wiring.audit_rows(s))
        processed = Counter(
            feed for (feed,) in s.execute(
                select(ProcessedEvent.feed).where(ProcessedEvent.stage == HOUSEHOLD)
            )
        )
    _jsonl(export / "persons.jsonl", persons)
    _jsonl(export / "team.jsonl", team)
    _jsonl(export / "alerts.jsonl", alerts)
    _jsonl(export / "deadletter.jsonl", dead)
    _jsonl(export / "audit.jsonl", audit)
    dead_by_feed = Counter(d["source"] for d in dead)
    feeds = sorted({str(f) for f in (*stats, *processed, *dead_by_feed) if f})
    alert_kinds = Counter(a["data"]["kind"] for a in alerts if a["type"].endswith("alert.raised.v1"))
    summary = {
        "feeds": {
            f: {
                "read": stats[f].read if f in stats else 0,
                "published": stats[f].published if f in stats else 0,
                "processed": processed.get(f, 0),
                "dead_lettered": dead_by_feed.get(f, 0),
            }
            for f in feeds
        },
        "persons": len({p["person"] for p in persons}),
        "records": len(persons),
        "team_events": len(team),
        "alerts": dict(sorted(alert_kinds.items())),
        "alert_events": len(alerts),
        "dead_letters": len(dead),
        "audit_entries": len(audit),
        "wall_time_s": round(wall, 3),
    }
    (export / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return summary
