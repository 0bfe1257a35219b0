"""The batch run gives the same export however it is run: two hub instances, PostgreSQL, interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from e2e.truth_checks import export_alert_set, grouping, load_export, team_case_events
from hub.run.batch import batch_run
from hub.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _settings(kafka: str, **extra: Any) -> Settings:
    rid = uuid.uuid4().hex[:8]
    return Settings(kafka_bootstrap=kafka, topic_prefix=f"m{rid}", hub_group=f"m-{rid}", partitions=3,
                    session_timeout_ms=1000, heartbeat_interval_ms=100, fetch_max_wait_ms=10, **extra)


def _essence(export: dict[str, Any], truth: dict[str, Any]) -> dict[str, Any]:
    """What outputs.md promises is the same on every run: grouping, team set, alert set (ids are opaque)."""
    return {
        "grouping": grouping(export["persons"]),
        "team": {(e["source"], e["id"]) for e in export["team"]},
        "team_cases": team_case_events(export["team"]),
        "alerts": export_alert_set(export, truth),
        "dead": {(d["source"], d["where"], d["record"]) for d in export["deadletter"]},
        # the whole run's counters (a resumed run counts every invocation, so the summary reconciles)
        "feeds": export["summary"]["feeds"],
    }


@pytest.fixture(scope="module")
def baseline(kafka: str, samples_dir: Path, truth: dict[str, Any],
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("baseline")
    batch_run(samples_dir, out, settings=_settings(kafka), progress=None)
    return _essence(load_export(out), truth)


def test_two_hub_instances_give_the_same_export(kafka: str, samples_dir: Path, truth: dict[str, Any],
                                                baseline: dict[str, Any], tmp_path: Path) -> None:
    """Two hub instances sharing the consumer groups produce what one instance produces."""
    batch_run(samples_dir, tmp_path, settings=_settings(kafka), progress=None, hub_instances=2)
    assert _essence(load_export(tmp_path), truth) == baseline


def test_postgresql_store_gives_the_same_export(kafka: str, samples_dir: Path, truth: dict[str, Any],
                                               baseline: dict[str, Any], pg_database: str, tmp_path: Path) -> None:
    """With the hub's state in PostgreSQL the export is the same as with SQLite."""
    batch_run(samples_dir, tmp_path, settings=_settings(kafka, database_url=pg_database), progress=None)
    assert _essence(load_export(tmp_path), truth) == baseline


def _cli_env(kafka: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "TSUNAGU_KAFKA_BOOTSTRAP": kafka,
        "TSUNAGU_PARTITIONS": "3",
        "TSUNAGU_SESSION_TIMEOUT_MS": "1000",
        "TSUNAGU_HEARTBEAT_INTERVAL_MS": "100",
        "TSUNAGU_LOG_LEVEL": "WARNING",
    })
    env.pop("TSUNAGU_DATABASE_URL", None)
    env.pop("TSUNAGU_TOPIC_PREFIX", None)
    return env


@pytest.mark.parametrize("kill_after_s", [1.5, 3.0, 4.5])
def test_interrupted_run_resumes_to_the_same_export(kafka: str, samples_dir: Path, truth: dict[str, Any],
                                                    baseline: dict[str, Any], tmp_path: Path,
                                                    kill_after_s: float) -> None:
    """A run killed at an arbitrary moment and started again with the same state ends with the same export."""
    state, out = tmp_path / "state", tmp_path / "out"
    cmd = [sys.executable, "-m", "hub.cli.main", "run", "--sources", str(samples_dir), "--once", "--export", str(out),
           "--state", str(state), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_cli_env(kafka), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        proc.wait(timeout=kill_after_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # no chance to flush, commit or clean up
        proc.wait(timeout=10)
    time.sleep(0.2)
    done = subprocess.run(cmd, cwd=ROOT, env=_cli_env(kafka), capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _essence(load_export(out), truth) == baseline


#: kill points of one run, in order: (kind, n) = the n-th such step of that invocation (see killpoint.py)
def _kill_points(seed: int) -> list[tuple[str, int]]:
    import random

    rnd = random.Random(seed)
    points: list[tuple[str, int]] = [("ddl", 1), ("ddl", rnd.randint(2, 25)), ("ddl", rnd.randint(26, 48))]
    # (a ddl point given to a second run kills its first migration too)
    # small n: each invocation gets only a little further before it is killed, so the kills spread over the run
    later = ([("commit", rnd.randint(1, 4)) for _ in range(6)] + [("relay", rnd.randint(1, 40)) for _ in range(6)]
             + [("hubrelay", rnd.randint(1, 2)) for _ in range(5)] + [("time", rnd.randint(20, 40)) for _ in range(4)])
    rnd.shuffle(later)
    return points + later


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_twenty_kills_of_one_run_resume_to_the_same_export(kafka: str, samples_dir: Path, truth: dict[str, Any],
                                                          baseline: dict[str, Any], tmp_path: Path,
                                                          request: pytest.FixtureRequest, store: str) -> None:
    """A run SIGKILLed at seeded points in turn (three times during its first migration, then during hub database
    commits, the connectors' outbox relay, the hub's outbox relay and at random moments), each time started again
    on the same state and external broker, ends with the uninterrupted run's export and counts; when a run
    finishes before the next point, its export is checked and a new run (new state) takes the remaining
    points, until at least 20 kills happened."""
    env = _cli_env(kafka)
    if store == "postgresql":
        env["TSUNAGU_DATABASE_URL"] = request.getfixturevalue("pg_database")
    generation = [0]

    def paths() -> tuple[Path, Path]:
        return tmp_path / f"state{generation[0]}", tmp_path / f"out{generation[0]}"

    def invoke(*prefix: str) -> subprocess.CompletedProcess[bytes]:
        state, out = paths()
        run = ["run", "--sources", str(samples_dir), "--once", "--export", str(out), "--state", str(state), "--quiet"]
        return subprocess.run([*prefix, *run], cwd=ROOT, env=env, capture_output=True, timeout=300, check=False)

    def finish_and_check() -> None:
        done = invoke(sys.executable, "-m", "hub.cli.main")
        assert done.returncode == 0, done.stderr[-2000:]
        assert _essence(load_export(paths()[1]), truth) == baseline, f"run {generation[0]}"

    kills = 0
    for kind, n in _kill_points(seed=10):
        for _attempt in range(2):
            done = invoke(sys.executable, str(ROOT / "tests" / "e2e" / "killpoint.py"), kind, str(n), "--")
            assert done.returncode in (0, -signal.SIGKILL), done.stderr[-2000:]
            if done.returncode == -signal.SIGKILL:
                kills += 1
                break
            # this run finished before the point: check it, and give the point to a new run
            assert _essence(load_export(paths()[1]), truth) == baseline, f"run {generation[0]}"
            if store == "postgresql":  # a new run starts from an empty database
                import sqlalchemy as sa

                engine = sa.create_engine(env["TSUNAGU_DATABASE_URL"], isolation_level="AUTOCOMMIT")
                with engine.connect() as c:
                    c.execute(sa.text("DROP SCHEMA public CASCADE"))
                    c.execute(sa.text("CREATE SCHEMA public"))
                engine.dispose()
            generation[0] += 1
    finish_and_check()
    assert kills >= 20
