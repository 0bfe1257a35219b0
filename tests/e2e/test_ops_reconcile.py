"""After a run over the samples (with their planted bad records), /ops.json and /metrics count the same dead letters."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from connectors.runner import ConnectorState
from hub.bootstrap import Database
from hub.http.ops import make_ops_router
from hub.migrate import database_url_for
from hub.run.batch import batch_run
from hub.serve.metrics import StoreCollector
from hub.settings import Settings
from hub.topics import Topics

LINE = re.compile(r'^tsunagu_dead_letters_total\{feed="([^"]+)",reason="([^"]+)",stage="([^"]+)"\} ([0-9.]+)$')


def test_ops_and_metrics_agree_on_dead_letters(kafka: str, samples_dir: Path, truth: dict[str, Any],
                                               tmp_path: Path) -> None:
    """Dead letters by (stage, feed, reason) are equal on /ops.json and /metrics and cover the planted bad ones."""
    rid = uuid.uuid4().hex[:8]
    settings = Settings(kafka_bootstrap=kafka, topic_prefix=f"rc{rid}", hub_group=f"rc-{rid}", partitions=3,
                        session_timeout_ms=1000, heartbeat_interval_ms=100, fetch_max_wait_ms=10)
    state = tmp_path / "state"
    batch_run(samples_dir, tmp_path / "out", settings=settings, state=state, progress=None)
    exported = [json.loads(line) for line in (tmp_path / "out" / "deadletter.jsonl").read_text().splitlines()]

    db = Database.open(database_url_for(settings, state))
    cstate = ConnectorState.in_dir(state)
    try:
        registry = CollectorRegistry()
        registry.register(StoreCollector(db.sessions, cstate, settings))
        metrics = generate_latest(registry).decode()
        app = FastAPI()
        app.include_router(make_ops_router(db.sessions, cstate, Topics(settings.topic_prefix), settings=settings))
        with TestClient(app) as client:
            ops = client.get("/ops.json").json()
    finally:
        db.close()
        cstate.dispose()

    from_metrics = {(m[3], m[1], m[2]): int(float(m[4])) for m in map(LINE.match, metrics.splitlines()) if m}
    from_ops = {(d["stage"], d["feed"], d["reason"]): d["count"] for d in ops["dead_letters_by_reason"]}
    assert from_metrics == from_ops
    assert sum(from_ops.values()) == ops["dead_letters_total"] == len(exported)
    assert ops["dead_letters_total"] >= len(truth["bad"]) == 5
    assert {stage for stage, _feed, _reason in from_ops} >= {"connector", "webhook"}
    assert sum(f["dead_letters"] for f in ops["feeds"]) == ops["dead_letters_total"]
    bad_records = {b["record"] for b in truth["bad"]}
    text = json.dumps(ops, ensure_ascii=False)
    assert not [r for r in bad_records if r and r in text]  # record keys never reach /ops
