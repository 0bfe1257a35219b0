"""The ``tsunagu`` command line (Typer)."""

from __future__ import annotations

import json
import signal
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from hub.logging import configure_logging
from hub.settings import Settings, get_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="tsunagu: つなぐ — the integration hub.")
bench_app = typer.Typer(no_args_is_help=False, invoke_without_command=True, help="Benchmarks (ratios in one run).")
app.add_typer(bench_app, name="bench")


def _register_subcommands() -> None:
    from hub.cli.consent import audit_app, consent_app
    from hub.cli.identity import identity_app
    from hub.cli.ops import connector_app, serve_command

    app.command("serve")(serve_command)
    app.add_typer(connector_app, name="connector")
    app.add_typer(audit_app, name="audit")
    app.add_typer(consent_app, name="consent")
    app.add_typer(identity_app, name="identity")
    from hub.cli.users import users_app  # the coordinators' workspace (issue 8)
    from hub.cli.workspace import workspace_app

    app.add_typer(users_app, name="users")
    app.add_typer(workspace_app, name="workspace")
    from hub.cli.deadletter import deadletter_app
    from hub.cli.status import asyncapi_command, config_app, status_command

    app.add_typer(deadletter_app, name="deadletter")
    app.add_typer(config_app, name="config")
    app.command("status")(status_command)
    app.command("asyncapi")(asyncapi_command)

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _terminate(_signum: int, _frame: object) -> None:
    """SIGTERM ends a command like Ctrl-C does, so `finally` blocks stop the embedded broker."""
    raise KeyboardInterrupt


def _settings() -> Settings:
    settings = get_settings()
    configure_logging(settings.log_level)
    signal.signal(signal.SIGTERM, _terminate)
    return settings


def _fail(message: str) -> None:
    typer.echo(f"tsunagu: {message}", err=True)
    raise typer.Exit(2)


