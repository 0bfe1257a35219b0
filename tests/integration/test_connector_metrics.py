"""A standalone ``tsunagu connector run`` is visible to operations: its ``--metrics-port`` serves the per-feed series
of the service's /metrics, and /ops (``hub.http.ops.collect``) reads the same counts from the shared state folder."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from connectors.runner import ConnectorState
from hub.bootstrap import Database
from hub.http.ops import collect
from hub.migrate import database_url_for
from hub.serve.feeds import run_connector
from hub.settings import Settings
from hub.topics import Topics

TOKEN = "connector-metrics-token"


def scrape(port: int) -> dict[tuple[str, str], float]:
    """(metric sample name, feed) → value, read with Prometheus' own parser."""
    r = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    r.raise_for_status()
    return {(s.name, s.labels.get("feed", "")): s.value
            for fam in text_string_to_metric_families(r.text) for s in fam.samples}


def test_connector_run_serves_and_records_its_feed_metrics(kafka: str, samples_dir: Path, tmp_path: Path) -> None:
    """While polling, /metrics shows the feed's records read, dead letters, last success and published events;
    after it stopped, /ops on the same state folder shows the same numbers."""
    settings = Settings(kafka_bootstrap=kafka, topic_prefix=f"cm{int(time.time() * 1000) % 10**8}", partitions=2,
                        metrics_token=SecretStr(TOKEN))
    state = tmp_path / "state"
    stop = threading.Event()
    ports: list[int] = []
    result: dict[str, object] = {}

    def run() -> None:
        result.update(run_connector(settings, "houkatsu", samples_dir, state=state, once=False, poll_interval_s=0.2,
                                    stop=stop, metrics_port=0, metrics_host="127.0.0.1", on_listening=ports.append))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    seen: dict[tuple[str, str], float] = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and thread.is_alive():
            if ports:
                seen = scrape(ports[0])
                if seen.get(("tsunagu_connector_records_read_total", "houkatsu"), 0) > 0 \
                        and seen.get(("tsunagu_connector_outbox_pending", "houkatsu"), 1) == 0 \
                        and ("tsunagu_feed_last_success_timestamp_seconds", "houkatsu") in seen:
                    break
            time.sleep(0.2)
        assert ports, "the metrics listener did not start"
        unauthorized = httpx.get(f"http://127.0.0.1:{ports[0]}/metrics", timeout=10)
        assert unauthorized.status_code == 401
        assert httpx.get(f"http://127.0.0.1:{ports[0]}/healthz", timeout=10).status_code == 200
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()

    cstate = ConnectorState.in_dir(state)
    try:
        totals = cstate.totals()["houkatsu"]
    finally:
        cstate.dispose()
    assert totals["read"] > 0 and totals["dead_letters"] > 0  # the samples hold bad rows
    assert seen[("tsunagu_connector_records_read_total", "houkatsu")] == totals["read"]
    assert seen[("tsunagu_connector_dead_letters_total", "houkatsu")] == totals["dead_letters"]
    assert seen[("tsunagu_events_published_total", "houkatsu")] == totals["events"] == result["published"]
    assert seen[("tsunagu_connector_records_read_total", "shogai")] == 0

    # /ops on the same folder (as ``tsunagu serve --state`` or ``tsunagu status --state`` read it)
    db = Database.open(database_url_for(settings, state))
    cstate = ConnectorState.in_dir(state)
    try:
        snapshot = collect(db.sessions, cstate, Topics(settings.topic_prefix), settings=settings)
    finally:
        db.close()
        cstate.dispose()
    row = next(f for f in snapshot.feeds if f.feed == "houkatsu")
    assert (row.records_read, row.connector_dead_letters) == (totals["read"], totals["dead_letters"])
    assert row.last_success_at is not None and row.last_success_at.endswith("+09:00")
    assert next(f for f in snapshot.feeds if f.feed == "shogai").last_success_at is None
