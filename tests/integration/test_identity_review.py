"""Reviewer decisions re-attribute cases, events and alerts, survive restarts, and the CLI masks names."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from hub.bootstrap import Database
from hub.cli.identity import identity_app
from hub.identity.resolver import IdentityService
from hub.identity.review import ReviewError, list_reviews
from hub.identity.tables import IdentityDecision, IdentityReview, Person, PersonRecordRow, household_id_for_no
from hub.migrate import upgrade
from hub.pipeline.reattribute import decide
from hub.pipeline.stages import HubCore, RawMessage
from hub.pipeline.tables import AlertState, CaseEvent, CaseState, HubOutbox
from hub.topics import Topics
from schemas.codes import CaseStatus, Feed, Field, Relation, Sex
from schemas.envelope import CloudEvent, stable_event_id
from schemas.events import CaseV1, PersonRecord, ResidentObservedV1

TODAY = date(2025, 6, 1)
PREFIX = "trev"
HOUSEHOLD_NO = "5000000101"
HISAKO_NO, YUKO_NO = "1000000101", "1000000102"
YUKO_BIRTH = date(1983, 5, 7)
SLIP = "jiritsu:J-0001"  # 伊藤 裕子 for 伊藤 祐子: same reading and birth date, nothing else
ELDER = "houkatsu:C01-2025-0001"


@dataclass
class Hub:
    url: str
    core: HubCore
    topics: Topics
    database: Database
    offset: int = 0

    def send(self, *events: CloudEvent) -> None:
        """Intake, then relay the resolved events to the household stage (as the service does)."""
        for ev in events:
            self.offset += 1
            self.core.process_intake([RawMessage(self.topics.intake, 0, self.offset, None, ev.to_json_bytes())])
            rows = self.core.outbox_batch(1000)
            resolved = [RawMessage(r.topic, 0, r.seq, r.key, r.value) for r in rows if r.topic == self.topics.resolved]
            self.core.outbox_done([r.seq for r in rows if r.topic == self.topics.resolved])
            self.core.process_household(resolved)

    def close(self) -> None:
        self.database.close()


def open_hub(url: str) -> Hub:
    """A hub core on its own engine: a second call is a restart (new engine, new sessions)."""
    topics = Topics(PREFIX)
    database = Database.open(url, migrate=False)
    return Hub(url, HubCore(database.sessions, topics, today=lambda: TODAY), topics, database)


@pytest.fixture
def hub(database_url: str) -> Iterator[Hub]:
    upgrade(database_url)
    h = open_hub(database_url)
    yield h
    h.close()


def resident(no: str, name: str, kana: str, birth: date, relation: Relation) -> CloudEvent:
    rec = PersonRecord(record=f"registry:{no}", name=name, kana=kana, birth_date=birth, sex=Sex.FEMALE,
                       address="さくら県みなと市中央1丁目2番3号", resident_no=no, household_no=HOUSEHOLD_NO,
                       relation=relation)
    data = ResidentObservedV1(resident=rec, moved_on=date(2024, 4, 1), snapshot="t").model_dump(mode="json")
    return CloudEvent(id=stable_event_id("registry", no), source="urn:tsunagu:connector:registry:t",
                      type="jp.tsunagu.resident.observed.v1", time=datetime(2025, 4, 1, tzinfo=UTC),
                      sourcerecord=rec.record, data=data)


def case(feed: Feed, field: Field, subject: PersonRecord, revision: str = "2025-04-01T10:00:00+09:00") -> CloudEvent:
    c = CaseV1(feed=feed, case=f"{subject.record}:case", opened_on=date(2025, 4, 1), status=CaseStatus.IN_PROGRESS,
               subject=subject, revision=revision)
    data = c.model_dump(mode="json")
    return CloudEvent(id=stable_event_id(feed, subject.record, revision), source=f"urn:tsunagu:connector:{feed}:t",
                      type="jp.tsunagu.case.opened.v1", time=datetime.fromisoformat(revision),
                      sourcerecord=subject.record, field=field, data=data)


def hisako() -> list[CloudEvent]:
    return [resident(HISAKO_NO, "伊藤　久子", "イトウ　ヒサコ", date(1945, 2, 11), Relation.HEAD)]


def yuko() -> CloudEvent:
    return resident(YUKO_NO, "伊藤　祐子", "イトウ　ユウコ", YUKO_BIRTH, Relation.CHILD)


def elder_case() -> CloudEvent:
    return case(Feed.HOUKATSU, Field.ELDERLY, PersonRecord(record=ELDER, name="伊藤久子", kana="ｲﾄｳ ﾋｻｺ",
                                                            birth_date=date(1945, 2, 11), resident_no=HISAKO_NO))


def slip_case(revision: str = "2025-04-01T10:00:00+09:00", resident_no: str | None = None) -> CloudEvent:
    subject = PersonRecord(record=SLIP, name="伊藤 裕子", kana="ｲﾄｳﾕｳｺ", birth_date=YUKO_BIRTH, resident_no=resident_no)
    return case(Feed.JIRITSU, Field.LIVELIHOOD, subject, revision)


def person_of_resident(h: Hub, no: str) -> str:
    with h.core.sessions() as s:
        pid = s.scalar(select(Person.id).where(Person.resident_no == no))
        assert pid is not None
        return pid


def pending(h: Hub, record: str) -> list[IdentityReview]:
    with h.core.sessions() as s:
        return list(s.scalars(select(IdentityReview).where(IdentityReview.record == record,
                                                           IdentityReview.status == "pending")))


def attribution(h: Hub, record: str) -> tuple[set[tuple[str | None, str | None]], set[tuple[str | None, str | None]]]:
    """(person, household) of the record's cases, and of its kept events (columns and payload agree)."""
    with h.core.sessions() as s:
        cases = {(c.person_id, c.household_id) for c in s.scalars(select(CaseState).where(CaseState.record == record))}
        events = set()
        for e in s.scalars(select(CaseEvent).where(CaseEvent.record == record)):
            ev = CloudEvent.from_json_bytes(e.payload)
            assert (ev.person, ev.household) == (e.person_id, e.household_id)
            events.add((e.person_id, e.household_id))
        return cases, events


