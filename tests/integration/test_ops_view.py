"""The operations view (``hub.http.ops``): every flow's counts, and no personal data anywhere in /ops or /ops.json."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from browser_support import chromium, serving
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from connectors.runner import CheckpointRow, ConnectorState, OutboxRow
from hub.bootstrap import Database
from hub.http.ops import make_ops_router
from hub.identity.tables import IdentityReview
from hub.ops.deadletters import DeadLetterRow, record_messages
from hub.pipeline.stages import HubCore, RawMessage
from hub.pipeline.tables import AlertState
from hub.topics import Topics
from hub.workspace.web import STATIC_DIR
from schemas.codes import CaseStatus, Feed, Field, Relation, Topic
from schemas.deadletter import REASON_CODES
from schemas.envelope import CloudEvent, stable_event_id
from schemas.events import CaseV1, PersonRecord, ResidentObservedV1, Sensitive
from schemas.wareki import JST

RESIDENT_NO, HOUSEHOLD_NO = "1055400001", "0000000001"
NAME, KANA = "髙橋　義雄", "タカハシ　ヨシオ"
BIRTH = date(1950, 2, 3)
ADDRESS = "中央一丁目2番3号"
SUMMARY = "夜間に大声。家族が疲弊している。"
CASE_RECORD = "houkatsu:C01-2026-0042"
#: every form of the person's data that must never reach the operations view
PERSONAL = (NAME, KANA, "髙橋", "義雄", "タカハシ", ADDRESS, "中央一丁目", SUMMARY, "夜間に大声",
            BIRTH.isoformat(), "1950/02/03", "1950年2月3日", "19500203")



def at(day: int, month: int = 5) -> datetime:
    return datetime(2026, month, day, 10, 0, tzinfo=JST)


def resident() -> CloudEvent:
    data = ResidentObservedV1(
        resident=PersonRecord(record=f"registry:{RESIDENT_NO}", name=NAME, kana=KANA, birth_date=BIRTH,
                              resident_no=RESIDENT_NO, household_no=HOUSEHOLD_NO, relation=Relation.HEAD,
                              address=ADDRESS),
        snapshot="jumin.csv:test",
    )
    return CloudEvent(id=stable_event_id("registry", RESIDENT_NO), source="urn:tsunagu:connector:registry",
                      type="jp.tsunagu.resident.observed.v1", time=at(1, 4), sourcerecord=f"registry:{RESIDENT_NO}",
                      data=data.model_dump(mode="json"))


def case_event() -> CloudEvent:
    case = CaseV1(
        feed=Feed.HOUKATSU, case=CASE_RECORD, agency="C01", opened_on=date(2026, 5, 1),
        status=CaseStatus.IN_PROGRESS, topics=[Topic.DEMENTIA],
        subject=PersonRecord(record=CASE_RECORD, name=NAME, kana=KANA, birth_date=BIRTH, resident_no=RESIDENT_NO,
                             address=ADDRESS),
        sensitive=Sensitive(summary=SUMMARY), revision=at(10).isoformat(),
    )
    return CloudEvent(id=stable_event_id("houkatsu", CASE_RECORD, 1), source="urn:tsunagu:connector:houkatsu:C01",
                      type="jp.tsunagu.case.opened.v1", time=at(10), sourcerecord=CASE_RECORD, field=Field.ELDERLY,
                      data=case.model_dump(mode="json"))


def invalid_case_event() -> CloudEvent:
    """A houkatsu case event whose data does not validate, though it carries the person's name and summary."""
    record = "houkatsu:C01-2026-0099"
    return CloudEvent(id=stable_event_id("houkatsu", record, 1), source="urn:tsunagu:connector:houkatsu:C01",
                      type="jp.tsunagu.case.opened.v1", time=at(11), sourcerecord=record, field=Field.ELDERLY,
                      data={"feed": "houkatsu", "case": record, "subject": {"name": NAME, "birth_date": "not a date"},
                            "sensitive": {"summary": SUMMARY}})


@dataclass
class Filled:
    sessions: sessionmaker[Session]
    cstate: ConnectorState
    topics: Topics
    database: Database


