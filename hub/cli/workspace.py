"""``tsunagu workspace``: the referral sync, notifications, referral list and yearly figures from the command line.

The same service functions as the web routes and ``tsunagu serve``'s periodic round. Output holds no
names, record keys or case text: ids, agency codes, statuses, dates and counts only.
"""

from __future__ import annotations

import csv
import getpass
import io
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session, sessionmaker

from hub.cli.common import _fail, database_url
from hub.settings import get_settings

workspace_app = typer.Typer(no_args_is_help=True, add_completion=False,
                            help="The coordinators' workspace: referrals, notifications, yearly figures.")

StateOpt = Annotated[Path | None, typer.Option("--state", help="state folder (<state>/hub.sqlite)")]
DatabaseOpt = Annotated[str | None, typer.Option("--database", help="SQLAlchemy URL of the hub's database")]


def _sessions(state: Path | None, database: str | None) -> sessionmaker[Session]:
    from hub.db import make_engine, make_sessionmaker

    return make_sessionmaker(make_engine(database_url(state, database, get_settings())))


@workspace_app.command("sync")
def sync(state: StateOpt = None, database: DatabaseOpt = None) -> None:
    """Import the hub's referral events and move referrals by the receiving agencies' case events (once)."""
    from hub.workspace.referrals import sync_referrals

    sessions = _sessions(state, database)
    with sessions.begin() as s:
        res = sync_referrals(s, now=datetime.now(UTC), prefix=get_settings().topic_prefix)
    typer.echo(f"imported {res.imported}, moved {res.moved}, not importable {res.skipped}")


@workspace_app.command("notify")
def notify(state: StateOpt = None, database: DatabaseOpt = None) -> None:
    """Send what needs attention now (webhook and/or mail as configured), at most once per thing."""
    from hub.workspace.notifications import NotifyConfig, run_notifications

    config = NotifyConfig.from_settings(get_settings())
    if not config.channels:
        _fail("no notification channel configured (TSUNAGU_NOTIFY_WEBHOOK_URL, or TSUNAGU_NOTIFY_SMTP_HOST and "
              "TSUNAGU_NOTIFY_MAIL_TO)")
    res = run_notifications(_sessions(state, database), config, datetime.now(UTC))
    for channel, count in sorted(res.sent.items()):
        typer.echo(f"{channel}: sent {count}")
    for channel, code in sorted(res.failed.items()):
        typer.echo(f"{channel}: failed ({code}); retried on the next run", err=True)
    if res.failed:
        raise typer.Exit(1)


@workspace_app.command("referrals")
def referrals(overdue: Annotated[bool, typer.Option("--overdue", help="only those nobody accepted in time")] = False,
              state: StateOpt = None, database: DatabaseOpt = None) -> None:
    """Open referrals as tab-separated lines: id, household, from, to, status, requested (UTC), days waiting."""
    from hub.workspace.referrals import list_referrals

    settings = get_settings()
    with _sessions(state, database)() as s:
        rows = list_referrals(s, now=datetime.now(UTC), overdue_days=settings.referral_overdue_days)
    typer.echo("id\thousehold\tfrom\tto\tstatus\trequested\tdays_waiting\toverdue")
    for r in rows:
        if overdue and not r.overdue:
            continue
        typer.echo("\t".join([r.id, r.household_id or "", r.from_agency or "", r.target, r.status,
                              r.requested_at.isoformat(), str(r.days_waiting), "yes" if r.overdue else "no"]))


@workspace_app.command("report")
def report(fy: Annotated[int | None, typer.Option("--fy", help="fiscal year (April–March), e.g. 2026")] = None,
           out: Annotated[Path | None, typer.Option("--csv", help="write the CSV here (UTF-8 with BOM)")] = None,
           state: StateOpt = None, database: DatabaseOpt = None) -> None:
    """The yearly figures (事業評価, 国への実績報告): counts only; the export is written to the audit chain."""
    from hub.workspace.audit import audit_access
    from hub.workspace.auth import Principal
    from hub.workspace.figures import fiscal_year_of
    from hub.workspace.plans import today_jst
    from hub.workspace.reports import yearly_figures

    year = fy if fy is not None else fiscal_year_of(today_jst(datetime.now(UTC)))
    if not 2000 <= year <= 2100:
        _fail("--fy: a fiscal year such as 2026")
    sessions = _sessions(state, database)
    with sessions.begin() as s:
        figures = yearly_figures(s, year)
        audit_access(s, Principal(f"cli:{getpass.getuser()}"[:64], "admin"), "report.csv",
                     object_id=f"report:{year}")
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n" if out else "\n").writerows(figures.csv_rows())
    if out is None:
        sys.stdout.write(buf.getvalue())
        return
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(("\ufeff" + buf.getvalue()).encode("utf-8"))
    tmp.replace(out)  # write then rename: never a half-written report
    typer.echo(f"{figures.label}: {len(figures.rows)} figures → {out}")
