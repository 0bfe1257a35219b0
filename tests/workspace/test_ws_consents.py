"""The consent officers' screens (/consents) over the real ConsentService, and the JSON API mounted under /api/."""

from __future__ import annotations

import json
import re

from sqlalchemy import select
from workspace.support import Workspace, csrf_in

from consent.audit import verify
from consent.store import ConsentVersionRow, audit_head, iter_audit
from hub.pipeline.tables import HubOutbox

RESIDENT = "1055433006"  # 加藤 正 in hub/samples/registry/jumin.csv (an adult)


def _record(c, **form):  # type: ignore[no-untyped-def]
    page = c.get(f"/consents?resident_no={RESIDENT}")
    data = {"csrf_token": csrf_in(page.text), "resident_no": RESIDENT, "grantor": "self",
            "period_start": "2026-12-01", **form}
    return c.post("/consents", data=data, follow_redirects=False)


def test_officer_records_sees_and_withdraws_a_consent(seeded_workspace: Workspace) -> None:
    """A consent recorded on the form is listed as active, queued for the hub, audited with the user; withdrawal too."""
    ws = seeded_workspace
    c = ws.client("consent_officer")
    with ws.sessions() as s:
        before = set(s.scalars(select(ConsentVersionRow.consent_id)))
    r = _record(c, fields=["elderly", "livelihood"])
    assert r.status_code == 303 and "flash=recorded" in r.headers["location"]
    with ws.sessions() as s:
        new = set(s.scalars(select(ConsentVersionRow.consent_id))) - before
        assert len(new) == 1
        consent_id = new.pop()
        outbox = s.scalars(select(HubOutbox).where(HubOutbox.topic == ws.ctx.topics.intake)).all()  # type: ignore[union-attr]
    event = json.loads(outbox[-1].value)
    assert event["type"] == "jp.tsunagu.consent.recorded.v1" and event["data"]["consent_id"] == consent_id
    page = c.get(r.headers["location"])
    assert "記録しました" in page.text and consent_id in page.text
    row = re.search(rf"<tr>\s*<td>{re.escape(consent_id)}</td>(.*?)</tr>", page.text, re.S)
    assert row and "有効" in row.group(1) and "高齢（地域包括）" in row.group(1) and "生活困窮" in row.group(1)
    assert "加藤" not in page.text  # ids, codes and dates only
    r = c.post(f"/consents/{consent_id}/withdraw", data={"csrf_token": csrf_in(page.text), "resident_no": RESIDENT},
               follow_redirects=False)
    assert r.status_code == 303 and "flash=withdrawn" in r.headers["location"]
    page = c.get(r.headers["location"])
    row = re.search(rf"<tr>\s*<td>{re.escape(consent_id)}</td>(.*?)</tr>", page.text, re.S)
    assert row and "撤回済み" in row.group(1) and "撤回</button>" not in row.group(1)
    r = c.post(f"/consents/{consent_id}/withdraw", data={"csrf_token": csrf_in(page.text)}, follow_redirects=False)
    assert r.status_code == 409 and "すでに撤回" in r.text
    with ws.sessions() as s:
        entries = list(iter_audit(s))
        head = audit_head(s)
    mine = [(e.user, e.action, e.sourcerecord) for e in entries if e.user]
    assert ("consent_officer", "consent.record", consent_id) in mine
    assert ("consent_officer", "consent.withdraw", consent_id) in mine
    assert ("consent_officer", "consent.view", f"registry:{RESIDENT}") in mine
    assert verify([e.to_json() for e in entries], expected_head=head).ok  # the pipeline's entries and ours


def test_bad_input_is_a_clear_error_and_records_nothing(seeded_workspace: Workspace) -> None:
    """No field, a bad resident number or a period ending before it starts: 400 with a message; nothing stored."""
    ws = seeded_workspace
    c = ws.client("consent_officer")
    with ws.sessions() as s:
        before = s.scalars(select(ConsentVersionRow.id)).all()
    for form in ({}, {"fields": ["elderly"], "resident_no": "12"},
                 {"fields": ["elderly"], "period_end": "2026-11-01"}, {"fields": ["elderly"], "grantor": "山田"}):
        r = _record(c, **form)
        assert r.status_code == 400, form
        assert 'class="error"' in r.text
    with ws.sessions() as s:
        assert s.scalars(select(ConsentVersionRow.id)).all() == before


def test_coordinator_may_look_but_not_record(seeded_workspace: Workspace) -> None:
    """A coordinator sees a resident's consents without the record/withdraw forms, and a forged POST gets 403."""
    ws = seeded_workspace
    c = ws.client("coordinator")
    page = c.get(f"/consents?resident_no={RESIDENT}")
    assert page.status_code == 200 and 'action="/consents"' not in page.text.replace('method="get" action="/consents"',
                                                                                   "")
    r = c.post("/consents", data={"csrf_token": csrf_in(page.text), "resident_no": RESIDENT, "fields": "elderly",
                                  "grantor": "self", "period_start": "2026-12-01"}, follow_redirects=False)
    assert r.status_code == 403


def test_lookup_by_person_and_record_finds_the_same_consents(seeded_workspace: Workspace) -> None:
    """The household page's link (?person=) and a record key find the consents filed under the resident number."""
    from hub.identity.tables import Person

    ws = seeded_workspace
    c = ws.client("consent_officer")
    assert _record(c, fields=["child"]).status_code == 303
    with ws.sessions() as s:
        person = s.scalars(select(Person.id).where(Person.resident_no == RESIDENT)).first()
    assert person
    by_no = re.findall(r"<td>(tsunagu-[0-9a-f]+)</td>", c.get(f"/consents?resident_no={RESIDENT}").text)
    by_person = re.findall(r"<td>(tsunagu-[0-9a-f]+)</td>", c.get(f"/consents?person={person}").text)
    by_record = re.findall(r"<td>(tsunagu-[0-9a-f]+)</td>", c.get(f"/consents?record=registry:{RESIDENT}").text)
    assert by_no and by_no == by_person == by_record


def test_json_api_is_mounted_under_api_with_bearer_tokens(seeded_db: str) -> None:
    """/api/persons/{resident_no}/consents answers with a configured token, 401 without; a session is not enough."""
    from workspace.support import add_users, make_workspace

    from hub.settings import Settings

    ws = make_workspace(seeded_db, Settings(topic_prefix="wstest", api_tokens={"tok-officer": "consent_officer"}))
    add_users(ws.sessions)
    anon = ws.client()
    assert anon.get(f"/api/persons/{RESIDENT}/consents").status_code == 401
    officer = ws.client("consent_officer")
    assert officer.get(f"/api/persons/{RESIDENT}/consents").status_code == 401
    r = anon.get(f"/api/persons/{RESIDENT}/consents", headers={"Authorization": "Bearer tok-officer"})
    assert r.status_code == 200 and isinstance(r.json(), list)