def fill(url: str, state_dir: Path) -> Filled:
    """HubCore fed by hand (no broker): a resident, a case event, an invalid event and a non-JSON message;
    an open alert, a pending identity review, and one connector's outbox and checkpoint."""
    database = Database.open(url)
    topics = Topics("ops")
    sessions = database.sessions
    core = HubCore(sessions, topics, today=lambda: date(2026, 6, 1))
    offset = 0

    def send(*values: tuple[bytes | None, bytes]) -> None:
        nonlocal offset
        msgs = []
        for key, value in values:
            offset += 1
            msgs.append(RawMessage(topics.intake, 0, offset, key, value))
        core.process_intake(msgs)
        while rows := core.outbox_batch(1000):  # relay: resolved → household stage, the rest is "published"
            resolved = [RawMessage(r.topic, 0, r.seq, r.key, r.value) for r in rows if r.topic == topics.resolved]
            if resolved:
                core.process_household(resolved)
            # the hub's dead-letter consumer files the dead-letter topic into the store
            record_messages(sessions, [(r.value, r.topic, 0, r.seq) for r in rows if r.topic == topics.deadletter])
            core.outbox_done([r.seq for r in rows])

    ev = resident()
    send((ev.sourcerecord.encode(), ev.to_json_bytes()))
    case, bad = case_event(), invalid_case_event()
    send((case.sourcerecord.encode(), case.to_json_bytes()), (bad.sourcerecord.encode(), bad.to_json_bytes()),
         (b"houkatsu:C01-2026-0100", f"{NAME} {SUMMARY} not json".encode()))

    now = datetime.now(UTC)
    with sessions.begin() as s:
        s.add(AlertState(alert_id="alert-ops-1", household_id="hh-ops-1", kind="8050", fields=["elderly"],
                         records=[CASE_RECORD], status="open", raised_at=now, updated_at=now))
        s.add(AlertState(alert_id="alert-ops-2", household_id="hh-ops-2", kind="double_care", fields=["elderly"],
                         records=[], status="closed", raised_at=now, updated_at=now))
        s.add(IdentityReview(record="shogai:11", candidate_person="p-ops-1", score=0.8,
                             evidence={"name": "similar", "birth_date": "equal"}, status="pending", created_at=now))
    cstate = ConnectorState.in_dir(state_dir)
    with cstate.sessions.begin() as s:
        s.add(OutboxRow(connector="shogai", topic=topics.intake, key="shogai:11", kind="event", scope="cases",
                        position="7", value=json.dumps({"name": NAME, "summary": SUMMARY}, ensure_ascii=False).encode(),
                        created_at=now))
        s.add(CheckpointRow(connector="houkatsu", scope="C01_20260501.csv", read_position="3", position="3",
                            updated_at=now))
    return Filled(sessions, cstate, topics, database)


def app_for(filled: Filled) -> FastAPI:
    app = FastAPI()
    app.include_router(make_ops_router(filled.sessions, filled.cstate, filled.topics))
    return app


def dispose(filled: Filled) -> None:
    filled.database.close()
    filled.cstate.dispose()


def assert_no_personal_data(body: str) -> None:
    leaked = [p for p in PERSONAL if p in body]
    assert not leaked, f"personal data in the operations view: {leaked}"


