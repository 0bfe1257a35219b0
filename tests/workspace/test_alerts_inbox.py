"""The alert inbox (/alerts) over a real run of the samples: states, reopening, counts, filters, minimal form."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from workspace.support import Workspace, csrf_in

from consent.store import iter_audit
from hub.pipeline.tables import AlertState, HubOutbox
from hub.workspace.alert_work import TransitionError, WorkState, effective, transition
from hub.workspace.labels import ALERT_KIND
from hub.workspace.models import AlertWork
from schemas.codes import Field

COUNT_RE = re.compile(r'state=(\w+)[^>]*>[^:]+: <strong>(\d+)</strong>')


def counts(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in COUNT_RE.findall(html)}


def some_alert(ws: Workspace, *, shareable: bool | None = None) -> AlertState:
    with ws.sessions() as s:
        return s.scalars(select(AlertState).order_by(AlertState.alert_id)).first()  # type: ignore[return-value]


def post(client, url: str, page_url: str = "/alerts", **data: str):  # type: ignore[no-untyped-def]
    token = csrf_in(client.get(page_url).text)
    return client.post(url, data={"csrf_token": token, **data}, follow_redirects=False)


# --------------------------------------------------------------------------- pure transitions
NEW = WorkState("new", False, 0, None, None, None, False)


def test_transitions_follow_the_table() -> None:
    """new → acknowledged → assigned → closed; acknowledging twice or acting on a closed alert is refused."""
    ack = transition(NEW, "acknowledge")
    assert ack.state == "acknowledged"
    acked = WorkState("acknowledged", False, 0, None, None, None, False)
    with pytest.raises(TransitionError):
        transition(acked, "acknowledge")
    assigned = transition(acked, "assign", assignee="coordinator")
    assert (assigned.state, assigned.assignee) == ("assigned", "coordinator")
    closed_state = WorkState("closed", False, 0, "coordinator", "no_action", None, False)
    for action in ("acknowledge", "assign", "close"):
        with pytest.raises(TransitionError):
            transition(closed_state, action, assignee="x", reason="no_action")


def test_closing_needs_a_known_reason_and_assigning_a_person() -> None:
    """A close without a reason code, or with free text, and an assignment without a person are refused."""
    for reason in (None, "", "家族が拒否したため"):
        with pytest.raises(TransitionError):
            transition(NEW, "close", reason=reason)
    with pytest.raises(TransitionError):
        transition(NEW, "assign", assignee=" ")


def test_an_alert_updated_after_closing_is_reopened_not_new() -> None:
    """The hub updating a closed alert makes it new again with the 再開 flag; before the update it stays closed."""
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    work = AlertWork(alert_id="a", state="closed", reopened=False, reopen_count=0, last_seen_update=t0,
                     closed_reason="no_action", updated_at=t0, updated_by="c")
    assert effective(work, t0).state == "closed"
    again = effective(work, t0 + timedelta(days=1))
    assert (again.state, again.reopened, again.reopen_count) == ("new", True, 1)


# --------------------------------------------------------------------------- the inbox over the samples
def test_inbox_lists_every_alert_newest_first_with_counts(seeded_workspace: Workspace) -> None:
    """All alerts are new at first: the count of 新規 equals the hub's alerts, and rows come newest first."""
    ws = seeded_workspace
    with ws.sessions() as s:
        total = len(s.scalars(select(AlertState)).all())
        newest = s.scalars(select(AlertState).order_by(AlertState.updated_at.desc(),
                                                       AlertState.raised_at.desc(),
                                                       AlertState.alert_id.desc())).first()
    c = ws.client("coordinator")
    page = c.get("/alerts")
    assert page.status_code == 200
    assert counts(page.text)["new"] == total and counts(page.text)["closed"] == 0
    assert newest is not None
    first_action = re.search(r'action="/alerts/([^/]+)/acknowledge"', page.text)
    assert first_action and first_action.group(1) == newest.alert_id
    assert "<th scope=\"col\">種類</th>" in page.text


