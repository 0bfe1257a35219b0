"""The household page, its FHIR export and the policy over a real run of the samples: what shows, what never does."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fhir.resources.bundle import Bundle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session
from workspace.support import Workspace

from consent.model import JST, Designation
from consent.store import ConsentRepository, iter_audit
from hub.db import make_engine, make_sessionmaker
from hub.identity.tables import Person
from hub.pipeline.tables import AlertState
from hub.workspace.fhir_export import build_bundle
from hub.workspace.households import load_household
from hub.workspace.policy import HouseholdFacts, Viewer, minimal_strings, view_household
from schemas.codes import Field

COORD = Viewer("coordinator", "coordinator", None)


def all_facts(s: Session) -> list[HouseholdFacts]:
    households = sorted({h for (h,) in s.execute(select(Person.household_id).where(Person.household_id.is_not(None)))
                         if h})
    return [load_household(s, h) for h in households]


def secrets_of(facts: HouseholdFacts) -> list[str]:
    """Every name, kana, person id, free text and 要配慮 detail the hub holds about a household."""
    out: list[str] = []
    for m in facts.members:
        out += [m.person, *(x for x in (m.name, m.kana) if x)]
    for e in facts.events:
        out += [*(x for x in (e.summary,) if x), *e.notes]
    return [s for s in out if s and len(s) >= 2]


@pytest.fixture(scope="module")
def sample_facts(seeded_state: str) -> list[HouseholdFacts]:
    engine = make_engine(seeded_state)
    try:
        with make_sessionmaker(engine)() as s:
            return all_facts(s)
    finally:
        engine.dispose()


def first(facts: list[HouseholdFacts], route: str, now: datetime) -> HouseholdFacts:
    for f in facts:
        if view_household(COORD, f, now).route == route:
            return f
    raise AssertionError(f"no sample household on the {route} route")


def now_of(ws: Workspace) -> datetime:
    return ws.clock()


# --------------------------------------------------------------------------- property over the samples
def test_the_samples_give_every_route(sample_facts: list[HouseholdFacts]) -> None:
    """The samples hold consented households (team route) and alert-only 支援会議 candidates."""
    now = datetime.now(UTC)
    routes = {view_household(COORD, f, now).route for f in sample_facts}
    assert {"team", "alert_only"} <= routes


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_minimal_form_over_the_samples_never_carries_personal_details(sample_facts: list[HouseholdFacts],
                                                                      data: st.DataObject) -> None:
    """Any sample household, any 支援会議 membership, any viewer and day: the minimal parts hold no name,
    kana, person id, free text or 要配慮 detail the hub holds about that household, and the FHIR export of
    that view holds no free text and nothing of a member it masks."""
    facts = data.draw(st.sampled_from(sample_facts))
    fields = data.draw(st.sets(st.sampled_from(list(Field)), min_size=1))
    start = data.draw(st.dates(min_value=date(2025, 4, 1), max_value=date(2026, 11, 30)))
    day = data.draw(st.dates(min_value=start, max_value=date(2027, 3, 31)))
    viewer = data.draw(st.sampled_from([COORD, Viewer("a", "admin", None)]
                                       + [Viewer("x", "coordinator", f) for f in Field]))
    designated = HouseholdFacts(**{**facts.__dict__, "designations": (
        Designation("d-prop", facts.household, tuple(sorted(fields)), start),)})
    now = datetime(day.year, day.month, day.day, 12, tzinfo=JST)
    view = view_household(viewer, designated, now)
    texts = minimal_strings(view)
    leaked = [s for s in secrets_of(facts) if any(s in t for t in texts)]
    assert not leaked
    if viewer.agency is not None:
        assert all(i.form == "minimal" for i in view.timeline)
    if view.allowed:  # the FHIR export of the same view: no free text, nothing of a masked member
        bundle = json.dumps(build_bundle(view, designated, referrals=[], plan=None, alert_states={}, now=now),
                            ensure_ascii=False)
        named = {m.person for m in view.members if m.named}
        hidden = [x for m in facts.members if m.person not in named for x in (m.person, m.name, m.kana) if x]
        hidden += [x for e in facts.events for x in (e.summary, *e.notes) if x]
        assert not [x for x in hidden if x in bundle]


# --------------------------------------------------------------------------- the page
def test_a_candidate_household_page_shows_no_names_and_is_audited(seeded_workspace: Workspace) -> None:
    """A 支援会議 candidate's page: masked members, no name anywhere; the view is on the audit chain with the user."""
    ws = seeded_workspace
    with ws.sessions() as s:
        facts = first(all_facts(s), "alert_only", now_of(ws))
    page = ws.client("coordinator").get(f"/households/{facts.household}")
    assert page.status_code == 200
    assert "支援会議候補" in page.text and "非表示（本人同意なし）" in page.text
    assert not [x for x in secrets_of(facts) if x in page.text]
    with ws.sessions() as s:
        entries = [e for e in iter_audit(s) if e.action == "household.view"]
    assert [(e.user, e.sourcerecord) for e in entries] == [("coordinator", f"household:{facts.household}")]


