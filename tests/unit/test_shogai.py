"""The shogai connector: watermark polling of t_riyousha / t_soudan on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.contract import Item
from connectors.shogai import ShogaiConnector, format_position, parse_position
from schemas.events import CaseV1, PersonObservedV1, ReferralRequestedV1

PG_URL = os.environ.get("TSUNAGU_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
STATE_TYPE = {"open": "jp.tsunagu.case.opened.v1", "mid": "jp.tsunagu.case.updated.v1",
              "closed": "jp.tsunagu.case.closed.v1"}

RIYOUSHA_COLS = ["riyousha_id", "atena_no", "shimei", "shimei_kana", "seinengappi", "seibetsu", "jusho", "tel",
                 "shogai_shubetsu", "koushin_nichiji"]
SOUDAN_COLS = ["soudan_id", "riyousha_id", "soudan_bi", "soudan_kubun", "kadai", "joukyou", "tsunagi_saki",
               "shuuketsu_bi", "koushin_nichiji"]

SQLITE_DDL = [
    "CREATE TABLE t_riyousha (riyousha_id INTEGER PRIMARY KEY, atena_no TEXT, shimei TEXT NOT NULL, "
    "shimei_kana TEXT, seinengappi TEXT, seibetsu INTEGER, jusho TEXT, tel TEXT, shogai_shubetsu TEXT, "
    "koushin_nichiji TEXT NOT NULL)",
    "CREATE TABLE t_soudan (soudan_id INTEGER PRIMARY KEY, riyousha_id INTEGER NOT NULL, soudan_bi TEXT, "
    "soudan_kubun TEXT, kadai TEXT, joukyou TEXT, tsunagi_saki TEXT, shuuketsu_bi TEXT, "
    "koushin_nichiji TEXT NOT NULL)",
]
# production column types: timestamp and date are native on PostgreSQL
PG_DDL = [
    "CREATE TABLE t_riyousha (riyousha_id integer PRIMARY KEY, atena_no text, shimei text NOT NULL, "
    "shimei_kana text, seinengappi text, seibetsu integer, jusho text, tel text, shogai_shubetsu text, "
    "koushin_nichiji timestamp NOT NULL)",
    "CREATE TABLE t_soudan (soudan_id integer PRIMARY KEY, riyousha_id integer NOT NULL, soudan_bi date, "
    "soudan_kubun text, kadai text, joukyou text, tsunagi_saki text, shuuketsu_bi date, "
    "koushin_nichiji timestamp NOT NULL)",
]


def sample_rows(samples_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    con = sqlite3.connect(f"file:{samples_dir / 'shogai' / 'soudan.sqlite'}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        riyousha = [dict(r) for r in con.execute("SELECT * FROM t_riyousha")]
        soudan = [dict(r) for r in con.execute("SELECT * FROM t_soudan")]
    finally:
        con.close()
    return riyousha, soudan


class Source:
    """A writable copy of the shogai tables on one backend, for the connector to read."""

    def __init__(self, url: str, engine: sa.Engine, ddl: list[str], native: bool) -> None:
        self.url = url
        self.engine = engine
        self.native = native
        with engine.begin() as c:
            for stmt in ddl:
                c.execute(sa.text(stmt))

    def _value(self, column: str, value: Any) -> Any:
        if not self.native or value is None:
            return value
        if column == "koushin_nichiji":
            return datetime.fromisoformat(value)
        if column in ("soudan_bi", "shuuketsu_bi"):
            return date.fromisoformat(value)
        return value

    def insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        cols = RIYOUSHA_COLS if table == "t_riyousha" else SOUDAN_COLS
        stmt = sa.text(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})")
        with self.engine.begin() as c:
            c.execute(stmt, [{k: self._value(k, r.get(k)) for k in cols} for r in rows])

    def update(self, table: str, key: str, row_id: int, **values: Any) -> None:
        sets = ", ".join(f"{k} = :{k}" for k in values)
        with self.engine.begin() as c:
            c.execute(
                sa.text(f"UPDATE {table} SET {sets} WHERE {key} = :row_id"),
                {"row_id": row_id, **{k: self._value(k, v) for k, v in values.items()}},
            )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def source(request: pytest.FixtureRequest, tmp_path: Path, pg_available: bool) -> Iterator[Source]:
    """Empty shogai tables on SQLite (text columns) or in a unique PostgreSQL schema (native types)."""
    if request.param == "sqlite":
        path = tmp_path / "soudan.sqlite"
        engine = sa.create_engine(f"sqlite:///{path}")
        yield Source(f"sqlite:///{path}", engine, SQLITE_DDL, native=False)
        engine.dispose()
        return
    if not pg_available:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is required in CI")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 not reachable")
    schema = f"shogai_t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    engine = sa.create_engine(url)
    try:
        yield Source(url, engine, PG_DDL, native=True)
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sample_source(source: Source, samples_dir: Path) -> Source:
    riyousha, soudan = sample_rows(samples_dir)
    source.insert("t_riyousha", riyousha)
    source.insert("t_soudan", soudan)
    return source


def read_all(url: str, checkpoints: dict[str, str] | None = None, **kw: Any) -> list[Item]:
    connector = ShogaiConnector(url, **kw)
    try:
        return list(connector.read(checkpoints or {}))
    finally:
        connector.close()


def advance(checkpoints: dict[str, str], items: list[Item]) -> dict[str, str]:
    """What the runner saves: the last position per scope."""
    out = dict(checkpoints)
    for item in items:
        out[item.checkpoint.scope] = item.checkpoint.position
    return out


def client(rid: int, stamp: str, **over: Any) -> dict[str, Any]:
    row = {"riyousha_id": rid, "atena_no": None, "shimei": "試験　花子", "shimei_kana": "シケン　ハナコ",
           "seinengappi": "1980-01-02", "seibetsu": 2, "jusho": "中央1-2-3", "tel": None,
           "shogai_shubetsu": "身体", "koushin_nichiji": stamp}
    row.update(over)
    return row


def case(sid: int, rid: int, stamp: str, **over: Any) -> dict[str, Any]:
    row = {"soudan_id": sid, "riyousha_id": rid, "soudan_bi": stamp[:10], "soudan_kubun": "基本相談",
           "kadai": "就労", "joukyou": "受付", "tsunagi_saki": None, "shuuketsu_bi": None,
           "koushin_nichiji": stamp}
    row.update(over)
    return row


def events(items: list[Item]) -> list[Any]:
    return [i.event for i in items if i.event is not None]


def dead_letters(items: list[Item]) -> list[Any]:
    return [i.dead_letter for i in items if i.dead_letter is not None]


# -- the sample ----------------------------------------------------------------------------


def test_sample_file_counts(samples_dir: Path) -> None:
    """The sample file itself yields 17 client and 17 case events and two dead letters for shogai:219."""
    items = read_all(f"sqlite:///{samples_dir / 'shogai' / 'soudan.sqlite'}")
    evs = events(items)
    assert sum(e.type == "jp.tsunagu.person.observed.v1" for e in evs) == 17
    assert sum(e.type.startswith("jp.tsunagu.case.") for e in evs) == 17
    assert {(d.where, d.record) for d in dead_letters(items)} == {
        ("t_riyousha:219", "shogai:219"),
        ("t_soudan:5143", "shogai:219"),
    }


def test_every_truth_event_is_emitted(sample_source: Source, truth: dict[str, Any]) -> None:
    """Each shogai change in samples.truth.json is a case event with that record, time and state."""
    seen = {(e.sourcerecord, e.time, e.type) for e in events(read_all(sample_source.url))}
    expected = [t for t in truth["events"] if t["record"].startswith("shogai:")]
    assert expected
    for t in expected:
        assert (t["record"], datetime.fromisoformat(t["at"]), STATE_TYPE[t["state"]]) in seen, t


def test_truth_bad_records_are_dead_letters_only(sample_source: Source, truth: dict[str, Any]) -> None:
    """Each planted bad shogai record becomes dead letters with data-free reasons and never an event."""
    items = read_all(sample_source.url)
    bad = {b["record"] for b in truth["bad"] if b["source"] == "shogai"}
    assert bad == {"shogai:219"}
    letters = dead_letters(items)
    assert {d.record for d in letters} == bad
    assert not [e for e in events(items) if e.sourcerecord in bad]
    reasons = " ".join(d.reason for d in letters)
    assert "seinengappi" in reasons and "seibetsu" in reasons
    for personal in ("1970-02-30", "木村", "キムラ", "中央1-2-3", "7"):
        assert personal not in reasons


def test_event_envelope(sample_source: Source) -> None:
    """Events carry the feed source, the client's record key, the disability field and JST times."""
    items = read_all(sample_source.url)
    for item in items:
        if item.event is None:
            continue
        e = item.event
        assert e.source == "urn:tsunagu:connector:shogai"
        assert e.field == "disability"
        assert item.key == e.sourcerecord
        assert e.time.utcoffset() == timedelta(hours=9)
        if e.type == "jp.tsunagu.person.observed.v1":
            p = PersonObservedV1.model_validate(e.data)
            assert p.person.record == e.sourcerecord
        else:
            c = CaseV1.model_validate(e.data)
            assert c.subject.record == e.sourcerecord and c.case.startswith("shogai:case:")
            assert c.revision == e.time.isoformat()


