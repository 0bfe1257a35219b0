"""What a run keeps between starts: the sources check, the state folder and its run id (topics, groups)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from hub.atomic import write_text_atomic
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


def check_export(export: Path) -> None:
    """Before any work: the export must be a folder (new or existing), not a file or under one."""
    for path in (export, *export.parents):
        if path.exists() and not path.is_dir():
            what = "is a file" if path == export else f"is under a file ({path})"
            raise RunError(f"--export {export} {what}; give a folder")
        if path.exists():
            break


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
    prior = read_marker(state_dir)
    if prior is not None:
        if prior.get("broker") == broker != "embedded":
            check_state_files(state_dir)
            return str(prior["run"])
        if prior.get("broker") != "embedded":
            raise RunError("this --state was made with another Kafka cluster; use a new --state folder")
        if settings.database_url:
            raise RunError("this --state was made with the embedded broker and cannot be resumed; use a new --state")
        log.warning("state made with the embedded broker: starting over", state_dir=str(state_dir))
        for name in STATE_FILES:
            (state_dir / name).unlink(missing_ok=True)
    rid = uuid.uuid4().hex[:12]
    write_text_atomic(marker, json.dumps({"run": rid, "broker": broker}))
    return rid


SQLITE_MAGIC = b"SQLite format 3\x00"


def check_state_files(state_dir: Path) -> None:
    """A state database that is not SQLite (garbage written over it) is a one-line error, not a traceback."""
    for name in ("hub.sqlite", "connectors.sqlite"):
        path = state_dir / name
        try:
            with path.open("rb") as f:
                head = f.read(len(SQLITE_MAGIC))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise RunError(f"state file {path} cannot be read ({type(exc).__name__})") from None
        if head and head != SQLITE_MAGIC:
            raise RunError(f"state file {path} is damaged (not an SQLite database); use a new --state folder")


def read_marker(state_dir: Path) -> dict[str, str] | None:
    """``run.json`` of a state folder, or None when there is none yet.

    An empty or unreadable one (from a kill before writes were atomic) is rebuilt when nothing
    else is in the folder; otherwise the run cannot know its topics: a one-line error.
    """
    marker = state_dir / "run.json"
    try:
        raw = marker.read_bytes()
    except FileNotFoundError:
        return None
    try:
        prior = json.loads(raw.decode("utf-8"))
        if not isinstance(prior, dict) or not isinstance(prior.get("run"), str) \
                or not isinstance(prior.get("broker"), str):
            raise ValueError("not a run marker")
        return prior
    except ValueError:
        others = [n for n in STATE_FILES if n != "run.json" and (state_dir / n).exists()]
        if not others:
            log.warning("run.json was empty or damaged and nothing else is in the state: starting over",
                        state_dir=str(state_dir))
            marker.unlink()
            return None
        raise RunError(f"state file {marker} is empty or damaged; this state cannot be resumed, "
                       "use a new --state folder") from None


@contextlib.contextmanager
def state_folder(state: Path | None) -> Iterator[Path]:
    if state is not None:
        state.mkdir(parents=True, exist_ok=True)
        yield state
        return
    with tempfile.TemporaryDirectory(prefix="tsunagu-state-") as tmp:
        yield Path(tmp)
