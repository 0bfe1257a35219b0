"""``tsunagu status`` (one screen: flows, lag, outboxes, dead letters, health) and ``tsunagu config check``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from hub.cli.common import _fail, database_url
from hub.logging import configure_logging
from hub.settings import Settings

config_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Check the configuration.")

#: roles a TSUNAGU_API_TOKENS entry may name
KNOWN_ROLES = frozenset({"consent_officer", "coordinator", "ops", "admin"})
MIN_TOKEN_LENGTH = 16
SAMPLE_WEBHOOK_SECRET = "kodomo-sample-secret"


def snapshot_from_state(state: Path | None, database: str | None, settings: Settings) -> dict[str, Any]:
    """The /ops.json document read straight from a state folder (or database); lags when a cluster is set."""
    from connectors.runner import ConnectorState
    from hub.bootstrap import Database
    from hub.cli.common import topic_prefix
    from hub.http.ops import collect
    from hub.ops.readings import consumer_lags
    from hub.topics import Topics

    topics = Topics(topic_prefix(state, None, settings))
    lags = None
    if settings.kafka_bootstrap:
        from hub.kafka.security import KafkaSecurity, register

        register(settings.kafka_bootstrap, KafkaSecurity.from_settings(settings))
        lags = lambda: consumer_lags(settings.kafka_bootstrap, settings, topics)  # noqa: E731
    db = Database.open(database_url(state, database, settings), migrate=False)
    cstate = ConnectorState.in_dir(state) if state is not None else None
    try:
        return collect(db.sessions, cstate, topics, settings=settings, lags=lags).as_dict()
    finally:
        db.close()
        if cstate is not None:
            cstate.dispose()


def snapshot_from_url(url: str, token: str | None) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = httpx.get(url.rstrip("/") + "/ops.json", headers=headers, timeout=15)
        r.raise_for_status()
    except httpx.HTTPError as exc:
        _fail(f"{url}: {type(exc).__name__}: {exc}", 1)
    data: dict[str, Any] = r.json()
    return data


def render(ops: dict[str, Any]) -> None:
    """One terminal screen with rich: health, flows, per feed, dead letters by reason, lag."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]tsunagu 運用状況[/bold]  {ops['generated_at']}  "
                  f"dead letters: [bold]{ops['dead_letters_total']}[/bold]  hub outbox: {ops['hub_outbox_pending']}  "
                  f"connector outbox: {ops['connector_outbox_pending']}")
    for e in ops.get("errors", []):
        console.print(f"[red]{e}[/red]")
    if ops.get("health"):
        t = Table(title="運用アラート health", title_justify="left")
        for col in ("rule", "subject", "message", "since"):
            t.add_column(col)
        for h in ops["health"]:
            t.add_row(f"{h['label']}", h["subject"], h["message"], h["since"] or "")
        console.print(t)
    else:
        console.print("運用アラートなし (all health rules pass)")
    t = Table(title="フィード feeds", title_justify="left")
    for col in ("feed", "processed", "/min", "dead letters", "outbox", "last success (JST)", "checkpoints"):
        t.add_column(col)
    for f in ops["feeds"]:
        t.add_row(f["feed"], str(f["processed_total"]), str(f["rate_per_min"]), str(f["dead_letters"]),
                  str(sum(f["outbox_pending"].values())), f["last_success_at"] or "–", str(f["checkpoint_scopes"]))
    console.print(t)
    t = Table(title="流れ flows", title_justify="left")
    for col in ("from", "to", "count", "/min"):
        t.add_column(col)
    for fl in ops["flows"]:
        t.add_row(fl["source"], fl["target"], str(fl["count"]), str(fl["rate_per_min"]))
    console.print(t)
    if ops["dead_letters_by_reason"]:
        t = Table(title="デッドレター dead letters", title_justify="left")
        for col in ("stage", "feed", "reason", "count"):
            t.add_column(col)
        for d in ops["dead_letters_by_reason"]:
            t.add_row(d["stage"], d["feed"], f"{d['reason_label']} ({d['reason']})", str(d["count"]))
        console.print(t)
    if ops.get("consumer_lag"):
        lagging = [x for x in ops["consumer_lag"] if x["lag"]]
        total = sum(x["lag"] for x in ops["consumer_lag"])
        console.print(f"consumer lag: {total} over {len(ops['consumer_lag'])} partitions"
                      + (f" ({len(lagging)} behind)" if lagging else ""))


