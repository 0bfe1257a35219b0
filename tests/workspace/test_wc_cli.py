"""``tsunagu workspace`` over a database: sync, referrals, report CSV, notify — the same services as the web."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner
from workspace.wc_fixtures import NAME, add_event, add_household

from consent.store import AuditLogRow
from hub.cli.workspace import workspace_app
from hub.db import make_engine, make_sessionmaker
from hub.pipeline.tables import CaseState

runner = CliRunner()


def test_sync_list_and_report_from_the_command_line(blank_db: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """sync imports once, `referrals --overdue` lists it without names, `report --csv` writes an audited CSV."""
    monkeypatch.delenv("TSUNAGU_DATABASE_URL", raising=False)
    sessions = make_sessionmaker(make_engine(blank_db))
    with sessions.begin() as s:
        add_household(s)
        add_event(s, "r1", "jp.tsunagu.referral.requested.v1", field="elderly", days=0, team_published=True)
        s.add(CaseState(case="c1", record="r", person_id=None, household_id=None, feed="x", field="child",
                        status="intake", opened_on=date(2026, 5, 1), closed_on=None, topics=[], members={},
                        revision=datetime(2026, 5, 1, tzinfo=UTC)))
    first = runner.invoke(workspace_app, ["sync", "--database", blank_db])
    assert first.exit_code == 0, first.output
    assert "imported 1" in first.output
    assert "imported 0" in runner.invoke(workspace_app, ["sync", "--database", blank_db]).output
    listed = runner.invoke(workspace_app, ["referrals", "--overdue", "--database", blank_db])
    assert listed.exit_code == 0
    lines = listed.output.strip().splitlines()
    assert len(lines) == 2 and "\telderly\tlivelihood\trequested\t" in lines[1] and NAME not in listed.output
    out = tmp_path / "fy2026.csv"
    rep = runner.invoke(workspace_app, ["report", "--fy", "2026", "--csv", str(out), "--database", blank_db])
    assert rep.exit_code == 0, rep.output
    text = out.read_bytes()
    assert text.startswith("\ufeff".encode())
    assert "令和8年度,相談受付件数（分野別）,子ども,1" in text.decode("utf-8-sig")
    with sessions() as s:
        assert s.scalars(select(AuditLogRow.action).where(AuditLogRow.action == "report.csv")).all() == ["report.csv"]
    sessions.kw["bind"].dispose()


def test_notify_without_a_channel_is_a_clear_error(blank_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no webhook or mail configured, `notify` says what to set and exits non-zero."""
    monkeypatch.delenv("TSUNAGU_NOTIFY_WEBHOOK_URL", raising=False)
    res = runner.invoke(workspace_app, ["notify", "--database", blank_db])
    assert res.exit_code == 2 and "TSUNAGU_NOTIFY_WEBHOOK_URL" in res.output