def test_disability_types_only_in_sensitive(sample_source: Source) -> None:
    """shogai_shubetsu appears only as sensitive.disability_types, never in the person record."""
    for e in events(read_all(sample_source.url)):
        assert e.data["sensitive"]["disability_types"]
        subject = e.data.get("person") or e.data.get("subject")
        assert "disability" not in str(subject)
        assert "精神" not in str(e.data)


def test_rereading_gives_the_same_ids(sample_source: Source) -> None:
    """Reading the same rows twice yields the same event ids (consumers dedupe on them)."""
    first = [e.id for e in events(read_all(sample_source.url))]
    second = [e.id for e in events(read_all(sample_source.url))]
    assert first == second and len(set(first)) == len(first)


def test_resume_from_checkpoint_reads_nothing_new(sample_source: Source) -> None:
    """After the runner saved the last positions, a new poll yields nothing."""
    items = read_all(sample_source.url)
    checkpoints = advance({}, items)
    assert set(checkpoints) == {"t_riyousha", "t_soudan"}
    assert read_all(sample_source.url, checkpoints) == []


def test_resume_midway_continues_exactly(sample_source: Source) -> None:
    """Stopping after any item and resuming from its checkpoints repeats and skips nothing."""
    items = read_all(sample_source.url)
    for cut in (1, 7, 20):
        head = items[:cut]
        # the runner never splits one checkpoint's items (a case and its referral)
        while cut < len(items) and items[cut].checkpoint == head[-1].checkpoint:
            cut += 1
            head = items[:cut]
        rest = read_all(sample_source.url, advance({}, head))
        assert [i.checkpoint for i in head + rest] == [i.checkpoint for i in items]


