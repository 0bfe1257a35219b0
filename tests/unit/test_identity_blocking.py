"""The batch's blocking index finds exactly what the per-record blocking statements find, and a batch resolves as
events one by one would."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, select
from sqlalchemy.orm import Session

from hub.bench.pipeline import synthetic_events
from hub.bench.stages import registry_events
from hub.bootstrap import Database
from hub.db import Base
from hub.identity.blocking import _KINDS, _NULL_BIRTH, SLOTS, null_birth_statement, pair_statement, read_blocking
from hub.identity.resolver import IdentityService
from hub.identity.scoring import Features, features_of
from hub.identity.tables import Person, PersonRecordRow, Resident, ResidentName, ResidentObservation
from hub.pipeline.stages import HubCore, RawMessage
from hub.topics import Topics
from schemas.codes import Relation, Sex
from schemas.envelope import CloudEvent
from schemas.events import PersonRecord, ResidentObservedV1

ADDR = "さくら県みなと市中央1丁目2番3号"
BIRTH = date(1944, 5, 3)


@pytest.fixture
def s(database_url: str) -> Iterator[Session]:
    """A session on an empty SQLite file or PostgreSQL database with the hub's tables."""
    engine = create_engine(database_url)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


def _resident(svc: IdentityService, no: str, name: str, kana: str, birth: date | None, **extra: object) -> None:
    rec = PersonRecord(record=f"registry:{no}", name=name, kana=kana, birth_date=birth, sex=Sex.MALE, address=ADDR,
                       resident_no=no, household_no="5000000001", relation=Relation.HEAD)
    svc.observe_resident(ResidentObservedV1(resident=rec, moved_on=date(2024, 4, 1), snapshot="t", **extra))


def _source(record: str, name: str, kana: str | None, birth: date | None, address: str | None = None) -> PersonRecord:
    return PersonRecord(record=record, name=name, kana=kana, birth_date=birth, sex=Sex.UNKNOWN, address=address)


def _by_statements(svc: IdentityService, s: Session, f: Features, residents: bool = True) -> set[str]:
    return {r[0] for stmt in svc.blocking_statements(f, residents=residents) for r in s.execute(stmt)}


@pytest.fixture
def populated(s: Session) -> IdentityService:
    svc = IdentityService(s)
    _resident(svc, "1000000001", "髙橋　義雄", "タカハシ　ヨシオ", BIRTH)
    _resident(svc, "1000000002", "髙橋　和雄", "タカハシ　カズオ", BIRTH)
    _resident(svc, "1000000003", "山田　花子", "ヤマダ　ハナコ", date(1960, 3, 4), alias_name="佐藤花子",
              alias_kana="サトウハナコ")
    _resident(svc, "1000000004", "森　博", "モリ　ヒロシ", None, birth_date_unknown=True)
    _resident(svc, "1000000005", "スミス　ジョン", "スミス　ジョン", date(1970, 7, 7), alias_name="山本花子",
              alias_kana="ヤマモトハナコ")  # a 通称: found only by the other name's reading ending with the given's
    svc.resolve(_source("kodomo:K1", "鈴木一郎", "スズキイチロウ", date(1980, 1, 2), "中央2-3-4"), feed="kodomo")
    svc.resolve(_source("kodomo:K2", "田中正", "タナカタダシ", date(1980, 1, 3)), feed="kodomo")
    s.flush()
    return svc