@app.command()
def run(
    sources: Annotated[Path, typer.Option("--sources", help="folder with registry/ houkatsu/ shogai/ kodomo/ …")],
    export: Annotated[Path, typer.Option("--export", help="folder for the JSON Lines export")],
    once: Annotated[bool, typer.Option("--once", help="read every feed once, then stop")] = True,
    state: Annotated[Path | None, typer.Option("--state", help="keep database, checkpoints, offsets here")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress line")] = False,
) -> None:
    """Run the feeds in SOURCES once through Kafka and the hub and write the export."""
    from hub.run.batch import batch_run
    from hub.run.state import RunError

    settings = _settings()
    if not once:
        _fail("only --once is supported by `run`; use `tsunagu serve` for service mode")
    from connectors.mapping import MappingError
    from hub.bootstrap import ConfigError
    from hub.kafka.outage import BrokerUnavailable

    try:
        result = batch_run(sources, export, settings=settings, state=state, progress=None if quiet else sys.stderr)
    except (RunError, MappingError, ConfigError, BrokerUnavailable) as exc:
        _fail(str(exc))
        return
    typer.echo(json.dumps(result.summary, ensure_ascii=False))


@app.command()
def demo(
    export: Annotated[Path | None, typer.Option("--export", help="where to leave the export")] = None,
    serve: Annotated[bool, typer.Option("--serve", help="then serve the workspace on 127.0.0.1 until Ctrl-C")] = False,
    port: Annotated[int, typer.Option("--port", help="port of --serve")] = 8080,
) -> None:
    """Run the bundled sample feeds through the embedded broker and the hub, and explain the result."""
    from hub.demo import print_summary
    from hub.run.batch import batch_run
    from hub.run.state import RunError

    settings = _settings()
    out = export or Path(tempfile.mkdtemp(prefix="tsunagu-demo-"))
    state = Path(tempfile.mkdtemp(prefix="tsunagu-demo-state-")) if serve else None
    if serve:
        from hub.workspace.demo import demo_passwords

        try:
            passwords = demo_passwords()
        except ValueError as exc:
            _fail(str(exc))
            return
    try:
        result = batch_run(SAMPLES, out, settings=settings, state=state, progress=sys.stderr)
    except RunError as exc:
        _fail(str(exc))
        return
    print_summary(result.summary, out)
    if serve and state is not None:  # the workspace (issue 8) over the demo's database
        from hub.workspace.demo import serve_demo

        try:
            serve_demo(settings, SAMPLES, state, port, passwords, typer.echo)
        except OSError as exc:
            _fail(f"cannot serve on 127.0.0.1:{port} ({exc.strerror or type(exc).__name__})")


@app.command()
def generate(
    out: Annotated[Path, typer.Argument(help="folder to write registry/ houkatsu/ shogai/ kodomo/ jiritsu/ consent/")],
    households: Annotated[int | None, typer.Option("--households", help="households with agency contact")] = None,
    seed: Annotated[int, typer.Option("--seed", help="same seed, same bytes")] = 1,
    residents: Annotated[int, typer.Option("--residents", help="pad the registry to this many residents")] = 0,
    events_target: Annotated[int | None, typer.Option("--events-target", help="add households until this many "
                                                      "case events")] = None,
    preset: Annotated[str | None, typer.Option("--preset", help="prefecture-year: 2,000,000 residents, "
                                               "~1,000,000 events")] = None,
    glyph_variants: Annotated[float, typer.Option(help="share of registry names with 旧字体/互換漢字/IVS")] = 0.0,
    changed_surnames: Annotated[float, typer.Option(help="share of wives agencies know by their 旧氏")] = 0.0,
    birth_slips: Annotated[float, typer.Option(help="share of people agencies hold with a slipped birth date")] = 0.0,
    outside_registry: Annotated[float, typer.Option(help="share of households outside the registry (住登外)")] = 0.0,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress line")] = False,
) -> None:
    """Generate the five feeds and consent documents in their real formats, and OUT/truth.json."""
    from hub.generate.feeds import PRESETS, Plan
    from hub.generate.feeds import generate as run_generate
    from hub.generate.people import Options

    if preset is not None:
        if preset not in PRESETS:
            _fail(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        p = PRESETS[preset]
        residents = residents or p["residents"]
        events_target = events_target or (None if households else p["events_target"])
    for name, share in (("--glyph-variants", glyph_variants), ("--changed-surnames", changed_surnames),
                        ("--birth-slips", birth_slips), ("--outside-registry", outside_registry)):
        if not 0.0 <= share <= 1.0:
            _fail(f"{name} must be between 0 and 1")
    opts = Options(glyph_variants=glyph_variants, changed_surnames=changed_surnames, birth_slips=birth_slips,
                   outside_registry=outside_registry)
    try:
        summary = run_generate(out, seed, Plan(households=households, residents=residents,
                                               events_target=events_target), opts,
                               progress=None if quiet else sys.stderr)
    except FileExistsError as exc:
        _fail(f"{out}: {exc}")
        return
    typer.echo(json.dumps(summary, ensure_ascii=False))


@bench_app.callback()
def bench(
    ctx: typer.Context,
    events: Annotated[int, typer.Option("--events", "-n", help="synthetic houkatsu events")] = 5000,
    hubs: Annotated[int, typer.Option("--hubs", help="hub processes sharing the consumer groups")] = 1,
    database: Annotated[str | None, typer.Option(
        "--database", help="scratch database URL without tables (created and dropped); default: SQLite file")] = None,
    latency_events: Annotated[int, typer.Option(help="events sent at the steady rate for latency")] = 1000,
    rate: Annotated[float, typer.Option(help="steady rate (events/s) of the latency leg")] = 100.0,
) -> None:
    """Full pipeline vs. raw produce→consume passthrough on the same broker; prints one JSON object."""
    if ctx.invoked_subcommand is not None:
        return
    from hub.bench.pipeline import pipeline_bench

    settings = _settings()
    try:
        result = pipeline_bench(settings, events, hubs=hubs, database_url=database, latency_events=latency_events,
                                rate=rate)
    except ValueError as exc:
        _fail(str(exc))
        return
    typer.echo(json.dumps(result, ensure_ascii=False))


@bench_app.command("identity")
def bench_identity(
    small: Annotated[int, typer.Option(help="registry size A")] = 10_000,
    large: Annotated[int, typer.Option(help="registry size B")] = 1_000_000,
    observations: Annotated[int, typer.Option(help="observations resolved against each")] = 2000,
) -> None:
    """Identity resolution against two registry sizes: both rates, their ratio, peak memory."""
    from hub.bench.identity import run_identity_bench

    _settings()
    with tempfile.TemporaryDirectory(prefix="tsunagu-bench-") as tmp:
        result = run_identity_bench(sizes=(small, large), observations=observations, db_dir=Path(tmp),
                                    progress=sys.stderr)
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2))


@bench_app.command("stages")
def bench_stages(
    events: Annotated[int, typer.Option("--events", "-n", help="the pipeline bench's houkatsu events")] = 2000,
    batch: Annotated[int, typer.Option(help="messages per stage batch")] = 500,
    registry: Annotated[bool, typer.Option(help="first a 住民記録 row for every subject (cases then link)")] = False,
    database: Annotated[str | None, typer.Option(
        "--database", help="scratch database URL without tables (created and dropped); default: SQLite file")] = None,
    late_consents: Annotated[int, typer.Option(
        "--late-consents", metavar="K", help="every K-th subject's consent arrives after its case (0: none)")] = 0,
    profile: Annotated[Path | None, typer.Option(help="write a cProfile of the household stage to this file")] = None,
    default_gc: Annotated[bool, typer.Option(help="keep Python's GC thresholds (the hub service tunes them)")] = False,
) -> None:
    """Each hub stage's rate in process (no broker); for profiling one stage."""
    from hub.bench.stages import stage_bench
    from hub.kafka.service import tune_gc

    _settings()
    if not default_gc:
        tune_gc()
    try:
        result = stage_bench(events, batch=batch, registry=registry, database_url=database, late_every=late_consents,
                             profile_to=profile)
    except ValueError as exc:
        _fail(str(exc))
        return
    typer.echo(json.dumps(result, ensure_ascii=False))


_register_subcommands()

if __name__ == "__main__":  # pragma: no cover
    app()