def decide_now(h: Hub, review_id: int, decision: str, user: str = "clerk-1"):  # type: ignore[no-untyped-def]
    with h.core.sessions.begin() as s:
        return decide(s, review_id, decision, user, prefix=PREFIX, today=TODAY)  # type: ignore[arg-type]


def the_review(h: Hub, record: str, candidate: str) -> IdentityReview:
    found = [r for r in pending(h, record) if r.candidate_person == candidate]
    assert len(found) == 1, pending(h, record)
    return found[0]


# --------------------------------------------------------------------------- decisions
def test_link_moves_the_case_to_the_registry_person_and_raises_the_household_alerts(hub: Hub) -> None:
    """A homophone slip waits in review on its own person; `link` moves its case, events and alerts."""
    hub.send(*hisako(), yuko(), elder_case(), slip_case())
    yuko_pid = person_of_resident(hub, YUKO_NO)
    household = household_id_for_no(HOUSEHOLD_NO)
    review = the_review(hub, SLIP, yuko_pid)
    assert review.evidence["kana"] == "agree" and review.evidence["name"] == "differ"
    cases, _ = attribution(hub, SLIP)
    assert len(cases) == 1 and next(iter(cases))[0] != yuko_pid and next(iter(cases))[1] != household
    with hub.core.sessions() as s:
        assert not s.scalars(select(AlertState).where(AlertState.household_id == household)).all()

    result = decide_now(hub, review.id, "link")

    assert attribution(hub, SLIP) == ({(yuko_pid, household)}, {(yuko_pid, household)})
    assert (result.cases, result.events, result.records) == (1, 1, (SLIP,))
    assert household in result.households and result.alert_events >= 2
    with hub.core.sessions() as s:
        kinds = set(s.scalars(select(AlertState.kind).where(AlertState.household_id == household)))
        assert {"multi_field", "8050"} <= kinds
        alerts = [json.loads(r.value) for r in s.scalars(select(HubOutbox).where(HubOutbox.topic == hub.topics.alerts))]
        assert {a["household"] for a in alerts} == {household}
        assert {a["data"]["kind"] for a in alerts} >= {"multi_field", "8050"}
        audit = s.scalars(select(IdentityDecision).where(IdentityDecision.review_id == review.id)).one()
        assert (audit.decision, audit.decided_by, audit.record) == ("link", "clerk-1", SLIP)
        assert audit.decided_at is not None and result.decided_by == "clerk-1"
        stored = s.get(IdentityReview, review.id)
        assert stored is not None and (stored.status, stored.decided_by) == ("linked", "clerk-1")
    # idempotent: deciding again is refused, nothing moves twice
    with pytest.raises(ReviewError):
        decide_now(hub, review.id, "link")


