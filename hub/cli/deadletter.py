"""``tsunagu deadletter list | show | replay | key``: the dead-letter store for IT staff (no personal data shown).

``show --raw`` decrypts a dead letter's original bytes: only with an API token of role ``admin``
(TSUNAGU_API_TOKENS) and the key (TSUNAGU_DEADLETTER_KEY); every such reading is audited.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from hub.cli.common import _fail, database_url
from hub.logging import configure_logging
from hub.settings import Settings, get_settings

deadletter_app = typer.Typer(no_args_is_help=True, add_completion=False,
                             help="Dead letters of every stage: list, show, replay.")

StateOpt = Annotated[Path | None, typer.Option("--state", help="state folder of a run or service")]
DbOpt = Annotated[str | None, typer.Option("--database", help="SQLAlchemy URL of the hub database")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]
ADMIN = "admin"


def _settings() -> Settings:
    settings = get_settings()
    configure_logging(settings.log_level)
    return settings


def _open(state: Path | None, database: str | None, settings: Settings) -> Any:
    from hub.bootstrap import Database

    return Database.open(database_url(state, database, settings))


@deadletter_app.command("list")
def list_command(
    feed: Annotated[str | None, typer.Option("--feed")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="reason code, e.g. schema, parse, signature")] = None,
    stage: Annotated[str | None, typer.Option("--stage", help="connector, webhook or hub")] = None,
    state: StateOpt = None, database: DbOpt = None, as_json: JsonOpt = False,
) -> None:
    """Dead letters with their reason code and origin (never record keys or bytes)."""
    from hub.ops.deadletters import listing, public_view

    settings = _settings()
    with _open(state, database, settings) as db, db.sessions() as s:
        rows = [public_view(r) for r in listing(s, feed=feed, reason=reason, stage=stage)]
    if as_json:
        typer.echo(json.dumps({"dead_letters": rows, "count": len(rows)}, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    from hub.http.ops import jst

    table = Table(title=f"デッドレター dead letters: {len(rows)}")
    for col in ("id", "stage", "feed", "reason", "where", "state", "n", "last (JST)"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["id"][:12], r["stage"], r["feed"], f"{r['reason_label']} ({r['reason']})", r["where"],
                      r["state"], str(r["occurrences"]), jst(datetime.fromisoformat(r["last_at"])) or "")
    Console().print(table)


def _one(s: Any, ident: str) -> Any:
    from sqlalchemy import select

    from hub.ops.deadletters import DeadLetterRow

    rows = s.scalars(select(DeadLetterRow).where(DeadLetterRow.id.startswith(ident))).all()
    if not rows:
        _fail(f"no dead letter {ident}", 1)
    if len(rows) > 1:
        _fail(f"{ident} names {len(rows)} dead letters; give more of the id", 1)
    return rows[0]


@deadletter_app.command("show")
def show_command(
    ident: Annotated[str, typer.Argument(help="dead-letter id (or a unique prefix)")],
    raw: Annotated[bool, typer.Option("--raw", help="print the original bytes (admin only, audited)")] = False,
    token: Annotated[str | None, typer.Option("--token", envvar="TSUNAGU_TOKEN", help="admin API token")] = None,
    state: StateOpt = None, database: DbOpt = None, as_json: JsonOpt = False,
) -> None:
    """Reason and origin of one dead letter; the original bytes only with ``--raw`` and an admin token."""
    from connectors.sealing import Sealer, SealError
    from hub.ops.deadletters import audit_access, public_view

    settings = _settings()
    with _open(state, database, settings) as db:
        with db.sessions() as s:
            row = _one(s, ident)
            view, sealed = public_view(row), row.original
        if not raw:
            typer.echo(json.dumps(view, ensure_ascii=False, indent=None if as_json else 2))
            return
        role = settings.api_tokens.get(token or "")
        if role != ADMIN:
            _fail("--raw needs an API token of role admin (--token or TSUNAGU_TOKEN)", 1)
        if sealed is None:
            _fail(f"dead letter {view['id']} has no original kept (no TSUNAGU_DEADLETTER_KEY when it was made)", 1)
        key = settings.deadletter_key.get_secret_value()
        if not key:
            _fail("TSUNAGU_DEADLETTER_KEY is not set", 1)
        try:
            original = Sealer(key).open(sealed)
        except SealError as exc:
            _fail(str(exc), 1)
            return
        audit_access(db.sessions, view["id"], actor=f"token:{(token or '')[:4]}…", action="show_raw")
    sys.stdout.buffer.write(original)
    sys.stdout.buffer.flush()


@deadletter_app.command("replay")
def replay_command(
    ident: Annotated[str | None, typer.Argument(help="dead-letter id (or unique prefix)")] = None,
    feed: Annotated[str | None, typer.Option("--feed", help="replay every open dead letter of this feed")] = None,
    sources: Annotated[Path, typer.Option("--sources", help="the feeds' folder")] = Path("sources"),
    wait: Annotated[float, typer.Option("--wait", help="seconds to wait for the hub to handle replayed hub-stage "
                                        "dead letters")] = 30.0,
    state: StateOpt = None, database: DbOpt = None, as_json: JsonOpt = False,
) -> None:
    """Replay after a fix, keeping ids: a connector's dead letters are re-read through today's connector code, the
    hub's are put back on the topic they came from; nothing that already flowed flows again. Audited."""
    from sqlalchemy import select

    from hub.ops.deadletters import OPEN, DeadLetterRow

    if (ident is None) == (feed is None):
        _fail("give a dead-letter ID or --feed F", 2)
    settings = _settings()
    with _open(state, database, settings) as db:
        with db.sessions() as s:
            if ident is not None:
                rows = [_one(s, ident)]
            else:
                rows = list(s.scalars(select(DeadLetterRow).where(DeadLetterRow.feed == feed,
                                                                  DeadLetterRow.state == OPEN,
                                                                  DeadLetterRow.stage.in_(("connector", "hub")))
                                      .order_by(DeadLetterRow.first_at, DeadLetterRow.id)))
        if not rows:
            _fail(f"no open connector or hub dead letters of {feed}", 1)
        hub_rows = [r for r in rows if r.stage == "hub"]
        connector_rows = [r for r in rows if r.stage != "hub"]
        out: dict[str, Any] = {}
        if connector_rows:
            out.update(_replay_connector(connector_rows, sources, state, settings, db))
        if hub_rows:
            out["hub"] = _replay_hub(hub_rows, wait, settings, db)
    typer.echo(json.dumps(out, ensure_ascii=False, indent=None if as_json else 2))


