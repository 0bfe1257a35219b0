"""Inbox, household page, meetings and consent withdrawal on SQLite and PostgreSQL, over hand-made rows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from workspace.support import Workspace, add_users, csrf_in, make_workspace

from consent.model import ConsentVersion
from consent.store import ConsentRepository, iter_audit
from hub.identity.tables import Household, Person, PersonRecordRow, Resident
from hub.migrate import upgrade
from hub.pipeline.tables import AlertState, CaseEvent, CaseState
from hub.workspace.models import AlertWork, Meeting
from schemas.codes import Field
from schemas.envelope import CloudEvent

H = "h-wb00000000000001"
MOTHER, SON = "p-wb-mother-000001", "p-wb-son-000000002"
M_REC, S_REC = "houkatsu:C01-2026-0901", "jiritsu:J26-0902"
NAMES = {MOTHER: "カナリア 花子", SON: "カナリア 太郎"}
SUMMARY = "自由記述カナリア：借金の相談"
T0 = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)


def _case_event(eid: str, person: str, record: str, field: str, feed: str, when: datetime) -> CaseEvent:
    data = {"feed": feed, "case": record, "opened_on": "2026-06-01", "status": "in_progress",
            "subject": {"record": record, "name": NAMES[person], "kana": "カナリア", "birth_date": "1980-01-01"},
            "sensitive": {"summary": SUMMARY, "disability_types": ["mental"], "notes": ["備考カナリア"]},
            "revision": when.isoformat()}
    ev = CloudEvent(id=eid, source=f"urn:tsunagu:connector:{feed}:x", type="jp.tsunagu.case.opened.v1", time=when,
                    sourcerecord=record, field=field, person=person, household=H, data=data)
    return CaseEvent(event_id=ev.id, source=ev.source, record=record, person_id=person, household_id=H, field=field,
                     type=ev.type, time=when, team_published=False, payload=ev.to_json_bytes())


def seed(ws: Workspace) -> None:
    with ws.sessions.begin() as s:
        s.add(Household(id=H, household_no="9000000001", origin="registry", named_by=None))
        for pid, no in ((MOTHER, "9000000011"), (SON, "9000000012")):
            s.add(Person(id=pid, resident_no=no, household_id=H, created_by=f"registry:{no}", created_at=T0))
        s.flush()
        for pid, no, birth, rel in ((MOTHER, "9000000011", date(1944, 1, 1), "head"),
                                    (SON, "9000000012", date(1978, 1, 1), "child")):
            s.add(Resident(resident_no=no, household_no="9000000001", relation=rel, name=NAMES[pid],
                           birth_date=birth, sex="female" if pid == MOTHER else "male", person_id=pid))
        s.add(PersonRecordRow(record=M_REC, person_id=MOTHER, household_id=H, feed="houkatsu",
                              resident_no="9000000011", updated_at=T0))
        s.add(PersonRecordRow(record=S_REC, person_id=SON, household_id=H, feed="jiritsu", resident_no="9000000012",
                              updated_at=T0))
        for case, person, field, feed in ((M_REC, MOTHER, "elderly", "houkatsu"), (S_REC, SON, "livelihood",
                                                                                       "jiritsu")):
            s.add(CaseState(case=case, record=case, person_id=person, household_id=H, feed=feed, field=field,
                            status="in_progress", opened_on=date(2026, 6, 1), closed_on=None, topics=[], members={},
                            revision=T0))
        s.add(_case_event("e-m1", MOTHER, M_REC, "elderly", "houkatsu", T0))
        s.add(_case_event("e-s1", SON, S_REC, "livelihood", "jiritsu", T0 + timedelta(days=1)))
        s.add(AlertState(alert_id="a-wb-8050", household_id=H, kind="8050", fields=["elderly", "livelihood"],
                         records=[M_REC, S_REC], status="open", raised_at=T0, updated_at=T0))


@pytest.fixture
def ws(database_url: str) -> Iterator[Workspace]:
    upgrade(database_url)
    w = make_workspace(database_url)
    add_users(w.sessions)
    seed(w)
    try:
        yield w
    finally:
        for c in w.clients:
            c.close()
        w.sessions.kw["bind"].dispose()


def _post(c, url: str, page: str, **data: object):  # type: ignore[no-untyped-def]
    return c.post(url, data={"csrf_token": csrf_in(c.get(page).text), **data}, follow_redirects=False)


def test_alert_work_reopen_and_counts(ws: Workspace) -> None:
    """Acknowledge, close, reopen by a hub update: one alert, counts right, on this database."""
    c = ws.client("coordinator")
    assert _post(c, "/alerts/a-wb-8050/acknowledge", "/alerts").status_code == 303
    assert _post(c, "/alerts/a-wb-8050/close", "/alerts", reason="agency_handles").status_code == 303
    with ws.sessions.begin() as s:
        a = s.get(AlertState, "a-wb-8050")
        assert a is not None
        a.updated_at = a.updated_at + timedelta(days=2)
    page = c.get("/alerts").text
    assert re.search(r"新規: <strong>1</strong>", page) and re.search(r"終了: <strong>0</strong>", page)
    assert "再開" in page
    with ws.sessions() as s:
        work = s.get(AlertWork, "a-wb-8050")
        assert work is not None and work.state == "closed"  # stored state; shown as reopened
        hub_row = s.get(AlertState, "a-wb-8050")
        assert hub_row is not None and (hub_row.status, hub_row.acknowledged_by) == ("acknowledged", "coordinator")


def test_support_meeting_and_consent_route_on_this_database(ws: Workspace) -> None:
    """No consent: masked; 支援会議 designated: minimal form, no names or text; consent for the son: his record in
    full; withdrawal: hidden again. Every household view is on the audit chain."""
    c = ws.client("coordinator")
    page = c.get(f"/households/{H}").text
    assert "支援会議候補" in page and "カナリア" not in page
    r = _post(c, "/meetings", "/alerts", alert_id="a-wb-8050", kind="support_meeting")
    url = r.headers["location"].split("?")[0]
    ws.clock.now = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    c = ws.client("coordinator")
    r = _post(c, f"{url}/decision", url, held_on="2026-11-02", decision="designate",
              members_present=["elderly", "livelihood"])
    assert r.status_code == 303
    page = c.get(f"/households/{H}").text
    assert "支援会議による最小限の情報" in page and "カナリア" not in page and "mental" not in page
    agency = ws.client("houkatsu").get(f"/households/{H}").text
    assert M_REC in agency and S_REC not in agency and "カナリア" not in agency

    with ws.sessions.begin() as s:
        repo = ConsentRepository(s)
        grant = ConsentVersion(consent_id="c-wb", version=datetime(2026, 5, 1, tzinfo=UTC), status="active",
                               decision="permit", fields=(Field.LIVELIHOOD,), recipient="重層的支援会議",
                               purpose="multi-agency-support", period_start=date(2026, 5, 1), period_end=None,
                               grantor="self", origin="tsunagu", subject_resident_no="9000000012")
        repo.add_version(grant)
    page = c.get(f"/households/{H}").text
    assert NAMES[SON] in page and SUMMARY in page and NAMES[MOTHER] not in page
    with ws.sessions.begin() as s:
        ConsentRepository(s).add_version(ConsentVersion(
            consent_id="c-wb", version=datetime(2026, 11, 3, tzinfo=UTC), status="inactive", decision="permit",
            fields=(Field.LIVELIHOOD,), recipient="重層的支援会議", purpose="multi-agency-support",
            period_start=date(2026, 5, 1), period_end=None, grantor="self", origin="tsunagu",
            subject_resident_no="9000000012"))
    ws.clock.now = datetime(2026, 11, 4, 1, 0, tzinfo=UTC)
    page = ws.client("coordinator").get(f"/households/{H}").text
    assert NAMES[SON] not in page and SUMMARY not in page and "支援会議による最小限の情報" in page
    with ws.sessions() as s:
        meeting = s.scalars(select(Meeting)).one()
        assert meeting.designation_id and meeting.members_present == ["elderly", "livelihood"]
        views = [(e.user, e.action) for e in iter_audit(s) if e.action in ("household.view",)]
    assert views == [("coordinator", "household.view")] * 2 + [("houkatsu", "household.view")] + [
        ("coordinator", "household.view")] * 2


def test_a_designation_ends_with_the_case_in_the_registry(ws: Workspace) -> None:
    """With one member field's case still open nothing ends; once both are closed the designation gets its end
    (the day before the last closing, never before its start), audited; a second round changes nothing."""
    from consent.model import Designation
    from hub.workspace.meetings import end_with_cases

    now = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    with ws.sessions.begin() as s:
        ConsentRepository(s).add_designation(Designation("d-wb", H, (Field.ELDERLY, Field.LIVELIHOOD),
                                                         date(2026, 10, 1)))
        mother = s.get(CaseState, M_REC)
        assert mother is not None
        mother.closed_on = date(2026, 11, 5)
    with ws.sessions.begin() as s:
        assert end_with_cases(s, now) == []
        son = s.get(CaseState, S_REC)
        assert son is not None
        son.closed_on = date(2026, 11, 15)
    with ws.sessions.begin() as s:
        assert end_with_cases(s, now) == ["d-wb"]
    with ws.sessions.begin() as s:
        assert end_with_cases(s, now) == []
        assert [d.end for d in ConsentRepository(s).designations_for(H)] == [date(2026, 11, 14)]
        assert [(e.user, e.action) for e in iter_audit(s) if e.action == "designation.end_with_case"] == [
            ("system:case-closed", "designation.end_with_case")]
