"""``tsunagu users``: add, list, disable and unlock the workspace's accounts (passwords from a prompt or stdin)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from hub.cli.common import _fail, database_url
from hub.settings import Settings, get_settings
from hub.workspace.models import ROLES, User

users_app = typer.Typer(no_args_is_help=True, add_completion=False,
                        help="Workspace accounts (roles: coordinator, consent_officer, ops, admin).")

StateOpt = Annotated[Path | None, typer.Option("--state", help="state folder (<state>/hub.sqlite)")]
AGENCY_HELP = "field code when the user works for one agency: elderly | disability | child | livelihood"
DatabaseOpt = Annotated[str | None, typer.Option("--database", help="SQLAlchemy URL of the hub's database")]


def _url(state: Path | None, database: str | None, settings: Settings, *, create: bool) -> str:
    """The hub database; ``users add`` may create ``<state>/hub.sqlite`` (migrated) in a new state folder."""
    if create and state is not None and not database and not settings.database_url \
            and not (state / "hub.sqlite").exists():
        from hub.migrate import database_url_for

        state.mkdir(parents=True, exist_ok=True)
        return database_url_for(settings, state)
    return database_url(state, database, settings)


def read_password(password_stdin: bool) -> str:
    """From stdin (first line) when asked or when stdin is not a terminal; else a hidden prompt, twice."""
    if password_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    value: str = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    return value


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="user name (a-z, 0-9, . _ -)")],
    role: Annotated[str, typer.Option("--role", help="coordinator | consent_officer | ops | admin")],
    agency: Annotated[str | None, typer.Option("--agency", help=AGENCY_HELP)] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
    state: StateOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """Add a user; the password comes from a prompt (asked twice) or the first line of stdin."""
    from hub.db import make_engine, make_sessionmaker
    from hub.migrate import upgrade
    from hub.workspace.auth import create_user

    settings = get_settings()
    if role not in ROLES:
        _fail(f"--role must be one of {', '.join(ROLES)}")
    url = _url(state, database, settings, create=True)
    password = read_password(password_stdin)
    if len(password) < 8:
        _fail("the password must have at least 8 characters")
    engine = make_engine(url)
    try:
        upgrade(url)
        with make_sessionmaker(engine).begin() as s:
            create_user(s, name, password, role, agency, datetime.now(UTC))
    except ValueError as exc:
        _fail(str(exc))
    except SQLAlchemyError as exc:
        _fail(f"nothing was stored ({type(exc).__name__})")
    finally:
        engine.dispose()
    typer.echo(f"added {name} ({role}{', ' + agency if agency else ''})")


@users_app.command("list")
def list_cmd(state: StateOpt = None, database: DatabaseOpt = None) -> None:
    """Every account: name, role, agency, and whether it is disabled or locked (never a password hash)."""
    from hub.db import make_engine, make_sessionmaker

    settings = get_settings()
    engine = make_engine(_url(state, database, settings, create=False))
    now = datetime.now(UTC)
    try:
        with make_sessionmaker(engine)() as s:
            users = s.scalars(select(User).order_by(User.username)).all()
    except SQLAlchemyError as exc:
        _fail(f"could not read the users ({type(exc).__name__}); is the database migrated?")
        return
    finally:
        engine.dispose()
    typer.echo(f"{'username':<24} {'role':<16} {'agency':<12} status")
    for u in users:
        status = "disabled" if u.disabled else ("locked" if u.locked_until and u.locked_until > now else "active")
        typer.echo(f"{u.username:<24} {u.role:<16} {u.agency or '-':<12} {status}")


def _update(name: str, state: Path | None, database: str | None, *, disabled: bool | None, unlock: bool) -> None:
    from hub.db import make_engine, make_sessionmaker
    from hub.workspace.models import WebSession

    settings = get_settings()
    engine = make_engine(_url(state, database, settings, create=False))
    try:
        with make_sessionmaker(engine).begin() as s:
            user = s.scalar(select(User).where(User.username == name))
            if user is None:
                _fail(f"no user {name!r}")
                return
            if disabled is not None:
                user.disabled = disabled
                if disabled:
                    for row in s.scalars(select(WebSession).where(WebSession.user_id == user.id)):
                        s.delete(row)
            if unlock:
                user.locked_until = None
                user.failed_logins = 0
    finally:
        engine.dispose()


@users_app.command("disable")
def disable(name: str, state: StateOpt = None, database: DatabaseOpt = None) -> None:
    """Disable an account (its sessions end at once)."""
    _update(name, state, database, disabled=True, unlock=False)
    typer.echo(f"disabled {name}")


@users_app.command("enable")
def enable(name: str, state: StateOpt = None, database: DatabaseOpt = None) -> None:
    """Enable a disabled account again."""
    _update(name, state, database, disabled=False, unlock=False)
    typer.echo(f"enabled {name}")


@users_app.command("unlock")
def unlock(name: str, state: StateOpt = None, database: DatabaseOpt = None) -> None:
    """Lift a lockout after failed logins."""
    _update(name, state, database, disabled=None, unlock=True)
    typer.echo(f"unlocked {name}")
