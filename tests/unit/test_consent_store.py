"""The consent registry and audit tables (consent.store) on SQLite in memory and, when reachable, PostgreSQL."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from consent.audit import GENESIS, AuditInput, verify
from consent.decide import decide
from consent.fhir import jiritsu_consent
from consent.model import JST, ConsentVersion, DecisionInput, Designation, EmergencyOverride
from consent.store import (
    ConsentRepository,
    append_audit,
    audit_head,
    disclosures,
    iter_audit,
    metadata,
)
from schemas.codes import Field
from schemas.events import ConsentV1

PG_URL = os.environ.get("TSUNAGU_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
AT = datetime(2026, 11, 1, 9, 0, tzinfo=JST)


def _pg_reason() -> str | None:
    """None when PostgreSQL answers, else why not (the skip reason)."""
    try:
        eng = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as c:
            c.execute(sa.text("select 1"))
        eng.dispose()
        return None
    except Exception as exc:  # any failure to connect means: not reachable here
        return f"PostgreSQL at {PG_URL.split('@')[-1]} not reachable ({type(exc).__name__})"


@pytest.fixture(params=["sqlite-memory", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    """A fresh database with consent.store's tables: SQLite in memory, or a unique schema in PostgreSQL."""
    yield from _engine(request.param)


def _engine(kind: str) -> Iterator[sa.Engine]:
    if kind == "sqlite-memory":
        eng = sa.create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
        metadata.create_all(eng)
        yield eng
        eng.dispose()
        return
    reason = _pg_reason()
    if reason is not None:
        pytest.skip(reason)
    schema = f"consent_t_{uuid.uuid4().hex[:12]}"
    base = sa.create_engine(PG_URL)
    with base.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    eng = base.execution_options(schema_translate_map={None: schema})
    try:
        metadata.create_all(eng)
        yield eng
    finally:
        with base.begin() as c:
            c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        base.dispose()