def _actor() -> str:
    import getpass

    return f"cli:{getpass.getuser()}"[:100]


def _replay_connector(rows: list[Any], sources: Path, state: Path | None, settings: Settings,
                      db: Any) -> dict[str, Any]:
    from connectors.runner import ConnectorRunner, ConnectorState, make_producer
    from hub.bootstrap import open_kafka
    from hub.kafka.security import kafka_python_security
    from hub.ops.deadletters import sealer_of
    from hub.ops.replay import ReplayError, replay
    from hub.serve.feeds import connector_named

    if state is None:
        _fail("give --state DIR (its connector outbox and checkpoints are used)", 2)
    names = {r.feed for r in rows}
    if len(names) != 1:
        _fail("dead letters of several feeds", 1)
    name = names.pop()
    connector = connector_named(name, sources, settings)
    if connector is None:
        _fail(f"no {name} feed under {sources}", 1)
    cstate = ConnectorState.in_dir(state)
    try:
        with open_kafka(settings) as kafka:
            producer = make_producer(kafka.bootstrap, client_id=f"tsunagu-replay-{name}",
                                     **kafka_python_security(kafka.bootstrap))
            sealer = sealer_of(settings)
            try:
                result = replay(rows, connector, lambda c: ConnectorRunner(
                    c, cstate, producer, intake_topic=kafka.topics.intake,
                    deadletter_topic=kafka.topics.deadletter, seal=sealer), db.sessions, actor=_actor())
            finally:
                producer.close(timeout=10)
    except ReplayError as exc:
        _fail(str(exc), 1)
    finally:
        cstate.dispose()
    return {"read": result.read, "events": result.events, "dead_letters": result.dead_letters,
            "replayed": result.replayed, "not_found": result.not_found}


def _replay_hub(rows: list[Any], wait: float, settings: Settings, db: Any) -> dict[str, Any]:
    from dataclasses import asdict

    from connectors.runner import make_producer
    from connectors.sealing import Sealer, SealError
    from hub.bootstrap import open_kafka
    from hub.kafka.security import kafka_python_security
    from hub.kafka.topicreader import StoredMessage, read_at
    from hub.ops.replay import ReplayError, replay_hub

    key = settings.deadletter_key.get_secret_value()
    try:
        opener = Sealer(key).open if key else None
    except SealError as exc:
        _fail(f"TSUNAGU_DEADLETTER_KEY: {exc}", 1)
    if not settings.kafka_bootstrap:
        # an embedded broker of our own is read by no hub: the replay would only remove the dead marker
        _fail("hub dead letters are replayed to the broker the running hub reads: set TSUNAGU_KAFKA_BOOTSTRAP", 2)
    with open_kafka(settings) as kafka:
        producer = make_producer(kafka.bootstrap, client_id="tsunagu-replay-hub",
                                 **kafka_python_security(kafka.bootstrap))

        def publish(topic: str, partition: int, message: StoredMessage) -> None:
            producer.send(topic, key=message.key, value=message.value, headers=message.headers,
                          partition=partition).get(timeout=30)

        try:
            result = replay_hub(rows, db.sessions, fetch=lambda t, p, o: read_at(kafka.bootstrap, t, p, o),
                                publish=publish, actor=_actor(), open_sealed=opener, wait_s=wait)
        except ReplayError as exc:
            _fail(str(exc), 1)
        finally:
            producer.close(timeout=10)
    return asdict(result)


@deadletter_app.command("key")
def key_command() -> None:
    """Print a new TSUNAGU_DEADLETTER_KEY (Fernet)."""
    from connectors.sealing import Sealer

    typer.echo(Sealer.new_key())
