"""`tsunagu deadletter list/show/replay` over a run's state: reasons and origins, sealed originals, same-id replays."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from connectors.sealing import Sealer
from hub.bootstrap import Database
from hub.cli.main import app
from hub.kafka.topicreader import read_topic
from hub.migrate import database_url_for
from hub.ops.deadletters import DeadLetterAccess, DeadLetterRow
from hub.run.batch import batch_run
from hub.settings import Settings

ADMIN_TOKEN = "admin-token-0123456789"
BAD = "houkatsu:C03-9999-0000"


@pytest.fixture(scope="module")
def run_state(kafka: str, samples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    rid = uuid.uuid4().hex[:8]
    key = Sealer.new_key()
    env = {"TSUNAGU_KAFKA_BOOTSTRAP": kafka, "TSUNAGU_TOPIC_PREFIX": f"dl{rid}", "TSUNAGU_HUB_GROUP": f"dl-{rid}",
           "TSUNAGU_PARTITIONS": "3", "TSUNAGU_SESSION_TIMEOUT_MS": "1000", "TSUNAGU_HEARTBEAT_INTERVAL_MS": "100",
           "TSUNAGU_DEADLETTER_KEY": key, "TSUNAGU_API_TOKENS": json.dumps({ADMIN_TOKEN: "admin"}),
           "TSUNAGU_LOG_LEVEL": "WARNING"}
    settings = Settings(kafka_bootstrap=kafka, topic_prefix=f"dl{rid}", hub_group=f"dl-{rid}", partitions=3,
                        session_timeout_ms=1000, heartbeat_interval_ms=100, deadletter_key=key)
    state = tmp_path_factory.mktemp("state")
    batch_run(samples_dir, tmp_path_factory.mktemp("out"), settings=settings, state=state, progress=None)
    return {"env": env, "state": state, "settings": settings, "sources": samples_dir}


def cli(run_state: dict[str, Any], *args: str) -> Any:
    return CliRunner().invoke(app, list(args), env=run_state["env"], catch_exceptions=False)


def test_list_and_show_never_print_record_keys_or_bytes(run_state: dict[str, Any]) -> None:
    """list --json filters by feed and reason; show gives reason and origin; neither shows a record key."""
    out = cli(run_state, "deadletter", "list", "--state", str(run_state["state"]), "--json")
    assert out.exit_code == 0, out.output
    every = json.loads(out.output)["dead_letters"]
    assert {d["stage"] for d in every} >= {"connector", "webhook"} and len(every) >= 5
    assert BAD not in out.output
    houkatsu = json.loads(cli(run_state, "deadletter", "list", "--state", str(run_state["state"]), "--feed",
                              "houkatsu", "--json").output)["dead_letters"]
    assert houkatsu and {d["feed"] for d in houkatsu} == {"houkatsu"}
    one = houkatsu[0]
    by_reason = json.loads(cli(run_state, "deadletter", "list", "--state", str(run_state["state"]), "--reason",
                               one["reason"], "--json").output)["dead_letters"]
    assert one["id"] in {d["id"] for d in by_reason} and {d["reason"] for d in by_reason} == {one["reason"]}
    shown = cli(run_state, "deadletter", "show", one["id"][:16], "--state", str(run_state["state"]))
    assert shown.exit_code == 0
    doc = json.loads(shown.output)
    assert doc["origin"]["scope"].endswith(".csv") and doc["origin"]["position"] and doc["original_kept"] is True
    assert BAD not in shown.output


def test_raw_needs_an_admin_token_and_is_audited(run_state: dict[str, Any]) -> None:
    """--raw without an admin token is refused; with it the original line comes back and the reading is audited."""
    state = run_state["state"]
    rows = json.loads(cli(run_state, "deadletter", "list", "--state", str(state), "--feed", "houkatsu",
                          "--json").output)["dead_letters"]
    ident = rows[0]["id"]
    refused = CliRunner().invoke(app, ["deadletter", "show", ident, "--raw", "--state", str(state)],
                                 env={**run_state["env"], "TSUNAGU_TOKEN": "not-a-token-000000"})
    assert refused.exit_code == 1 and "admin" in refused.output
    raw = cli(run_state, "deadletter", "show", ident, "--raw", "--token", ADMIN_TOKEN, "--state", str(state))
    assert raw.exit_code == 0
    origin = rows[0]["origin"]
    line = int(origin["position"])
    data = (run_state["sources"] / "houkatsu" / origin["scope"]).read_bytes()
    assert raw.stdout_bytes.strip() and raw.stdout_bytes.strip() in data
    assert data.splitlines()[line - 1].strip() == raw.stdout_bytes.strip()
    db = Database.open(database_url_for(run_state["settings"], state))
    try:
        with db.sessions() as s:
            audited = s.scalars(select(DeadLetterAccess).where(DeadLetterAccess.dead_letter == ident)).all()
    finally:
        db.close()
    assert [a.action for a in audited] == ["show_raw"]


def test_replay_of_a_still_bad_record_keeps_its_id_and_publishes_nothing_new(run_state: dict[str, Any]) -> None:
    """Replaying through the same code dead-letters the record again under the same id; no event is re-published."""
    state, settings = run_state["state"], run_state["settings"]
    rows = json.loads(cli(run_state, "deadletter", "list", "--state", str(state), "--feed", "houkatsu",
                          "--json").output)["dead_letters"]
    ident = rows[0]["id"]
    intake_before = sum(1 for _ in read_topic(settings.kafka_bootstrap, f"{settings.topic_prefix}.intake.v1"))
    out = cli(run_state, "deadletter", "replay", ident, "--sources", str(run_state["sources"]),
              "--state", str(state), "--json")
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert (result["events"], result["dead_letters"], result["replayed"], result["not_found"]) == (0, 1, [], [])
    intake_after = sum(1 for _ in read_topic(settings.kafka_bootstrap, f"{settings.topic_prefix}.intake.v1"))
    assert intake_after == intake_before
    db = Database.open(database_url_for(settings, state))
    try:
        with db.sessions() as s:
            row = s.get(DeadLetterRow, ident)
            total = len(s.scalars(select(DeadLetterRow.id)).all())
            actions = s.scalars(select(DeadLetterAccess.action).where(DeadLetterAccess.dead_letter == ident)).all()
    finally:
        db.close()
    assert row is not None and row.occurrences == 2 and row.state == "open"
    assert "replay" in actions  # the replay is audited
    assert total == len(json.loads(cli(run_state, "deadletter", "list", "--state", str(state),
                                       "--json").output)["dead_letters"])