def test_ops_shows_counts_and_no_personal_data(database_url: str, tmp_path: Path) -> None:
    filled = fill(database_url, tmp_path / "state")
    try:
        with TestClient(app_for(filled)) as client:
            page = client.get("/ops")
            data = client.get("/ops.json")
            detail = client.get("/ops/checkpoints.json", params={"feed": "houkatsu"}).json()
            sheets = re.findall(r'<link rel="stylesheet" href="([^"]+)"', page.text)
            styles = [client.get(href) for href in sheets]
    finally:
        dispose(filled)

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert sheets == ["/static/workspace.css"]  # the page's own app serves the stylesheet it links
    assert [(r.status_code, r.headers["content-type"].split(";")[0]) for r in styles] == [(200, "text/css")]
    assert styles[0].content == (STATIC_DIR / "workspace.css").read_bytes()
    assert data.status_code == 200
    ops = data.json()
    for body in (page.text, data.text, json.dumps(ops, ensure_ascii=False)):
        assert_no_personal_data(body)

    feeds = {f["feed"]: f for f in ops["feeds"]}
    assert list(feeds)[:6] == [f.value for f in Feed]
    assert feeds["registry"]["processed_total"] >= 1
    houkatsu = feeds["houkatsu"]
    assert houkatsu["processed"]["intake"]["dead"] == 1  # the invalid case event
    assert houkatsu["processed"]["intake"]["forwarded"] == 1  # the valid one
    assert houkatsu["hub_dead_letters"] == 1
    assert houkatsu["dead_letters"] == 1
    assert houkatsu["last_checkpoint_at"].endswith("+09:00")  # JST
    assert ops["generated_at"].endswith("+09:00")
    assert houkatsu["checkpoint_scopes"] == 1 and "checkpoints" not in houkatsu  # summarized; detail on demand
    assert [c["scope"] for c in detail["checkpoints"]] == ["C01_20260501.csv"]
    assert feeds["other"]["hub_dead_letters"] == 1  # the message that was not JSON belongs to no feed
    assert feeds["other"]["dead_letters"] == 1
    assert feeds["shogai"]["outbox_pending"] == {"event": 1}
    assert ops["connector_outbox_pending"] == 1
    assert ops["dead_letters_total"] == 2
    assert ops["open_alerts"] == {"8050": 1} and ops["open_alert_labels"] == {"8050": "8050"}
    assert sum(d["count"] for d in ops["dead_letters_by_reason"]) == 2
    assert {(d["stage"], d["feed"]) for d in ops["dead_letters_by_reason"]} == {("hub", "houkatsu"), ("hub", "hub")}
    assert ops["identity_reviews_pending"] == 1
    assert ops["hub_outbox_pending"] == 0
    assert ops["topics"]["deadletter"] == "ops.deadletter.v1"

    recent = {d["feed"]: d for d in ops["recent_dead_letters"]}
    assert len(recent) == 2
    not_json = "CloudEvent envelope failed validation (:json_invalid)"
    assert recent["hub"]["detail"] == not_json and recent["hub"]["stage"] == "hub"
    assert recent["houkatsu"]["detail"].startswith("jp.tsunagu.case.opened.v1 failed validation (")
    assert recent["houkatsu"]["reason"] in REASON_CODES and recent["houkatsu"]["reason_label"]
    assert set(recent["hub"]) == {"id", "at", "stage", "feed", "where", "reason", "reason_label", "detail"}
    for body in (page.text, data.text):  # record keys are never shown
        assert "houkatsu:C01-2026-0099" not in body and CASE_RECORD not in body

    html = page.text
    assert '<meta http-equiv="refresh" content="10">' in html
    assert "運用状況" in html and "Operations view" in html
    assert 'id="feed-houkatsu"' in html and not_json in html and "(JST)" in html


def test_ops_escapes_what_it_shows(tmp_path: Path) -> None:
    """Autoescape: a dead letter's origin or reason with markup is shown as text, never as HTML."""
    filled = fill(f"sqlite:///{tmp_path / 'hub.sqlite'}", tmp_path / "state")
    try:
        now = datetime.now(UTC)
        with filled.sessions.begin() as s:
            s.add(DeadLetterRow(id="x1", stage="connector", feed="jiritsu", reason="parse",
                                detail="<b>bad</b>", where="<script>alert(1)</script>", state="open",
                                occurrences=1, first_at=now, last_at=now))
        with TestClient(app_for(filled)) as client:
            html = client.get("/ops").text
    finally:
        dispose(filled)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# -- in a real browser -------------------------------------------------------------------------------


@pytest.fixture
def ops_server(tmp_path: Path) -> Iterator[str]:
    filled = fill(f"sqlite:///{tmp_path / 'hub.sqlite'}", tmp_path / "state")
    try:
        with serving(app_for(filled), "ops-uvicorn") as base:
            yield base
    finally:
        dispose(filled)



def test_ops_page_in_chromium(ops_server: str, tmp_path: Path) -> None:
    shot = tmp_path / "ops.png"
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        response = page.goto(f"{ops_server}/ops", wait_until="load", timeout=30_000)
        assert response is not None and response.ok
        heading = page.locator("h1")
        heading.wait_for(state="visible", timeout=10_000)
        assert "運用状況" in heading.inner_text()
        row = page.locator("#feed-houkatsu")
        assert row.is_visible()
        assert "houkatsu" in row.inner_text()
        assert page.locator("#dead-letters").is_visible()
        assert_no_personal_data(page.content())
        page.screenshot(path=str(shot), full_page=True)
    assert shot.exists() and shot.stat().st_size > 10_000