def test_acknowledge_assign_close_and_reopen(seeded_workspace: Workspace) -> None:
    """A coordinator moves an alert through every state; the hub worsening it after closing reopens it (再開)."""
    ws = seeded_workspace
    alert = some_alert(ws)
    c = ws.client("coordinator")
    before = counts(c.get("/alerts").text)
    assert post(c, f"/alerts/{alert.alert_id}/acknowledge").status_code == 303
    assert counts(c.get("/alerts").text)["acknowledged"] == before["acknowledged"] + 1
    r = post(c, f"/alerts/{alert.alert_id}/acknowledge")
    assert r.status_code == 409  # already acknowledged
    assert post(c, f"/alerts/{alert.alert_id}/assign", assignee="coordinator").status_code == 303
    assert post(c, f"/alerts/{alert.alert_id}/close", reason="no_action").status_code == 303
    after = counts(c.get("/alerts").text)
    assert after["closed"] == before["closed"] + 1 and after["new"] == before["new"] - 1
    closed_page = c.get("/alerts?state=closed").text
    assert alert.alert_id in closed_page and "対応不要と判断した" in closed_page

    with ws.sessions.begin() as s:  # the hub raises the same alert again (a new field)
        row = s.get(AlertState, alert.alert_id)
        assert row is not None
        row.updated_at = row.updated_at + timedelta(days=1)
    page = c.get("/alerts").text
    reopened = counts(page)
    assert reopened["closed"] == before["closed"] and reopened["new"] == before["new"]
    assert reopened["reopened"] == 1
    assert page.count(f'/alerts/{alert.alert_id}/acknowledge"') == 1  # one alert, not a second one
    assert "再開" in c.get("/alerts?state=reopened").text
    assert post(c, f"/alerts/{alert.alert_id}/acknowledge").status_code == 303
    with ws.sessions() as s:
        work = s.get(AlertWork, alert.alert_id)
        assert work is not None and (work.state, work.reopened, work.reopen_count) == ("acknowledged", True, 1)
        entries = [e for e in iter_audit(s) if e.action and e.action.startswith("alert.")]
        outbox = [o.value for o in s.scalars(select(HubOutbox).where(HubOutbox.topic.like("%.workspace.v1")))]
    assert [(e.action, e.user) for e in entries] == [
        ("alert.acknowledge", "coordinator"), ("alert.assign", "coordinator"), ("alert.close", "coordinator"),
        ("alert.acknowledge", "coordinator")]
    assert len(outbox) == 4 and b"jp.tsunagu.alert.closed.v1" in outbox[2]


def test_filter_by_kind_and_state(seeded_workspace: Workspace) -> None:
    """Filtering by kind shows only that kind; the state filter only that state."""
    ws = seeded_workspace
    c = ws.client("coordinator")
    with ws.sessions() as s:
        kinds = {a.kind: a for a in s.scalars(select(AlertState))}
    for kind in kinds:
        page = c.get(f"/alerts?kind={kind}").text
        rows = re.findall(r'<th scope="row">([^<]+)</th>', page)
        assert rows and set(rows) == {ALERT_KIND[kind]}
    assert "該当するアラートはありません" in c.get("/alerts?state=assigned").text


def test_the_inbox_never_shows_names(seeded_workspace: Workspace) -> None:
    """The inbox is minimal for every alert: no resident name from the registry appears on it."""
    from hub.identity.tables import Resident

    ws = seeded_workspace
    with ws.sessions() as s:
        names = [r.name for r in s.scalars(select(Resident))]
    page = ws.client("coordinator").get("/alerts").text
    assert names and not [n for n in names if n in page]


