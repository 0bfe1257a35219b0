"""Operations commands: ``tsunagu serve`` and ``tsunagu connector run NAME``.

Registered in ``hub/cli.py``::

    from hub.cli.ops import connector_app, serve_command
    app.command("serve")(serve_command)
    app.add_typer(connector_app, name="connector")
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from hub.logging import configure_logging
from hub.settings import Settings, get_settings

connector_app = typer.Typer(no_args_is_help=True, add_completion=False,
                            help="Run one agency feed's connector on its own.")


def _settings() -> Settings:
    settings = get_settings()
    configure_logging(settings.log_level)
    return settings


def _fail(message: str) -> None:
    typer.echo(f"tsunagu: {message}", err=True)
    raise typer.Exit(2)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def serve_command(
    sources: Annotated[Path, typer.Option("--sources", help="folder with registry/ houkatsu/ shogai/ …")],
    state: Annotated[Path | None, typer.Option("--state", help="keep database, checkpoints, outboxes here")] = None,
    host: Annotated[str | None, typer.Option("--host", help="webhook listen address [TSUNAGU_WEBHOOK_HOST]")] = None,
    port: Annotated[int | None, typer.Option("--port", help="webhook port [TSUNAGU_WEBHOOK_PORT]")] = None,
    staff_host: Annotated[str | None, typer.Option("--staff-host",
                                                   help="staff listen address [TSUNAGU_STAFF_HOST]")] = None,
    staff_port: Annotated[int | None, typer.Option("--staff-port", help="staff port [TSUNAGU_STAFF_PORT]")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="allow the public sample webhook secret (demo only)")] = False,
) -> None:
    """Service mode: the hub, POST /webhooks/kodomo (public listener), /ops, /metrics (staff listener), /healthz
    on both, and every feed, until SIGTERM."""
    from kafka.errors import KafkaError

    from hub.kafka.outage import BrokerUnavailable
    from hub.run.state import RunError
    from hub.serve.server import serve

    settings = _settings()
    signal.signal(signal.SIGTERM, _interrupt)  # while starting; once serving, the service handles it
    try:
        serve(settings, sources, host=host, port=port, staff_host=staff_host, staff_port=staff_port, state=state,
              demo=demo)
    except KeyboardInterrupt:  # stopped while starting: what was started has been stopped
        raise typer.Exit(130) from None
    except (RunError, BrokerUnavailable) as exc:
        _fail(str(exc))
    except OSError as exc:  # e.g. the HTTP port is taken
        _fail(f"cannot start: {type(exc).__name__}: {exc.strerror or exc}")
    except KafkaError as exc:
        _fail(f"cannot reach Kafka: {type(exc).__name__}")


@connector_app.command("run")
def connector_run(
    name: Annotated[str, typer.Argument(help="registry | houkatsu | shogai | kodomo | jiritsu | consent")],
    sources: Annotated[Path, typer.Option("--sources", help="folder holding the feed's folder (e.g. DIR/houkatsu)")],
    state: Annotated[Path | None, typer.Option("--state", help="keep checkpoints and the outbox here")] = None,
    once: Annotated[bool, typer.Option("--once", help="read to the end, publish, exit; else poll")] = False,
    metrics_port: Annotated[int | None, typer.Option(
        "--metrics-port", help="also serve /metrics and /healthz on this port (the feed's last success, records "
        "read, dead letters, outbox)")] = None,
    metrics_host: Annotated[str | None, typer.Option("--metrics-host",
                                                     help="address of --metrics-port [TSUNAGU_STAFF_HOST]")] = None,
) -> None:
    """Run one connector alone, publishing to the configured (or embedded) broker; prints its counts as JSON."""
    from hub.kafka.outage import BrokerUnavailable
    from hub.run.state import RunError
    from hub.serve.feeds import ConnectorNotFound, run_connector, summary_line

    settings = _settings()
    stop = threading.Event()
    if not once:
        def _stop(_signum: int, _frame: object) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    try:
        result = run_connector(settings, name, sources, state=state, once=once, stop=stop,
                               metrics_host=metrics_host, metrics_port=metrics_port)
    except (RunError, ConnectorNotFound, BrokerUnavailable) as exc:
        _fail(str(exc))
        return
    except OSError as exc:  # e.g. the metrics port is taken
        _fail(f"cannot start: {type(exc).__name__}: {exc.strerror or exc}")
        return
    typer.echo(summary_line(result))
