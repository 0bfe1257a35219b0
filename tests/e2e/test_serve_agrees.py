"""`tsunagu serve` replays the kodomo/ delivery files as `tsunagu run` does: both end with the same alerts and team."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from hub.bootstrap import Database
from hub.migrate import database_url_for
from hub.pipeline.tables import AlertState, CaseEvent, ProcessedEvent
from hub.run.batch import batch_run
from hub.serve.server import HubServer
from hub.settings import Settings


def outcome(sessions: sessionmaker[Session]) -> tuple[dict[str, int], int, int]:
    """(alerts by kind, team events, kodomo events handled)."""
    with sessions() as s:
        kinds = Counter(str(k) for (k,) in s.execute(select(AlertState.kind)))
        team = int(s.scalar(select(func.count()).select_from(CaseEvent).where(CaseEvent.team_published)) or 0)
        kodomo = int(s.scalar(select(func.count()).select_from(ProcessedEvent)
                              .where(ProcessedEvent.feed == "kodomo", ProcessedEvent.stage == "household")) or 0)
    return dict(kinds), team, kodomo


def test_serve_and_run_agree_on_the_samples(kafka: str, samples_dir: Path, tmp_path: Path) -> None:
    """Same alerts by kind, same team events and the kodomo deliveries handled in both modes."""
    rid = uuid.uuid4().hex[:8]
    base = Settings(partitions=3, session_timeout_ms=1000, heartbeat_interval_ms=100, fetch_max_wait_ms=10)
    run_settings = base.model_copy(update={"kafka_bootstrap": kafka, "topic_prefix": f"ra{rid}",
                                           "hub_group": f"ra-{rid}"})
    batch_run(samples_dir, tmp_path / "out", settings=run_settings, state=tmp_path / "run", progress=None)
    run_db = Database.open(database_url_for(run_settings, tmp_path / "run"))
    try:
        expected = outcome(run_db.sessions)
    finally:
        run_db.close()
    assert expected[2] > 0 and expected[0]

    serve_settings = base.model_copy(update={"kafka_bootstrap": kafka, "topic_prefix": f"sa{rid}",
                                             "hub_group": f"sa-{rid}"})
    # the samples' deliveries are signed with the public sample secret, which only the demo accepts
    server = HubServer(serve_settings, samples_dir, host="127.0.0.1", port=0, staff_port=0, poll_interval_s=0.5,
                       state=tmp_path / "serve", install_signal_handlers=False, drain_timeout_s=30, demo=True)
    thread = threading.Thread(target=server.run, name="serve-agrees", daemon=True)
    thread.start()
    got: tuple[dict[str, int], int, int] | None = None
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and thread.is_alive():
            if server.core is not None:
                got = outcome(server.core.sessions)
                if got == expected:
                    break
            time.sleep(1)
    finally:
        server.request_stop()
        thread.join(timeout=120)
    assert got == expected
