"""What a run keeps between starts: the sources check, the state folder and its run id (topics, groups)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from hub.logging import get_logger
from hub.settings import Settings

log = get_logger("tsunagu.run")

class RunError(Exception):
    """A run that cannot start (missing sources, unreadable folder): one line for the operator."""

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
