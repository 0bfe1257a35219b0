"""WC's pages are accessible in structure: labelled controls, headings in order, table headers with scope, lang=ja."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from sqlalchemy import select
from workspace.support import Workspace, csrf_in
from workspace.wc_fixtures import take_into_team, team_households

from hub.workspace.auth import Principal
from hub.workspace.models import Plan
from hub.workspace.referrals import list_referrals, sync_referrals

NOW = datetime(2026, 12, 1, 1, 5, tzinfo=UTC)


class Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.headings: list[int] = []
        self.th_without_scope = 0
        self.lang: str | None = None
        self.styles = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "style" in a:
            self.styles += 1
        if tag == "html":
            self.lang = a.get("lang")
        elif tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit"):
            self.controls.append(a)
        elif tag == "label" and a.get("for"):
            self.label_for.add(str(a["for"]))
        elif tag in ("h1", "h2", "h3", "h4"):
            self.headings.append(int(tag[1]))
        elif tag == "th" and "scope" not in a:
            self.th_without_scope += 1


def check(html: str) -> None:
    m = Markup()
    m.feed(html)
    assert m.lang == "ja"
    unlabelled = [c for c in m.controls if c.get("id") not in m.label_for and not c.get("aria-label")]
    assert unlabelled == [], unlabelled
    assert m.headings and m.headings[0] == 1 and m.headings.count(1) == 1
    assert all(b - a <= 1 for a, b in zip(m.headings, m.headings[1:], strict=False)), m.headings
    assert m.th_without_scope == 0
    assert m.styles == 0  # the CSP forbids inline styles


def test_referral_plan_and_report_pages_are_well_formed(seeded_workspace: Workspace) -> None:
    """Every WC page, with sample data on it (referrals synced, a plan made), passes the structural checks."""
    ws = seeded_workspace
    ws.clock.now = NOW
    with ws.sessions() as s:
        household = team_households(s, NOW)[0]
    with ws.sessions.begin() as s:
        sync_referrals(s, now=NOW, prefix="t")
        take_into_team(s, household, NOW)
    c = ws.client("coordinator")
    form = c.get(f"/plans/new?household={household}")
    r = c.post("/plans", data={"household": household, "lead_agency": "livelihood", "role_livelihood": "家計",
                               "goals": "就労", "programmes": ["outreach"], "next_monitoring_on": "2026-12-20",
                               "csrf_token": csrf_in(form.text)}, follow_redirects=False)
    assert r.status_code == 303
    with ws.sessions() as s:
        plan_id = s.scalars(select(Plan.id)).one()
        team = Principal("coordinator", "coordinator")
        referral_id = list_referrals(s, now=NOW, overdue_days=14, principal=team)[0].id
    for path in ("/referrals", "/referrals?show=all", f"/referrals/{referral_id}",
                 f"/referrals/new?household={household}", "/plans", "/plans?show=all", f"/plans/{plan_id}",
                 f"/plans/{plan_id}/edit", f"/plans/new?household={household}", "/reports", "/reports?fy=2025"):
        page = c.get(path)
        assert page.status_code == 200, path
        check(page.text)


def test_the_checker_catches_what_it_looks_for() -> None:
    """An unlabelled input, a skipped heading level and a th without scope each fail the check."""
    ok = ('<html lang="ja"><h1>t</h1><label for="a">a</label><input id="a">'
          '<table><tr><th scope="col">x</th></tr></table>')
    check(ok)
    for bad in (ok.replace('for="a"', 'for="b"'), ok + "<h3>x</h3>", ok.replace(' scope="col"', ""),
                ok.replace('lang="ja"', 'lang="en"'), ok + '<p style="color:red">x</p>'):
        with pytest.raises(AssertionError):
            check(bad)