# -- watermark behaviour on generated rows ---------------------------------------------------


def test_rows_sharing_a_timestamp_split_across_polls(source: Source) -> None:
    """Rows with one koushin_nichiji, read partly in one poll, are neither skipped nor repeated."""
    stamp = "2026-01-10 09:00:00"
    source.insert("t_riyousha", [client(i, stamp) for i in (5, 3, 4)])
    first = read_all(source.url, page_size=2)
    assert [i.event.sourcerecord for i in first if i.event] == ["shogai:3", "shogai:4", "shogai:5"]
    checkpoints = advance({}, first[:2])
    assert checkpoints["t_riyousha"] == format_position(stamp, 4)
    source.insert("t_riyousha", [client(2, stamp), client(6, stamp)])  # 2 arrived late with the same time
    second = read_all(source.url, checkpoints, page_size=2)
    assert [i.event.sourcerecord for i in second if i.event] == ["shogai:5", "shogai:6"]


def test_row_updated_in_place_is_emitted_again(source: Source) -> None:
    """A case whose row changes (koushin_nichiji moves forward) comes back once, as a new event."""
    source.insert("t_riyousha", [client(1, "2026-01-10 09:00:00")])
    source.insert("t_soudan", [case(10, 1, "2026-01-10 10:00:00")])
    first = read_all(source.url)
    assert [e.type for e in events(first)] == ["jp.tsunagu.person.observed.v1", "jp.tsunagu.case.opened.v1"]
    checkpoints = advance({}, first)
    source.update("t_soudan", "soudan_id", 10, joukyou="支援中", koushin_nichiji="2026-02-01 11:00:00")
    second = read_all(source.url, checkpoints)
    assert [(e.type, e.sourcerecord) for e in events(second)] == [("jp.tsunagu.case.updated.v1", "shogai:1")]
    assert events(second)[0].id != events(first)[1].id
    source.update("t_soudan", "soudan_id", 10, joukyou="終結", shuuketsu_bi="2026-03-01",
                  koushin_nichiji="2026-03-01 15:00:00")
    third = read_all(source.url, advance(checkpoints, second))
    closed = events(third)
    assert [e.type for e in closed] == ["jp.tsunagu.case.closed.v1"]
    assert CaseV1.model_validate(closed[0].data).closed_on == date(2026, 3, 1)