def test_a_consented_household_shows_the_consented_members_timeline(seeded_workspace: Workspace) -> None:
    """On the team route the consenting member's name and case events show in full; masked members stay masked."""
    ws = seeded_workspace
    with ws.sessions() as s:
        facts = first(all_facts(s), "team", now_of(ws))
    view = view_household(COORD, facts, now_of(ws))
    page = ws.client("coordinator").get(f"/households/{facts.household}").text
    named = [m for m in view.members if m.named]
    assert named and all(m.name and m.name in page for m in named)
    assert any(i.full for i in view.timeline) and "共有の根拠: consent:" in page
    masked_names = {f.name for f in facts.members} - {m.name for m in named}
    assert not [n for n in masked_names if n and n in page]


def test_withdrawal_hides_the_timeline_on_the_page(seeded_workspace: Workspace) -> None:
    """A sample consent withdrawn later: before its date the member's events show; from it on they are gone."""
    ws = seeded_workspace
    with ws.sessions() as s:
        facts_all = all_facts(s)
    found = None
    for f in facts_all:
        for person, versions in f.consents.items():
            withdrawn = [v for v in versions if v.status == "inactive"]
            ours = [e for e in f.events if e.person == person and e.time < min(v.version for v in withdrawn)] \
                if withdrawn else []
            if withdrawn and ours:
                found = (f, person, min(v.version for v in withdrawn))
                break
        if found:
            break
    assert found, "the samples hold a withdrawn consent of a member with earlier events"
    facts, person, effective = found
    before = view_household(COORD, facts, effective - timedelta(hours=1))
    after = view_household(COORD, facts, effective + timedelta(hours=1))
    shown_before = [i for i in before.timeline if i.full and before.person_of(i.full.member) == person]
    shown_after = [i for i in after.timeline if i.full and after.person_of(i.full.member) == person]
    assert shown_before and not shown_after
    name = next(m.name for m in facts.members if m.person == person)
    ws.clock.now = effective - timedelta(hours=1)
    page_before = ws.client("coordinator").get(f"/households/{facts.household}").text
    ws.clock.now = effective + timedelta(hours=1)
    page_after = ws.client("coordinator").get(f"/households/{facts.household}").text
    assert name and name in page_before and name not in page_after
    assert shown_before[0].full and shown_before[0].full.record in page_before


def test_ops_and_consent_officers_are_refused_a_household(seeded_workspace: Workspace) -> None:
    """Ops and consent officers get 403 on a household page and its export; anonymous users go to the login."""
    ws = seeded_workspace
    with ws.sessions() as s:
        household = s.scalars(select(AlertState.household_id)).first()
    for user in ("ops", "consent_officer"):
        c = ws.client(user)
        assert c.get(f"/households/{household}").status_code == 403
        assert c.get(f"/households/{household}/fhir").status_code == 403
    anon = ws.client(None).get(f"/households/{household}", follow_redirects=False)
    assert anon.status_code == 303 and anon.headers["location"].startswith("/login")