def test_keep_apart_is_never_proposed_or_linked_again_after_a_restart(hub: Hub) -> None:
    """After `keep_apart` and a restart, even a consistent resident number does not bring the pair back."""
    hub.send(*hisako(), yuko(), elder_case(), slip_case())
    yuko_pid = person_of_resident(hub, YUKO_NO)
    review = the_review(hub, SLIP, yuko_pid)
    result = decide_now(hub, review.id, "keep_apart", user="  clerk-2 ")
    assert (result.cases, result.events, result.decided_by) == (0, 0, "clerk-2")
    hub.close()

    again = open_hub(hub.url)  # a restart: new engine, new sessions, same database
    try:
        again.send(slip_case("2025-05-01T10:00:00+09:00", resident_no=YUKO_NO),
                   slip_case("2025-05-02T10:00:00+09:00"))
        assert pending(again, SLIP) == []
        cases, events = attribution(again, SLIP)
        assert all(pid != yuko_pid for pid, _ in cases | events)
        with again.core.sessions() as s:
            row = s.get(PersonRecordRow, SLIP)
            assert row is not None and row.person_id != yuko_pid
            audit = s.scalars(select(IdentityDecision).where(IdentityDecision.decision == "keep_apart")).one()
            assert (audit.record, audit.person_id, audit.decided_by) == (SLIP, yuko_pid, "clerk-2")
            assert not [v for v in list_reviews(s) if v.record == SLIP]
            # a fresh resolution of the same record is kept apart too
            assert IdentityService(s).resolve(
                PersonRecord(record=SLIP, name="伊藤祐子", kana="イトウユウコ", birth_date=YUKO_BIRTH), feed="jiritsu"
            ).person_id != yuko_pid
    finally:
        again.close()


def test_keep_apart_detaches_a_record_linked_meanwhile(hub: Hub) -> None:
    """A record re-attached by a resident number while its review waited leaves the person on keep_apart."""
    hub.send(*hisako(), yuko(), elder_case(), slip_case())
    yuko_pid = person_of_resident(hub, YUKO_NO)
    household = household_id_for_no(HOUSEHOLD_NO)
    review = the_review(hub, SLIP, yuko_pid)
    hub.send(slip_case("2025-05-01T10:00:00+09:00", resident_no=YUKO_NO))
    assert attribution(hub, SLIP)[0] == {(yuko_pid, household)}

    result = decide_now(hub, review.id, "keep_apart")

    cases, events = attribution(hub, SLIP)
    assert len(cases) == 1 and all(pid != yuko_pid and hid != household for pid, hid in cases | events)
    assert result.person_id not in (None, yuko_pid) and (result.cases, result.events) == (1, 1)
    assert household in result.households


