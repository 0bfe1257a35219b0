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
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from kafka import KafkaProducer
from sqlalchemy import func, select

from connectors.runner import ConnectorRunner, ConnectorState, RunStats, make_producer
from hub import wiring
from hub.anchoring import anchor_head, anchor_path, audit_key_of
from hub.bootstrap import open_runtime
from hub.kafka.outage import retry_outage
from hub.kafka.security import kafka_python_security
from hub.kafka.service import HubService, deadletter_group
from hub.kafka.topicreader import group_lag
from hub.logging import get_logger
from hub.ops.deadletters import sealer_of
from hub.pipeline.stages import HOUSEHOLD, INTAKE, HubCore
from hub.pipeline.tables import HubOutbox, ProcessedEvent
from hub.progress import Progress
from hub.run.export import write_export
from hub.run.sources import FEED_FOLDERS, unclaimed_files
from hub.run.state import RunError, check_export, check_sources, run_identity, state_folder
from hub.settings import Settings
from hub.topics import Topics

log = get_logger("tsunagu.run")

@dataclass
class RunResult:
    export: Path
    summary: dict[str, Any]
    stats: dict[str, RunStats] = field(default_factory=dict)

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
    check_export(export)
    unclaimed = survey_sources(sources, settings)
    started = time.monotonic()
    with state_folder(state) as state_dir:
        rid = run_identity(state_dir, settings)
        if not settings.kafka_bootstrap or settings.topic_prefix == "tsunagu":
            settings = settings.model_copy(update={"topic_prefix": f"tsunagu.run-{rid}",
                                                   "hub_group": f"tsunagu-hub-{rid}"})
        with open_runtime(settings, state_dir) as rt:
            bars = Progress(progress)
            try:
                stats = asyncio.run(
                    _drive(rt.core, settings, rt.bootstrap, rt.topics, sources, rt.connector_state, bars,
                           stop_after, hub_instances)
                )
                anchor_head(rt.sessions, anchor_path(settings, state_dir), audit_key_of(settings))
                summary = retry_outage(
                    lambda: write_export(export, rt.core, rt.bootstrap, rt.topics, stats, time.monotonic() - started,
                                         unclaimed=unclaimed, totals=rt.connector_state.totals(), progress=bars),
                    what="reading the export back", give_up_after_s=settings.broker_outage_s)
            finally:
                bars.end()
    return RunResult(export=export, summary=summary, stats=stats)


def survey_sources(sources: Path, settings: Settings) -> list[str]:
    """Refuse a sources folder with no feed; warn once per file no connector will read (names only)."""
    connectors = [*wiring.registry_connectors(sources), *wiring.case_connectors(sources, settings)]
    try:
        if not connectors:
            expected = ", ".join(f"{f}/" for f in FEED_FOLDERS)
            raise RunError(f"no feed in sources folder {sources} (expected one or more of {expected})")
        unclaimed = unclaimed_files(sources, connectors)
    finally:
        for connector in connectors:
            connector.close()
    for name in unclaimed:
        log.warning("file not read: no connector takes this name", where=name)
    return unclaimed


async def _drive(core: HubCore, settings: Settings, bootstrap: str, topics: Topics, sources: Path,
                 cstate: ConnectorState, progress: Progress,
                 stop_after: Callable[[str], None] | None, hub_instances: int = 1) -> dict[str, RunStats]:
    services = [HubService(core, settings, bootstrap, instance=f"hub-{i}") for i in range(hub_instances)]
    for service in services:
        await service.start()
    producers = [make_producer(bootstrap, **kafka_python_security(bootstrap))]
    stats: dict[str, RunStats] = {}
    try:
        for phase in wiring.phases(sources, settings, cstate):
            ids: set[tuple[str, str]] = set()
            for done, connector in enumerate(phase):
                progress.show("connectors", done, len(phase))
                runner = ConnectorRunner(connector, cstate, producers[-1], intake_topic=topics.intake,
                                         deadletter_topic=topics.deadletter, seal=sealer_of(settings))
                try:
                    st = await asyncio.to_thread(
                        retry_outage, runner.run_once, what=f"publishing {connector.name}",
                        give_up_after_s=settings.broker_outage_s,
                        on_failure=lambda _exc, r=runner: _new_producer(r, bootstrap, producers))
                finally:
                    connector.close()
                stats[connector.name] = st
                ids |= st.event_ids
                if stop_after:
                    stop_after(connector.name)
            await _wait_processed(core, ids, progress, lag=lambda: retry_outage(
                lambda: _lag(bootstrap, settings, topics), what="checking the hub's lag",
                give_up_after_s=settings.broker_outage_s))
    finally:
        for producer in producers:
            with contextlib.suppress(Exception):
                producer.close(timeout=10)
        for service in services:
            await service.stop()
    return stats


def _new_producer(runner: ConnectorRunner, bootstrap: str, producers: list[KafkaProducer]) -> None:
    """After a failed relay: a fresh producer (an idempotent one may have lost its producer id for good)."""
    old = runner.producer
    runner.producer = None
    if old is not None:
        with contextlib.suppress(Exception):
            old.close(timeout=0)
    try:
        runner.producer = make_producer(bootstrap, **kafka_python_security(bootstrap))
    except Exception as exc:  # still unreachable: the next attempt tries again
        log.warning("could not create a producer yet", error_type=type(exc).__name__)
        return
    producers.append(runner.producer)


def _lag(bootstrap: str, settings: Settings, topics: Topics) -> int:
    return group_lag(bootstrap, settings.hub_group, topics.intake) + group_lag(
        bootstrap, f"{settings.hub_group}-household", topics.resolved
    ) + group_lag(bootstrap, deadletter_group(settings), topics.deadletter)


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