def test_an_agency_user_outside_any_meeting_is_refused_and_the_refusal_audited(seeded_workspace: Workspace) -> None:
    """The elderly centre's user without a 支援会議 for the household gets 403, recorded with the user."""
    ws = seeded_workspace
    with ws.sessions() as s:
        household = s.scalars(select(AlertState.household_id)).first()
    assert ws.client("houkatsu").get(f"/households/{household}").status_code == 403
    with ws.sessions() as s:
        refused = [e for e in iter_audit(s) if e.action == "household.view.refused"]
    assert [e.user for e in refused] == ["houkatsu"]


def test_unknown_household_is_404(seeded_workspace: Workspace) -> None:
    """A household the hub does not know is not found (and nothing is shown)."""
    assert seeded_workspace.client("coordinator").get("/households/h-nope").status_code == 404


# --------------------------------------------------------------------------- FHIR
def _bundle(ws: Workspace, user: str, household: str) -> dict[str, Any]:
    r = ws.client(user).get(f"/households/{household}/fhir")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    data: dict[str, Any] = r.json()
    Bundle.model_validate(data)  # the export is a valid FHIR R5 Bundle
    return data


def _types(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["resourceType"] for e in bundle["entry"]]


def test_fhir_export_of_a_consented_household(seeded_workspace: Workspace) -> None:
    """Team route: Patients with IDE/SYL names for consenting members, Group, EpisodeOfCare, Consent, Flag; audited."""
    ws = seeded_workspace
    with ws.sessions() as s:
        facts = first(all_facts(s), "team", now_of(ws))
    view = view_household(COORD, facts, now_of(ws))
    bundle = _bundle(ws, "coordinator", facts.household)
    types = _types(bundle)
    assert types.count("Patient") >= len(view.members) and types.count("Group") == 1
    assert "EpisodeOfCare" in types and "Consent" in types and types.count("Flag") == len(view.alerts)
    reps = {ext["valueCode"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
            for n in e["resource"].get("name", []) for ext in n.get("extension", [])}
    assert "IDE" in reps
    text = json.dumps(bundle, ensure_ascii=False)
    masked = {f.name for f in facts.members} - {m.name for m in view.members if m.named}
    masked_ids = {f.person for f in facts.members} - {m.person for m in view.members if m.named}
    assert not [x for x in masked | masked_ids if x and x in text]
    with ws.sessions() as s:
        assert [(e.user, e.action) for e in iter_audit(s) if e.action and e.action.startswith("household.")] == [
            ("coordinator", "household.fhir")]


def test_fhir_export_of_a_candidate_carries_nothing_personal(seeded_workspace: Workspace) -> None:
    """An alert-only household: masked Patients with age bands, a Group and Flags; no name, kana, id or text."""
    ws = seeded_workspace
    with ws.sessions() as s:
        facts = first(all_facts(s), "alert_only", now_of(ws))
    bundle = _bundle(ws, "coordinator", facts.household)
    assert set(_types(bundle)) == {"Patient", "Group", "Flag"}
    text = json.dumps(bundle, ensure_ascii=False)
    assert not [x for x in secrets_of(facts) if x in text]
    assert not [c.record for c in facts.cases if c.record in text]


# --------------------------------------------------------------------------- meetings
def _csrf(client: Any, url: str) -> str:
    from workspace.support import csrf_in

    return csrf_in(client.get(url).text)


def test_support_meeting_from_an_alert_designates_the_household(seeded_workspace: Workspace) -> None:
    """Agenda from a candidate alert, decision recorded: the designation names the agencies present, the elderly
    centre's user then sees the minimal form with its own record keys only, and ending it by decision closes it."""
    ws = seeded_workspace
    with ws.sessions() as s:
        facts = first(all_facts(s), "alert_only", now_of(ws))
        alert = s.scalars(select(AlertState).where(AlertState.household_id == facts.household)).first()
    assert alert is not None
    fields = sorted({c.field for c in facts.cases if c.closed_on is None}, key=lambda f: f.value)
    c = ws.client("coordinator")
    r = c.post("/meetings", data={"csrf_token": _csrf(c, "/alerts"), "alert_id": alert.alert_id,
                                  "kind": "support_meeting"}, follow_redirects=False)
    assert r.status_code == 303
    meeting_url = r.headers["location"].split("?")[0]
    page = c.get(meeting_url)
    assert page.status_code == 200 and "会議の結果を記録する" in page.text
    today = now_of(ws).astimezone(JST).date()
    r = c.post(f"{meeting_url}/decision", data={
        "csrf_token": _csrf(c, meeting_url), "held_on": today.isoformat(), "decision": "designate",
        "members_present": [f.value for f in fields] + ["elderly"]}, follow_redirects=False)
    assert r.status_code == 303
    with ws.sessions() as s:
        designations = ConsentRepository(s).designations_for(facts.household)
    assert len(designations) == 1 and designations[0].start == today and designations[0].end is None
    assert set(designations[0].member_agencies) == {*fields, Field.ELDERLY}

    coordinator_page = c.get(f"/households/{facts.household}").text
    assert "支援会議（社会福祉法第106条の6）による必要最小限の共有" in coordinator_page
    assert not [x for x in secrets_of(facts) if x in coordinator_page]
    assert not [x.record for x in facts.cases if x.record in coordinator_page]  # the team gets no record keys

    houkatsu = ws.client("houkatsu")
    agency_page = houkatsu.get(f"/households/{facts.household}")
    assert agency_page.status_code == 200
    own = [x.record for x in facts.cases if x.field is Field.ELDERLY]
    others = [x.record for x in facts.cases if x.field is not Field.ELDERLY]
    assert all(r in agency_page.text for r in own) and not [r for r in others if r in agency_page.text]
    assert not [x for x in secrets_of(facts) if x in agency_page.text]

    for user, shown_records in (("coordinator", []), ("houkatsu", own)):
        bundle = _bundle(ws, user, facts.household)
        text = json.dumps(bundle, ensure_ascii=False)
        assert _types(bundle).count("EpisodeOfCare") == len([x for x in facts.cases if x.field in fields
                                                             or x.field is Field.ELDERLY])
        assert not [x for x in secrets_of(facts) if x in text]
        assert [x.record for x in facts.cases if x.record in text] == shown_records

    r = c.post("/meetings", data={"csrf_token": _csrf(c, "/meetings"), "household": facts.household,
                                  "kind": "support_meeting"}, follow_redirects=False)
    second = r.headers["location"].split("?")[0]
    assert second != meeting_url
    r = c.post(f"{second}/decision", data={"csrf_token": _csrf(c, second), "held_on": today.isoformat(),
                                           "decision": "end_designation"}, follow_redirects=False)
    assert r.status_code == 303
    with ws.sessions() as s:
        assert [d.end for d in ConsentRepository(s).designations_for(facts.household)] == [today]
    ws.clock.now = ws.clock.now + timedelta(days=1)
    later = ws.client("houkatsu").get(f"/households/{facts.household}", follow_redirects=False)
    assert later.status_code == 403
    with ws.sessions() as s:
        actions = [(e.user, e.action) for e in iter_audit(s) if e.action and e.action.startswith("meeting.")
                   and e.action != "meeting.view"]
    assert actions == [("coordinator", "meeting.agenda"), ("coordinator", "meeting.designate"),
                       ("coordinator", "meeting.agenda"), ("coordinator", "meeting.end_designation")]


def test_designation_needs_members_and_a_past_date(seeded_workspace: Workspace) -> None:
    """Designating with no agency present or a future date is refused with a message, and nothing is designated."""
    ws = seeded_workspace
    with ws.sessions() as s:
        alert = s.scalars(select(AlertState)).first()
    assert alert is not None
    c = ws.client("coordinator")
    r = c.post("/meetings", data={"csrf_token": _csrf(c, "/alerts"), "alert_id": alert.alert_id,
                                  "kind": "support_meeting"}, follow_redirects=False)
    url = r.headers["location"].split("?")[0]
    today = now_of(ws).astimezone(JST).date()
    r = c.post(f"{url}/decision", data={"csrf_token": _csrf(c, url), "held_on": today.isoformat(),
                                        "decision": "designate"})
    assert r.status_code == 400 and "出席した機関を選んでください" in r.text
    r = c.post(f"{url}/decision", data={"csrf_token": _csrf(c, url), "decision": "designate",
                                        "held_on": (today + timedelta(days=1)).isoformat(),
                                        "members_present": ["elderly"]})
    assert r.status_code == 400
    with ws.sessions() as s:
        assert ConsentRepository(s).designations_for(alert.household_id) == []


def test_team_meeting_takes_only_a_consented_household_into_the_team(seeded_workspace: Workspace) -> None:
    """重層的支援会議: refused without consent; with consent the decision leads to making a plan."""
    ws = seeded_workspace
    with ws.sessions() as s:
        facts_all = all_facts(s)
    candidate = first(facts_all, "alert_only", now_of(ws))
    consented = first(facts_all, "team", now_of(ws))
    c = ws.client("coordinator")
    today = now_of(ws).astimezone(JST).date().isoformat()
    for facts, expected in ((candidate, 400), (consented, 303)):
        r = c.post("/meetings", data={"csrf_token": _csrf(c, "/meetings"), "household": facts.household,
                                      "kind": "team_meeting"}, follow_redirects=False)
        url = r.headers["location"].split("?")[0]
        r = c.post(f"{url}/decision", data={"csrf_token": _csrf(c, url), "held_on": today,
                                            "decision": "take_into_team", "members_present": ["elderly"]},
                   follow_redirects=False)
        assert r.status_code == expected
    assert r.headers["location"] == f"/plans/new?household={consented.household}"
    form = c.get(r.headers["location"])
    assert form.status_code == 200 and "この世帯にはまだその決定が記録されていません" not in form.text
    assert f'href="/plans/new?household={consented.household}"' in c.get(f"/households/{consented.household}").text
    assert "/plans/new" not in c.get(f"/households/{candidate.household}").text


def test_only_the_municipal_team_convenes_meetings(seeded_workspace: Workspace) -> None:
    """An agency's user, ops and consent officers cannot put a household on an agenda."""
    ws = seeded_workspace
    with ws.sessions() as s:
        alert = s.scalars(select(AlertState)).first()
    assert alert is not None
    c = ws.client("houkatsu")
    r = c.post("/meetings", data={"csrf_token": _csrf(c, "/meetings"), "alert_id": alert.alert_id,
                                  "kind": "support_meeting"}, follow_redirects=False)
    assert r.status_code == 403
    assert ws.client("ops").get("/meetings").status_code == 403


# --------------------------------------------------------------------------- referrals on the page and export
def _referral(rid: str, household: str, person: str | None, *, origin: str = "event", record: str | None = None,
              from_agency: str | None = "livelihood", target: str = "elderly") -> Any:
    from hub.workspace.models import Referral

    t = datetime(2026, 10, 1, tzinfo=UTC)
    return Referral(id=rid, origin=origin, source_event_id=None, household_id=household, person_id=person,
                    record=record, from_agency=from_agency, target=target, status="requested", reason=None,
                    requested_at=t, updated_at=t, updated_by="test")


def test_referrals_show_for_named_members_and_the_teams_own_only(seeded_workspace: Workspace) -> None:
    """A consenting member's referral exports as ServiceRequest + Task with its record key; a masked member's
    referral from an agency not on a 支援会議 is left out; the team's own referral shows without a person."""
    ws = seeded_workspace
    with ws.sessions() as s:
        mixed = [(f, v) for f in all_facts(s) if (v := view_household(COORD, f, now_of(ws))).route == "team"
                 and any(not m.named for m in v.members)]
    assert mixed, "the samples hold a consented household with a member who has not consented"
    facts, view = mixed[0]
    named = next(m for m in view.members if m.named)
    masked = next(m for m in facts.members if m.person not in {v.person for v in view.members if v.named})
    with ws.sessions.begin() as s:
        s.add(_referral("r-named", facts.household, named.person, record="jiritsu:canary-record-1"))
        s.add(_referral("r-team", facts.household, None, origin="coordinator", from_agency=None,
                        target="outreach"))
        s.add(_referral("r-masked", facts.household, masked.person, record="shogai:canary-record-2",
                        from_agency="disability"))
    bundle = _bundle(ws, "coordinator", facts.household)
    types = _types(bundle)
    assert types.count("ServiceRequest") == 2 and types.count("Task") == 2
    text = json.dumps(bundle, ensure_ascii=False)
    assert "jiritsu:canary-record-1" in text and "canary-record-2" not in text
    tasks = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Task"]
    assert {t["status"] for t in tasks} == {"requested"}
    page = ws.client("coordinator").get(f"/households/{facts.household}").text
    assert "/referrals/r-named" in page and "/referrals/r-team" in page and "/referrals/r-masked" not in page


def test_an_agenda_gets_a_planned_date_and_can_be_cancelled(seeded_workspace: Workspace) -> None:
    """Putting the same household on the agenda again reuses the open agenda (one case, not two) and sets its
    planned date; cancelling takes it off, and a cancelled meeting takes no decision."""
    from hub.workspace.models import Meeting

    ws = seeded_workspace
    with ws.sessions() as s:
        alert = s.scalars(select(AlertState).order_by(AlertState.alert_id)).first()
    assert alert is not None
    c = ws.client("coordinator")
    first_url = c.post("/meetings", data={"csrf_token": _csrf(c, "/alerts"), "alert_id": alert.alert_id,
                                          "kind": "support_meeting"}, follow_redirects=False).headers["location"]
    again = c.post("/meetings", data={"csrf_token": _csrf(c, "/meetings"), "household": alert.household_id,
                                      "kind": "support_meeting", "planned_on": "2026-12-10"}, follow_redirects=False)
    url = first_url.split("?")[0]
    assert again.headers["location"].split("?")[0] == url
    assert "2026年12月10日" in c.get(url).text
    assert c.post(f"{url}/cancel", data={"csrf_token": _csrf(c, url)}, follow_redirects=False).status_code == 303
    r = c.post(f"{url}/decision", data={"csrf_token": _csrf(c, url), "held_on": "2026-11-30",
                                        "decision": "no_action"})
    assert r.status_code == 400
    with ws.sessions() as s:
        meetings = s.scalars(select(Meeting).where(Meeting.household_id == alert.household_id)).all()
        actions = [e.action for e in iter_audit(s) if e.action and e.action.startswith("meeting.")
                   and e.action != "meeting.view"]
    assert [(m.state, m.planned_on) for m in meetings] == [("cancelled", date(2026, 12, 10))]
    assert actions == ["meeting.agenda", "meeting.plan", "meeting.cancel"]


def test_a_plan_shows_and_exports_only_on_the_team_route(seeded_workspace: Workspace) -> None:
    """A plan rests on consent: its CarePlan is exported for a consented household, never for a candidate."""
    from hub.workspace.models import Plan

    ws = seeded_workspace
    with ws.sessions() as s:
        facts_all = all_facts(s)
    team = first(facts_all, "team", now_of(ws))
    candidate = first(facts_all, "alert_only", now_of(ws))
    with ws.sessions.begin() as s:
        for pid, hh in (("plan-team", team.household), ("plan-cand", candidate.household)):
            s.add(Plan(id=pid, household_id=hh, state="active", lead_agency="livelihood",
                       roles={"livelihood": "家計相談"}, goals=["目標カナリア"], programmes=["participation"],
                       next_monitoring_on=date(2027, 1, 10), created_by="t", created_at=ws.clock(),
                       updated_at=ws.clock(), version=1))
    bundle = _bundle(ws, "coordinator", team.household)
    plans = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "CarePlan"]
    assert len(plans) == 1 and plans[0]["description"] == "目標カナリア" and plans[0]["intent"] == "plan"
    assert "/plans/plan-team" in ws.client("coordinator").get(f"/households/{team.household}").text
    cand = _bundle(ws, "coordinator", candidate.household)
    assert "CarePlan" not in _types(cand) and "目標カナリア" not in json.dumps(cand, ensure_ascii=False)
    assert "/plans/plan-cand" not in ws.client("coordinator").get(f"/households/{candidate.household}").text