QUERIES = [
    _source("q:1", "高橋義雄", "ﾀｶﾊｼﾖｼｵ", BIRTH),  # folded name and reading
    _source("q:2", "高橋義男", "ﾀｶﾊｼﾖｼｵ", BIRTH + timedelta(days=1)),  # a birth-date slip
    _source("q:3", "髙橋和雄", None, BIRTH),  # no reading
    _source("q:4", "佐藤花子", "サトウハナコ", date(1960, 3, 4)),  # another name of the resident
    _source("q:5", "森博", "モリヒロシ", date(1941, 1, 1)),  # a resident whose birth date is 不詳
    _source("q:6", "鈴木一朗", None, date(1980, 1, 2), "中央2-3-4"),  # address and birth date
    _source("q:7", "田中　正", "ﾀﾅｶ ﾀﾀﾞｼ", date(1980, 3, 1)),  # month and day swapped
    _source("q:8", "山本　正", "ﾔﾏﾓﾄ ﾀﾀﾞｼ", date(1980, 1, 3)),  # same given reading and birth date
    _source("q:9", "誰　か", "ﾀﾞﾚ ｶ", date(1999, 9, 9)),  # nobody
    _source("q:10", "鈴木　花子", "スズキ　ハナコ", date(1970, 7, 7)),  # a changed surname against a 通称
]


@pytest.mark.parametrize("residents", [True, False])
def test_index_finds_what_the_statements_find(populated: IdentityService, s: Session, residents: bool) -> None:
    features = [features_of(p, ()) for p in QUERIES]
    index = read_blocking(s, features)
    found_any = False
    for f in features:
        expected = _by_statements(populated, s, f, residents)
        assert index.find(f, residents=residents) == expected
        found_any |= bool(expected)
    assert found_any


def test_index_follows_the_batch_writes(populated: IdentityService, s: Session) -> None:
    """A record resolved in the batch is found under its keys, and no longer under keys it changed."""
    first = _source("houkatsu:H1", "伊藤　進", "ｲﾄｳ ｽｽﾑ", date(1950, 6, 6))
    moved = replace(features_of(first, ()), birth_date=date(1951, 6, 6))
    index = read_blocking(s, [features_of(first, ()), moved])
    f = features_of(first, ())
    assert index.find(f) == set()
    pid = populated.resolve(first, feed="houkatsu").person_id
    assert index.find(f) == {pid} == _by_statements(populated, s, f)
    populated.resolve(first.model_copy(update={"birth_date": date(1951, 6, 6)}), feed="houkatsu")
    assert index.find(f) == _by_statements(populated, s, f)
    assert index.find(moved) == _by_statements(populated, s, moved) != set()


def test_unread_keys_answer_none(populated: IdentityService, s: Session) -> None:
    index = read_blocking(s, [features_of(QUERIES[0], ())])
    assert index.find(features_of(QUERIES[3], ())) is None
    assert index.find(features_of(_source("q:x", "森博", "モリヒロシ", None), ())) is None


def test_batch_statements_use_indexes(tmp_path: Path) -> None:
    """Every slot of a batch statement is an index search, never a table scan (SQLite EXPLAIN QUERY PLAN)."""
    stmts = [pair_statement(t, k, n) for t, kinds in _KINDS.items() for k in kinds for n in SLOTS]
    stmts += [null_birth_statement(t, c).params(keys=["a", "b"])
              for t in _NULL_BIRTH for c in ("kana_key", "folded_key")]
    engine = create_engine(f"sqlite:///{tmp_path / 'plans.sqlite'}")
    Base.metadata.create_all(engine)
    with engine.connect() as conn:
        _assert_index_plans(conn, stmts)
    engine.dispose()


def _assert_index_plans(conn: Connection, stmts: list[Any]) -> None:
    for stmt in stmts:
        compiled = stmt.compile(conn, compile_kwargs={"render_postcompile": True})
        params = tuple("2000-01-01" for _ in compiled.positiontup or ())
        plan = " | ".join(row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), params))
        assert "USING INDEX" in plan, plan
        assert "SCAN" not in plan, plan


def _twin_events() -> list[CloudEvent]:
    """Two case events whose subjects (different records) are the same new person, and one about someone else."""
    first, other = synthetic_events(2)
    subject = first.data["subject"]
    again_record = "houkatsu:B01-2026-9999999"
    again = first.model_copy(update={
        "id": first.id + "-again", "sourcerecord": again_record,
        "data": {**first.data, "case": again_record, "subject": {**subject, "record": again_record}}})
    return [first, again, other]


