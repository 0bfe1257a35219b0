"""What the CLI sub-commands share: where the hub's database is, under which topic prefix, how to fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import typer

from hub.settings import Settings


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"tsunagu: {message}", err=True)
    raise typer.Exit(code)


def database_url(state: Path | None, database: str | None, settings: Settings) -> str:
    """``--database``, else TSUNAGU_DATABASE_URL, else ``<state>/hub.sqlite`` (which must exist)."""
    from hub.migrate import database_url_for

    if state is not None and database:
        _fail("give either --state or --database, not both")
    if database:
        return database
    if settings.database_url:
        return settings.database_url
    if state is None:
        _fail("give --state DIR or --database URL (or set TSUNAGU_DATABASE_URL)")
        raise AssertionError  # unreachable: _fail exits
    if not (state / "hub.sqlite").is_file():
        _fail(f"no hub database in {state} (expected hub.sqlite)")
    return database_url_for(settings, state)


def topic_prefix(state: Path | None, explicit: str | None, settings: Settings) -> str:
    """The prefix the hub reads under: as ``hub.run.batch.batch_run`` chose it for this state folder."""
    if explicit:
        return explicit
    marker = state / "run.json" if state is not None else None
    if marker is not None and marker.is_file():
        run_id = json.loads(marker.read_text(encoding="utf-8")).get("run")
        if run_id and (not settings.kafka_bootstrap or settings.topic_prefix == "tsunagu"):
            return f"tsunagu.run-{run_id}"
    return settings.topic_prefix