def status_command(
    url: Annotated[str | None, typer.Option("--url", help="a running service, e.g. http://127.0.0.1:8081")] = None,
    state: Annotated[Path | None, typer.Option("--state", help="state folder of a run or service")] = None,
    database: Annotated[str | None, typer.Option("--database", help="hub database URL")] = None,
    token: Annotated[str | None, typer.Option("--token", envvar="TSUNAGU_TOKEN")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Flows, lag, outboxes, dead letters and health alerts on one screen (or as JSON)."""
    settings = Settings()
    configure_logging(settings.log_level)
    if url is not None and (state is not None or database is not None):
        _fail("give --url or --state/--database, not both")
    ops = snapshot_from_url(url, token) if url is not None else snapshot_from_state(state, database, settings)
    if as_json:
        typer.echo(json.dumps(ops, ensure_ascii=False))
        return
    render(ops)


# -- config check ------------------------------------------------------------------------------------------


def check(settings: Settings, state: Path | None, database: str | None, *,
          broker_timeout_s: float = 5.0) -> tuple[list[str], list[str]]:
    """(problems, warnings) of the settings and the environment, each a message naming what is wrong."""
    from hub.kafka.security import KafkaSecurity

    problems: list[str] = []
    warnings: list[str] = []
    security = KafkaSecurity.from_settings(settings)
    problems += security.problems()
    if settings.kafka_bootstrap:
        problems += _broker_problems(settings, security, broker_timeout_s)
    elif settings.kafka_security_protocol != "PLAINTEXT":
        warnings.append("TSUNAGU_KAFKA_SECURITY_PROTOCOL is ignored: no TSUNAGU_KAFKA_BOOTSTRAP (embedded broker)")
    problems += _database_problems(settings, state, database)
    problems += _mapping_problems()
    secret = settings.kodomo_webhook_secret.get_secret_value()
    if not secret:
        problems.append("TSUNAGU_KODOMO_WEBHOOK_SECRET is empty")
    elif secret == SAMPLE_WEBHOOK_SECRET:
        warnings.append("TSUNAGU_KODOMO_WEBHOOK_SECRET is the sample secret; set the agency's real one")
    for i, (tok, role) in enumerate(sorted(settings.api_tokens.items())):
        if len(tok) < MIN_TOKEN_LENGTH or not tok.isprintable() or tok.strip() != tok:
            problems.append(f"TSUNAGU_API_TOKENS: token #{i + 1} (role {role}) is shorter than {MIN_TOKEN_LENGTH} "
                            "characters or has spaces/control characters")
        if role.split(":", 1)[0] not in KNOWN_ROLES:  # a token may name its operator: "role:operator-id"
            problems.append(f"TSUNAGU_API_TOKENS: token #{i + 1} has unknown role {role!r} "
                            f"(one of {', '.join(sorted(KNOWN_ROLES))})")
    key = settings.deadletter_key.get_secret_value()
    if key:
        from connectors.sealing import Sealer

        if not Sealer.well_formed(key):
            problems.append("TSUNAGU_DEADLETTER_KEY is not a Fernet key (`tsunagu deadletter key` makes one)")
    else:
        warnings.append("TSUNAGU_DEADLETTER_KEY is not set: dead letters keep no original bytes")
    for feed, seconds in settings.feed_expected_interval_s.items():
        if seconds <= 0:
            problems.append(f"TSUNAGU_FEED_EXPECTED_INTERVAL_S: {feed} must be > 0 seconds")
    return problems, warnings


def _broker_problems(settings: Settings, security: Any, timeout_s: float) -> list[str]:
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="tsunagu-config-check",
                                 request_timeout_ms=int(timeout_s * 1000), **security.kafka_python())
        try:
            admin.list_topics()
        finally:
            admin.close()
    except Exception as exc:
        return [f"Kafka brokers {settings.kafka_bootstrap} not reachable ({type(exc).__name__})"]
    return []


def _database_problems(settings: Settings, state: Path | None, database: str | None) -> list[str]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine

    from hub.migrate import alembic_config, database_url_for

    url = database or settings.database_url or (database_url_for(settings, state) if state is not None else "")
    if not url:
        return []  # the database is made in the state folder at the first run
    if url.startswith("sqlite") and state is not None and not (state / "hub.sqlite").exists() and not database \
            and not settings.database_url:
        return []
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except Exception as exc:
        return [f"database not reachable ({type(exc).__name__})"]
    finally:
        engine.dispose()
    if current != head:
        return [f"database not migrated: at revision {current or 'none'}, code needs {head} (run `tsunagu migrate`"
                " or start the service, which migrates)"]
    return []


def _mapping_problems() -> list[str]:
    from connectors.mapping import MappingError, load_mapping

    folder = Path(__file__).resolve().parents[2] / "connectors" / "mappings"
    out = []
    for path in sorted(folder.glob("*.toml")):
        try:
            load_mapping(path)
        except (MappingError, OSError, ValueError) as exc:
            out.append(f"mapping {path.name}: {exc}")
    return out


@config_app.command("check")
def check_command(
    state: Annotated[Path | None, typer.Option("--state", help="state folder (its hub.sqlite is checked)")] = None,
    database: Annotated[str | None, typer.Option("--database", help="hub database URL")] = None,
) -> None:
    """Validate the settings and the environment; exit 1 naming each problem."""
    from pydantic import ValidationError

    try:
        settings = Settings()
    except ValidationError as exc:
        for err in exc.errors():
            name = "TSUNAGU_" + "_".join(str(p) for p in err["loc"]).upper()
            typer.echo(f"problem: {name}: {err['msg']}", err=True)
        raise typer.Exit(1) from None
    problems, warnings = check(settings, state, database)
    for w in warnings:
        typer.echo(f"warning: {w}", err=True)
    for p in problems:
        typer.echo(f"problem: {p}", err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo("configuration OK")


def asyncapi_command(
    out: Annotated[Path | None, typer.Option("--out", help="write the document here (default: stdout)")] = None,
) -> None:
    """The AsyncAPI 2.6 document of every tsunagu topic (FastStream's base + committed JSON Schemas), validated."""
    from hub.ops.asyncapi import document, problems

    settings = Settings()
    doc = document(settings)
    found = problems(doc)
    for p in found:
        typer.echo(f"problem: {p}", err=True)
    text = json.dumps(doc, ensure_ascii=False, indent=2)
    if out is not None:
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(text + "\n", encoding="utf-8")
        tmp.replace(out)
    else:
        typer.echo(text)
    if found:
        raise typer.Exit(1)