@pytest.fixture
def sessions(engine: sa.Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def consent(version: datetime, status: str = "active", **kw: object) -> ConsentV1:
    data: dict[str, object] = dict(consent_id="consent-0002", version=version, status=status, grantor="self",
                                   fields=[Field.ELDERLY], period_start=date(2025, 6, 30), origin="fhir",
                                   subject_resident_no="1055433023")
    data.update(kw)
    return ConsentV1.model_validate(data)


def audit_rows(n: int, person: str = "P1", start: int = 0) -> list[AuditInput]:
    return [AuditInput(event=f"ev{start + i}", sourcerecord=f"houkatsu:C01-{start + i:04d}", person=person,
                       field=Field.ELDERLY, route="team" if i % 2 == 0 else None, decision=i % 2 == 0,
                       basis="consent:consent-0002@2025-06-30T00:00:00+09:00" if i % 2 == 0 else "no-consent",
                       at=AT) for i in range(n)]


def test_metadata_is_complete() -> None:
    """The metadata the hub's migrations read has every table, the audit indexes and the version key."""
    assert set(metadata.tables) == {"consent_versions", "designations", "emergency_overrides", "audit_log",
                                    "audit_head"}
    audit_ix = {tuple(c.name for c in ix.columns) for ix in metadata.tables["audit_log"].indexes}
    assert {("person",), ("sourcerecord",)} <= audit_ix
    uniques = {tuple(c.name for c in u.columns) for u in metadata.tables["consent_versions"].constraints
               if isinstance(u, sa.UniqueConstraint)}
    assert ("consent_id", "version", "digest") in uniques
    assert all(ix.name and ix.name.startswith("ix_") for t in metadata.tables.values() for ix in t.indexes)


def test_versions_are_kept_and_redelivery_is_a_no_op(sessions: sessionmaker[Session]) -> None:
    """Every version is kept once: the same version again adds nothing; a withdrawal is a second version."""
    grant = consent(datetime(2025, 6, 30, tzinfo=JST), fhir={"resourceType": "Consent"})
    withdrawal = consent(datetime(2026, 7, 18, tzinfo=JST), "inactive")
    with sessions() as s:
        repo = ConsentRepository(s)
        assert repo.add_version(grant) is True
        assert repo.add_version(grant) is False
        assert repo.add_version(withdrawal) is True
        s.commit()
    with sessions() as s:
        repo = ConsentRepository(s)
        assert repo.add_version(ConsentVersion.from_event(grant)) is False
        got = repo.versions_for(["1055433023"], [])
    assert got == [ConsentVersion.from_event(grant), ConsentVersion.from_event(withdrawal)]
    assert got[0].version.utcoffset() is not None


def test_same_timestamp_different_content_is_kept_and_fails_closed(sessions: sessionmaker[Session]) -> None:
    """A grant and its withdrawal recorded with the same date are both kept, and the withdrawal wins."""
    day = datetime(2026, 1, 10, tzinfo=JST)
    with sessions() as s:
        repo = ConsentRepository(s)
        assert repo.add_version(consent(day)) and repo.add_version(consent(day, "inactive"))
        s.commit()
        versions = repo.versions_for(["1055433023"], [])
    assert len(versions) == 2
    e = DecisionInput(event_id="e", event_type="jp.tsunagu.case.updated.v1", field=Field.ELDERLY, person="P1",
                      household=None, time=datetime(2026, 1, 10, 12, tzinfo=JST), record="houkatsu:C01-0001")
    assert not decide(e, versions, [], AT).permit


def test_versions_for_finds_by_resident_number_or_record_key(sessions: sessionmaker[Session]) -> None:
    """A person's consents are found by any of their resident numbers and record keys, and only theirs."""
    jiritsu = jiritsu_consent("jiritsu:J25-0001", None, date(2025, 5, 1), datetime(2025, 5, 3, tzinfo=JST))
    other = consent(datetime(2025, 1, 1, tzinfo=JST), consent_id="c-other", subject_resident_no="2000000000")
    with sessions() as s:
        repo = ConsentRepository(s)
        for c in (consent(datetime(2025, 6, 30, tzinfo=JST)), jiritsu, other):
            repo.add_version(c)
        s.commit()
        ids = {v.consent_id for v in repo.versions_for(["1055433023"], ["jiritsu:J25-0001"])}
        assert ids == {"consent-0002", "jiritsu-form:J25-0001"}
        assert repo.versions_for([], []) == []
        assert [v.consent_id for v in repo.versions_for([], ["jiritsu:J25-0001"])] == ["jiritsu-form:J25-0001"]


def test_decision_from_stored_versions_equals_decision_from_events(sessions: sessionmaker[Session]) -> None:
    """Versions read back (as UTC) decide exactly as the events did, basis text included."""
    events = [consent(datetime(2025, 6, 30, tzinfo=JST)), consent(datetime(2026, 7, 18, tzinfo=JST), "inactive")]
    with sessions() as s:
        repo = ConsentRepository(s)
        for c in events:
            repo.add_version(c)
        s.commit()
        stored = repo.versions_for(["1055433023"], [])
    for t in (datetime(2026, 7, 17, 23, tzinfo=JST), datetime(2026, 7, 18, 1, tzinfo=JST)):
        e = DecisionInput(event_id="e", event_type="jp.tsunagu.case.updated.v1", field=Field.ELDERLY,
                          person="P1", household=None, time=t, record="houkatsu:C01-0001")
        assert decide(e, stored, [], AT) == decide(e, [ConsentVersion.from_event(c) for c in events], [], AT)


def test_designations_and_emergencies(sessions: sessionmaker[Session]) -> None:
    """Designations are kept per household (same id replaces), emergency overrides per person."""
    d = Designation("d1", "H1", (Field.ELDERLY, Field.CHILD), date(2026, 1, 1), None, "city")
    o = EmergencyOverride(reason="life-or-body", user="op-17", at=AT, person="P1", fields=(Field.CHILD,))
    with sessions() as s:
        repo = ConsentRepository(s)
        repo.add_designation(d)
        repo.add_designation(Designation("d1", "H1", (Field.ELDERLY, Field.CHILD), date(2026, 1, 1),
                                         date(2026, 6, 30), "city"))
        repo.add_designation(Designation("d2", "H2", (Field.LIVELIHOOD,), date(2026, 2, 1)))
        repo.record_emergency(o)
        s.commit()
    with sessions() as s:
        repo = ConsentRepository(s)
        assert repo.designations_for("H1") == [Designation("d1", "H1", (Field.ELDERLY, Field.CHILD),
                                                           date(2026, 1, 1), date(2026, 6, 30), "city")]
        assert repo.designations_for("nobody") == []
        assert repo.emergencies_for("P1") == [o]


def test_audit_across_two_sessions_keeps_one_chain(sessions: sessionmaker[Session]) -> None:
    """Appends from two sessions (two hub instances) chain onto each other and verify against the head."""
    with sessions() as s:
        assert audit_head(s) == GENESIS
        first = append_audit(s, audit_rows(3))
        s.commit()
    with sessions() as s:
        second = append_audit(s, audit_rows(2, person="P2", start=3))
        s.commit()
    assert second[0].prev_hash == first[-1].hash
    with sessions() as s:
        entries = list(iter_audit(s, batch=2))
        head = audit_head(s)
    assert entries == first + second
    result = verify((e.to_json() for e in entries), expected_head=head)
    assert result.ok and result.checked == 5


def test_rolled_back_append_leaves_no_trace(sessions: sessionmaker[Session]) -> None:
    """The caller's rollback undoes the entries and the head together, so the chain still verifies."""
    with sessions() as s:
        append_audit(s, audit_rows(2))
        s.commit()
    with sessions() as s:
        append_audit(s, audit_rows(2, start=2))
        s.rollback()
    with sessions() as s:
        append_audit(s, audit_rows(1, start=9))
        s.commit()
        entries = list(iter_audit(s))
        assert [e.event for e in entries] == ["ev0", "ev1", "ev9"]
        assert verify((e.to_json() for e in entries), expected_head=audit_head(s)).ok
        assert append_audit(s, []) == []


def test_disclosures_list_permitted_flows_per_person(sessions: sessionmaker[Session]) -> None:
    """開示請求: the permitted entries for the asked persons, in order, and nothing else."""
    with sessions() as s:
        append_audit(s, audit_rows(4, person="P1") + audit_rows(2, person="P2", start=10))
        s.commit()
        got = disclosures(s, ["P1"])
        assert [e.event for e in got] == ["ev0", "ev2"] and all(e.decision == "permit" for e in got)
        assert [e.event for e in disclosures(s, ["P1", "P2"])] == ["ev0", "ev2", "ev10"]
        assert disclosures(s, []) == []


@pytest.fixture
def pg_engine() -> Iterator[sa.Engine]:
    """PostgreSQL only: concurrent writers need a server database (the in-memory SQLite shares one connection)."""
    yield from _engine("postgresql")


def test_concurrent_appends_keep_one_chain(pg_engine: sa.Engine) -> None:
    """Hub instances appending at the same time (PostgreSQL, row lock on the head) never fork the chain."""
    engine = pg_engine
    maker = sessionmaker(engine, expire_on_commit=False)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                with maker() as s:
                    append_audit(s, audit_rows(2, person=f"W{n}", start=n * 100 + i * 2))
                    s.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with maker() as s:
        entries = list(iter_audit(s))
        result = verify((e.to_json() for e in entries), expected_head=audit_head(s))
    assert result.ok and result.checked == 80


def test_stored_times_are_utc_and_aware(sessions: sessionmaker[Session]) -> None:
    """Versions go in as any offset and come back as the same instant, aware."""
    v = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=JST)
    with sessions() as s:
        ConsentRepository(s).add_version(consent(v))
        s.commit()
        (got,) = ConsentRepository(s).versions_for(["1055433023"], [])
    assert got.version == v and got.version.utcoffset() == UTC.utcoffset(None)


def test_concurrent_appends_on_a_sqlite_file_keep_one_chain(tmp_path: Path) -> None:
    """On SQLite (the hub's default store) the head write lock is taken before reading, so threads never fork."""
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'audit.sqlite'}", connect_args={"timeout": 30})

    @sa.event.listens_for(eng, "connect")
    def _wal(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA journal_mode=WAL")

    metadata.create_all(eng)
    maker = sessionmaker(eng, expire_on_commit=False)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                with maker() as s:
                    append_audit(s, audit_rows(2, person=f"W{n}", start=n * 100 + i * 2))
                    s.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with maker() as s:
        result = verify((e.to_json() for e in iter_audit(s)), expected_head=audit_head(s))
    eng.dispose()
    assert result.ok and result.checked == 80
