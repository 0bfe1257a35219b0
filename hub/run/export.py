"""The export of a batch run: persons, team, alerts, dead letters, audit and a summary (from topics and store)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

from connectors.runner import RunStats
from hub import wiring
from hub.atomic import atomic_open, write_text_atomic
from hub.kafka.topicreader import read_topic
from hub.pipeline.stages import HOUSEHOLD, HubCore
from hub.pipeline.tables import ProcessedEvent
from hub.progress import Progress
from hub.topics import Topics
from schemas.deadletter import DEADLETTER_TYPE


def _jsonl(path: Path, rows: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> int:
    n = 0
    with atomic_open(path) as f:
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


def dead_letter_row(doc: dict[str, Any]) -> dict[str, Any]:
    """deadletter.jsonl's row of a dead-letter message (``jp.tsunagu.deadletter.v1`` CloudEvent or older JSON)."""
    if doc.get("type") == DEADLETTER_TYPE and isinstance(doc.get("data"), dict):
        data = doc["data"]
        if "origin" not in data:  # an earlier hub format: the DeadLetter record itself as data
            return {k: data.get(k) for k in ("source", "where", "record", "reason", "stage", "event")}
        return {"source": data.get("feed"), "where": (data.get("origin") or {}).get("where"),
                "record": data.get("record"), "reason": data.get("detail"), "stage": data.get("stage"),
                "event": data.get("event"), "code": data.get("reason")}
    return {k: doc.get(k) for k in ("source", "where", "record", "reason", "stage", "event")}


def write_export(export: Path, core: HubCore, bootstrap: str, topics: Topics,
                 stats: dict[str, RunStats], wall: float, *, unclaimed: list[str] | None = None,
                 totals: dict[str, dict[str, int]] | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Write the export files (each complete or absent) and return the summary.

    ``totals`` are the feeds' read/published counters over the whole run (every invocation of a
    resumed run); without them, the counters of ``stats`` (this invocation) are used. ``progress``
    shows the steps (three topics read back, the store read, six files written).
    """
    steps = 10
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress.show("export", done, steps)

    if progress is not None:
        progress.show("export", 0, steps)
    export.mkdir(parents=True, exist_ok=True)
    team = sorted(_unique_events(bootstrap, topics.team), key=lambda e: (e["time"], e["id"]))
    step()
    alerts = sorted(_unique_events(bootstrap, topics.alerts), key=lambda e: (e["time"], e["id"]))
    step()
    dead: list[dict[str, Any]] = []
    seen_dead: set[tuple[Any, ...]] = set()
    for raw in read_topic(bootstrap, topics.deadletter):
        dl = dead_letter_row(json.loads(raw))
        key = (dl.get("source"), dl.get("where"), dl.get("record"), dl.get("reason"))
        if key not in seen_dead:
            seen_dead.add(key)
            dead.append(dl)
    step()
    with core.sessions() as s:
        persons = list(wiring.persons_rows(s))
        audit = list(wiring.audit_rows(s))
        processed = Counter(
            feed for (feed,) in s.execute(
                select(ProcessedEvent.feed).where(ProcessedEvent.stage == HOUSEHOLD)
            )
        )
    step()
    for name, rows in (("persons", persons), ("team", team), ("alerts", alerts), ("deadletter", dead),
                       ("audit", audit)):
        _jsonl(export / f"{name}.jsonl", rows)
        step()
    dead_by_feed = Counter(d["source"] for d in dead)
    if totals is None:
        totals = {f: {"read": st.read, "published": st.published} for f, st in stats.items()}
    feeds = sorted({str(f) for f in (*totals, *processed, *dead_by_feed) if f})
    alert_kinds = Counter(a["data"]["kind"] for a in alerts if a["type"].endswith("alert.raised.v1"))
    summary = {
        "feeds": {
            f: {
                "read": totals.get(f, {}).get("read", 0),
                "published": totals.get(f, {}).get("published", 0),
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
        "unclaimed_files": len(unclaimed or []),
        "wall_time_s": round(wall, 3),
    }
    write_text_atomic(export / "summary.json", json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    step()
    return summary