def _persons(url: str, batches: list[list[CloudEvent]]) -> dict[str, Any]:
    """What stage 1 made of the batches: records → persons, residents, other names, observations, resolved events."""
    db = Database.open(url)
    try:
        core = HubCore(db.sessions, Topics("t"))
        resolved = []
        for n, batch in enumerate(batches):
            out = core.process_intake([RawMessage("t.intake", 0, n * 100 + i, None, ev.to_json_bytes())
                                       for i, ev in enumerate(batch)])
            resolved += [(o.topic, o.key, o.value) for o in out]
        with db.sessions() as s:
            return {
                "records": {r.record: (r.person_id, r.household_id) for r in s.scalars(select(PersonRecordRow))},
                "residents": {r.resident_no: (r.person_id, r.household_no, r.kana_key, r.moved_on)
                              for r in s.scalars(select(Resident))},
                "names": sorted((n.resident_no, n.person_id, n.kind, n.kana_key)
                                for n in s.scalars(select(ResidentName))),
                "observations": sorted((o.event_id, o.person_id, o.household_id) for o in
                                       s.scalars(select(ResidentObservation))),
                "persons": sorted((p.id, p.resident_no, p.household_id) for p in s.scalars(select(Person))),
                "resolved": sorted(resolved),
            }
    finally:
        db.close()


def test_a_batch_resolves_as_one_event_at_a_time(tmp_path: Path) -> None:
    """Two records of one new person in one batch get ONE person, as they do in batches of one."""
    events = _twin_events()
    together = _persons(f"sqlite:///{tmp_path / 'a.sqlite'}", [events])
    alone = _persons(f"sqlite:///{tmp_path / 'b.sqlite'}", [[ev] for ev in events])
    assert together == alone
    assert len(together["records"]) == 3 and len({p for p, _ in together["records"].values()}) == 2


def _registry_mix() -> list[CloudEvent]:
    """Cases, the registry rows of their subjects (one observed twice: an older row with an alias, a newer one
    without it and moved), a case of that subject by the alias in between, and a person the registry does not
    know; the older row once more after the newer one."""
    cases = synthetic_events(4, start=100)
    residents = registry_events(cases)
    older = residents[0]
    data = {**older.data, "moved_on": "2020-01-01", "alias_name": "別名花子", "alias_kana": "ベツメイハナコ"}
    older = older.model_copy(update={"id": older.id + "-older", "data": data})
    newer = residents[0]
    moved = {**newer.data["resident"], "household_no": "5000000999"}
    newer = newer.model_copy(update={"data": {**newer.data, "resident": moved}})
    by_alias = cases[0].model_copy(update={"id": cases[0].id + "-alias", "data": {
        **cases[0].data, "subject": {**cases[0].data["subject"], "record": "kodomo:X1", "name": "別名　花子",
                                     "kana": "ベツメイ ハナコ"}}})
    late = older.model_copy(update={"id": older.id + "-late"})
    return [cases[0], older, residents[1], by_alias, cases[1], newer, residents[2], cases[2], late, cases[3]]


def test_a_batch_with_registry_rows_resolves_as_one_event_at_a_time(tmp_path: Path, database_url: str) -> None:
    """Registry rows, their cases and a resident seen twice out of order: one batch (SQLite or PostgreSQL) gives
    what batches of one give."""
    events = _registry_mix()
    together = _persons(database_url, [events])
    alone = _persons(f"sqlite:///{tmp_path / 'alone.sqlite'}", [[ev] for ev in events])
    assert together == alone
    assert len(together["residents"]) == 3 and len(together["observations"]) == 5
    linked = {p for p, _ in together["records"].values()} & {p for p, *_ in together["residents"].values()}
    assert len(linked) >= 2