@pytest.mark.parametrize("user", ["ops", "consent_officer"])
def test_ops_and_consent_officers_cannot_open_or_act_on_the_inbox(seeded_workspace: Workspace, user: str) -> None:
    """The inbox and its actions are refused to roles other than coordinator and admin."""
    ws = seeded_workspace
    c = ws.client(user)
    assert c.get("/alerts").status_code == 403
    alert = some_alert(ws)
    token = csrf_in(c.get("/consents").text) if user == "consent_officer" else "x"
    r = c.post(f"/alerts/{alert.alert_id}/acknowledge", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 403


def test_an_agency_user_sees_only_the_alerts_of_its_meetings(seeded_workspace: Workspace) -> None:
    """The elderly centre's user sees no alert until a 支援会議 with the centre designates a household;
    then only that household's alerts, and no action to put anything on an agenda."""
    from datetime import date

    from consent.model import Designation
    from consent.store import ConsentRepository
    from hub.pipeline.tables import CaseState

    ws = seeded_workspace
    c = ws.client("houkatsu")
    assert "該当するアラートはありません" in c.get("/alerts").text
    with ws.sessions.begin() as s:
        elderly_open = {h for (h,) in s.execute(select(CaseState.household_id).where(
            CaseState.field == "elderly", CaseState.closed_on.is_(None)))}
        alert = s.scalars(select(AlertState).where(AlertState.household_id.in_(elderly_open))
                          .order_by(AlertState.alert_id)).first()
        assert alert is not None
        ConsentRepository(s).add_designation(Designation("d-t", alert.household_id, (Field.ELDERLY,),
                                                         date(2025, 1, 1)))
        ids = {a.alert_id for a in s.scalars(select(AlertState).where(
            AlertState.household_id == alert.household_id))}
    page = c.get("/alerts").text
    shown = set(re.findall(r'id="alert-([^"]+)"', page))
    assert shown == ids
    assert "支援会議の議題にする" not in page and "確認する" not in page
    r = c.post(f"/alerts/{alert.alert_id}/acknowledge", data={"csrf_token": csrf_in(page)}, follow_redirects=False)
    assert r.status_code == 403


def test_the_inbox_pages_through_every_alert_once(seeded_workspace: Workspace) -> None:
    """Pages of 50: together they list every alert exactly once, newest first across pages."""
    from hub.workspace.routes_alerts import PAGE_SIZE

    ws = seeded_workspace
    with ws.sessions() as s:
        total = {a.alert_id for a in s.scalars(select(AlertState))}
    assert len(total) > PAGE_SIZE, "the samples give more than one page"
    c = ws.client("coordinator")
    seen: list[str] = []
    for n in (1, 2):
        seen += re.findall(r'<tr id="alert-([^"]+)"', c.get(f"/alerts?page={n}").text)
    assert len(seen) == len(total) and set(seen) == total
    assert "2ページ" in c.get("/alerts").text


def test_the_inbox_lists_plans_whose_monitoring_date_passed(seeded_workspace: Workspace) -> None:
    """A running plan past its monitoring date shows under the inbox; one not yet due, or closed, does not."""
    from consent.model import JST
    from hub.workspace.models import Plan

    ws = seeded_workspace
    today = ws.clock().astimezone(JST).date()
    with ws.sessions.begin() as s:
        household = s.scalars(select(AlertState.household_id)).first()
        assert household is not None
        for pid, due, state in (("plan-due", today - timedelta(days=1), "active"),
                                ("plan-later", today + timedelta(days=30), "active"),
                                ("plan-closed", today - timedelta(days=40), "closed")):
            s.add(Plan(id=pid, household_id=household, state=state, lead_agency="elderly", roles={}, goals=[],
                       programmes=[], next_monitoring_on=due, created_by="t", created_at=ws.clock(),
                       updated_at=ws.clock(), version=1))
    page = ws.client("coordinator").get("/alerts").text
    assert "/plans/plan-due" in page and "/plans/plan-later" not in page and "/plans/plan-closed" not in page
    assert "/plans/plan-due" not in ws.client("houkatsu").get("/alerts").text  # an agency's user: its meetings only