def test_linking_a_late_registry_record_brings_the_person_into_the_registry_household(hub: Hub) -> None:
    """The slip came first; the registry row that arrives later goes to review; `link` moves them home."""
    hub.send(*hisako(), elder_case(), slip_case(), yuko())
    with hub.core.sessions() as s:
        slip_pid = s.get(PersonRecordRow, SLIP).person_id  # type: ignore[union-attr]
    review = the_review(hub, f"registry:{YUKO_NO}", slip_pid)
    household = household_id_for_no(HOUSEHOLD_NO)

    result = decide_now(hub, review.id, "link")

    assert attribution(hub, SLIP) == ({(slip_pid, household)}, {(slip_pid, household)})
    with hub.core.sessions() as s:
        p = s.get(Person, slip_pid)
        assert p is not None and (p.resident_no, p.household_id) == (YUKO_NO, household)
        assert {"multi_field", "8050"} <= set(s.scalars(select(AlertState.kind)
                                                         .where(AlertState.household_id == household)))
    assert result.alert_events >= 2


def test_a_decision_needs_a_user(hub: Hub) -> None:
    """Who decided is part of the audit: a blank user is refused and nothing changes."""
    hub.send(*hisako(), yuko(), slip_case())
    review = pending(hub, SLIP)[0]
    with pytest.raises(ReviewError):
        decide_now(hub, review.id, "link", user="  ")
    assert [r.id for r in pending(hub, SLIP)] == [review.id]


# --------------------------------------------------------------------------- the command line
FULL_NAMES = ("伊藤祐子", "伊藤　祐子", "伊藤 祐子", "伊藤裕子", "伊藤 裕子", "伊藤久子", "祐子", "裕子", "久子",
              "ユウコ", "ﾕｳｺ", "イトウ", "ｲﾄｳ")
FULL_DATES = ("1983-05-07", "1983/05/07", "19830507", "1983/5/7", "1983年5月7日", "S58", "昭和58", "05-07", "5月7日",
              "1945-02-11", "19450211")


def assert_masked(output: str) -> None:
    for text in (*FULL_NAMES, *FULL_DATES):
        assert text not in output, text


def test_cli_review_and_decide_print_no_full_name_or_birth_date(hub: Hub, monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    """`identity review` shows keys, feeds, evidence, a masked name and the birth year; `decide` records it."""
    monkeypatch.delenv("TSUNAGU_DATABASE_URL", raising=False)
    hub.send(*hisako(), yuko(), elder_case(), slip_case())
    runner = CliRunner()
    where = ["--state", str(tmp_path)] if hub.url.startswith("sqlite") else ["--database", hub.url]

    text = runner.invoke(identity_app, ["review", *where])
    assert text.exit_code == 0, text.output
    assert_masked(text.output)
    assert SLIP in text.output and f"registry:{YUKO_NO}" in text.output and "jiritsu" in text.output
    assert "伊○ ○○" in text.output and "born 1983" in text.output and "kana=agree" in text.output

    as_json = runner.invoke(identity_app, ["review", "--database", hub.url, "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert_masked(as_json.output)
    item = next(i for i in json.loads(as_json.output)["pending"] if i["record"]["key"] == SLIP)
    assert item["record"] == {**item["record"], "feed": "jiritsu", "name": "伊○ ○○", "birth_year": 1983}
    assert item["candidate"]["key"] == f"registry:{YUKO_NO}" and item["candidate"]["feed"] == "registry"
    assert item["evidence"]["birth"] == {"value": "agree", "points": 3.0}

    both = runner.invoke(identity_app, ["review", "--state", str(tmp_path), "--database", hub.url])
    assert both.exit_code == 2
    no_user = runner.invoke(identity_app, ["decide", str(item["id"]), "link", "--user", " ", "--database", hub.url])
    assert no_user.exit_code == 2 and pending(hub, SLIP)

    done = runner.invoke(identity_app, ["decide", str(item["id"]), "link", "--user", "clerk-9", *where, "--json"])
    assert done.exit_code == 0, done.output
    assert_masked(done.output)
    out = json.loads(done.output)
    assert (out["decision"], out["decided_by"], out["cases_moved"]) == ("link", "clerk-9", 1)
    assert out["person"] == person_of_resident(hub, YUKO_NO)
    again = runner.invoke(identity_app, ["decide", str(item["id"]), "keep-apart", "--user", "clerk-9", *where])
    assert again.exit_code == 2
    assert runner.invoke(identity_app, ["review", *where]).output.strip() == "no pending reviews"