def test_referral_is_its_own_event(source: Source) -> None:
    """A case with tsunagi_saki yields the case event and a referral.requested event with its own id."""
    source.insert("t_riyousha", [client(1, "2026-01-10 09:00:00")])
    source.insert("t_soudan", [case(10, 1, "2026-01-12 10:00:00", soudan_bi="2026-01-10", joukyou="支援中",
                                    tsunagi_saki="自立相談")])
    evs = events(read_all(source.url))
    assert [e.type for e in evs] == ["jp.tsunagu.person.observed.v1", "jp.tsunagu.case.updated.v1",
                                     "jp.tsunagu.referral.requested.v1"]
    ref = ReferralRequestedV1.model_validate(evs[2].data)
    assert ref.to == "livelihood" and ref.case == "shogai:case:10" and ref.requested_on == date(2026, 1, 12)
    assert CaseV1.model_validate(evs[1].data).referral_to == "livelihood"
    assert len({e.id for e in evs}) == 3


def test_both_birth_date_spellings(source: Source) -> None:
    """Birth dates written YYYY-MM-DD and migrated YYYYMMDD both parse."""
    source.insert("t_riyousha", [client(1, "2026-01-10 09:00:00", seinengappi="1979-10-03"),
                                 client(2, "2026-01-10 09:00:00", seinengappi="19791003")])
    births = [PersonObservedV1.model_validate(e.data).person.birth_date for e in events(read_all(source.url))]
    assert births == [date(1979, 10, 3), date(1979, 10, 3)]


@pytest.mark.parametrize(
    ("table", "over", "problem"),
    [
        ("t_riyousha", {"seibetsu": 3}, "unknown code in seibetsu"),
        ("t_riyousha", {"seinengappi": "19790231"}, "impossible date in seinengappi"),
        ("t_riyousha", {"shogai_shubetsu": "身体,視覚"}, "unknown code in shogai_shubetsu"),
        ("t_soudan", {"soudan_kubun": "緊急相談"}, "unknown code in soudan_kubun"),
        ("t_soudan", {"joukyou": "保留"}, "unknown code in joukyou"),
        ("t_soudan", {"kadai": "就労,借金"}, "unknown code in kadai"),
        ("t_soudan", {"tsunagi_saki": "警察"}, "unknown code in tsunagi_saki"),
    ],
)
def test_bad_rows_become_dead_letters(source: Source, table: str, over: dict[str, Any], problem: str) -> None:
    """Unknown codes and impossible dates give a dead letter naming the row, and the feed goes on."""
    stamp = "2026-01-10 09:00:00"
    if table == "t_riyousha":
        source.insert("t_riyousha", [client(1, stamp, **over), client(2, stamp)])
        source.insert("t_soudan", [case(10, 2, stamp)])
        where = "t_riyousha:1"
    else:
        source.insert("t_riyousha", [client(1, stamp), client(2, stamp)])
        source.insert("t_soudan", [case(10, 1, stamp, **over), case(11, 2, stamp)])
        where = "t_soudan:10"
    items = read_all(source.url)
    letters = dead_letters(items)
    assert [(d.where, d.record, d.source) for d in letters] == [(where, "shogai:1", "shogai")]
    assert problem in letters[0].reason
    assert "shogai:2" in {e.sourcerecord for e in events(items)}
    assert not [e for e in events(items) if e.sourcerecord == "shogai:1" and e.type.startswith("jp.tsunagu.case")]


def test_positions_round_trip() -> None:
    """A position names a timestamp and a zero-padded id, and foreign positions read from the start."""
    pos = format_position("2026-01-10 09:00:00", 42)
    assert pos == "2026-01-10 09:00:00|000000000042"
    assert parse_position(pos) == ("2026-01-10 09:00:00", 42)
    assert parse_position("0") is None


def test_source_is_never_written(samples_dir: Path, tmp_path: Path) -> None:
    """The SQLite source is opened read-only: even a writable file cannot be changed through it."""
    copy = tmp_path / "soudan.sqlite"
    copy.write_bytes((samples_dir / "shogai" / "soudan.sqlite").read_bytes())
    connector = ShogaiConnector(f"sqlite:///{copy}")
    try:
        assert list(connector.read({}))
        engine, _ = connector._open()
        with pytest.raises(sa.exc.OperationalError), engine.begin() as c:
            c.execute(sa.text("UPDATE t_riyousha SET shimei = shimei"))
    finally:
        connector.close()
