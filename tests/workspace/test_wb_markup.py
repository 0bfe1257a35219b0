"""The inbox, household and meeting pages are accessible in structure and show times in JST."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser

from sqlalchemy import select
from workspace.support import Workspace, csrf_in

from consent.model import JST
from hub.pipeline.tables import AlertState
from hub.workspace.households import load_household
from hub.workspace.policy import Viewer, view_household


class Markup(HTMLParser):
    """Collects what the checks below look at: controls and their labels, headings, th scopes, inline styles."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.ids: list[str] = []
        self.headings: list[int] = []
        self.th_without_scope = 0
        self.lang: str | None = None
        self.styles = 0
        self.skip_link = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if "style" in a:
            self.styles += 1
        if tag == "html":
            self.lang = a.get("lang")
        elif tag == "a" and a.get("href") == "#main":
            self.skip_link = True
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
    assert m.lang == "ja" and m.skip_link
    unlabelled = [c for c in m.controls if c.get("id") not in m.label_for and not c.get("aria-label")]
    assert unlabelled == [], unlabelled
    assert len(m.ids) == len(set(m.ids)), "ids are unique"
    assert m.headings and m.headings[0] == 1 and m.headings.count(1) == 1
    assert all(b - a <= 1 for a, b in zip(m.headings, m.headings[1:], strict=False)), m.headings
    assert m.th_without_scope == 0
    assert m.styles == 0  # the CSP forbids inline styles


JST_TIME = re.compile(r"\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}")


def test_inbox_household_and_meeting_pages_are_well_formed(seeded_workspace: Workspace) -> None:
    """Each of WB's pages, with sample data on it, passes the structural checks and writes times as JST text."""
    ws = seeded_workspace
    c = ws.client("coordinator")
    inbox = c.get("/alerts").text
    check(inbox)
    with ws.sessions() as s:
        alert = s.scalars(select(AlertState).order_by(AlertState.updated_at.desc())).first()
        assert alert is not None
        households = sorted({a.household_id for a in s.scalars(select(AlertState))})
        routes = {h: view_household(Viewer("coordinator", "coordinator"), load_household(s, h),
                                    datetime.now(UTC)).route for h in households}
    shown = alert.updated_at.astimezone(JST)
    assert f"{shown.year}年{shown.month}月{shown.day}日 {shown.hour:02d}:{shown.minute:02d}" in inbox
    for route in ("team", "alert_only"):
        hh = next(h for h, r in routes.items() if r == route)
        page = c.get(f"/households/{hh}").text
        check(page)
        assert JST_TIME.search(page)
    r = c.post("/meetings", data={"csrf_token": csrf_in(inbox), "alert_id": alert.alert_id,
                                  "kind": "support_meeting"})
    assert r.status_code == 200
    check(r.text)
    check(c.get("/meetings").text)
