"""The batch's blocking index finds exactly what the per-record blocking statements find, and a batch resolves as
events one by one would."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from hub.bench.pipeline import synthetic_events
from hub.bootstrap import Database
from hub.db import Base
from hub.identity.blocking import _KINDS, _NULL_BIRTH, null_birth_statement, pair_statement, read_blocking
from hub.identity.resolver import IdentityService
from hub.identity.scoring import Features, features_of
from hub.identity.tables import PersonRecordRow
from hub.pipeline.stages import HubCore, RawMessage
from hub.topics import Topics
from schemas.codes import Relation, Sex
from schemas.envelope import CloudEvent
from schemas.events import PersonRecord, ResidentObservedV1

ADDR = "さくら県みなと市中央1丁目2番3号"
BIRTH = date(1944, 5, 3)


@pytest.fixture
def s() -> Iterator[Session]:
    engine = create_engine("sqlite://")
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


def test_batch_statements_use_indexes(s: Session) -> None:
    """Every slot of a batch statement is an index search, never a table scan (SQLite EXPLAIN QUERY PLAN)."""
    stmts = [pair_statement(t, k) for t, kinds in _KINDS.items() for k in kinds]
    stmts += [null_birth_statement(t, c).params(keys=["a", "b"])
              for t in _NULL_BIRTH for c in ("kana_key", "folded_key")]
    conn = s.connection()
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


def _persons(tmp: Path, batches: list[list[CloudEvent]]) -> dict[str, str]:
    db = Database.open(f"sqlite:///{tmp / 'hub.sqlite'}")
    try:
        core = HubCore(db.sessions, Topics("t"))
        for n, batch in enumerate(batches):
            core.process_intake([RawMessage("t.intake", 0, n * 10 + i, None, ev.to_json_bytes())
                                 for i, ev in enumerate(batch)])
        with db.sessions() as s:
            return {r.record: r.person_id for r in s.scalars(select(PersonRecordRow))}
    finally:
        db.close()


def test_a_batch_resolves_as_one_event_at_a_time(tmp_path: Path) -> None:
    """Two records of one new person in one batch get ONE person, as they do in batches of one."""
    events = _twin_events()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    together = _persons(tmp_path / "a", [events])
    alone = _persons(tmp_path / "b", [[ev] for ev in events])
    assert together == alone
    assert len(together) == 3 and len(set(together.values())) == 2
