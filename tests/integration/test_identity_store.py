"""Identity resolution end to end on the samples, and on hard synthetic data, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.orm import Session

from connectors.contract import Connector
from e2e.identity_scorer import missed_pairs, pairwise_scores, wrong_pairs
from hub.db import Base, make_engine
from hub.identity.resolver import IdentityService, persons_export
from hub.identity.review import list_reviews
from schemas.events import CaseV1, PersonObservedV1, ReferralRequestedV1, ResidentObservedV1, parse_payload
from unit.identity_synth import PREFIXES, generate

SAMPLE_PREFIXES = ("さくら県", "みなと市")
PG_URL = os.environ.get("TSUNAGU_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _connectors(samples: Path) -> list[Connector]:
    from connectors.houkatsu import HoukatsuConnector
    from connectors.jiritsu import JiritsuConnector
    from connectors.kodomo import KodomoReplayConnector
    from connectors.registry import RegistryConnector
    from connectors.shogai import ShogaiConnector

    return [
        RegistryConnector(samples / "registry"),
        HoukatsuConnector(samples / "houkatsu"),
        JiritsuConnector(samples / "jiritsu"),
        ShogaiConnector(f"sqlite:///{samples / 'shogai' / 'soudan.sqlite'}"),
        KodomoReplayConnector(samples / "kodomo", "kodomo-sample-secret"),
    ]


def sample_payloads(samples: Path, *, registry_first: bool = True) -> list[BaseModel]:
    """Every event payload of the samples: the registry first (or last), the feeds in event time."""
    registry: list[BaseModel] = []
    timed: list[tuple[str, int, BaseModel]] = []
    for conn in _connectors(samples):
        try:
            for item in conn.read({}):
                if item.event is None:
                    continue
                payload = parse_payload(item.event.type, item.event.data)
                if isinstance(payload, ResidentObservedV1):
                    registry.append(payload)
                else:
                    timed.append((item.event.time.isoformat(), len(timed), payload))
        finally:
            conn.close()
    feeds = [p for _, _, p in sorted(timed, key=lambda t: (t[0], t[1]))]
    return registry + feeds if registry_first else feeds + registry


def apply(svc: IdentityService, payload: BaseModel) -> None:
    if isinstance(payload, ResidentObservedV1):
        svc.observe_resident(payload)
    elif isinstance(payload, CaseV1):
        svc.resolve_case(payload)
    elif isinstance(payload, PersonObservedV1):
        svc.resolve(payload.person, feed=payload.feed.value)
    elif isinstance(payload, ReferralRequestedV1):
        svc.resolve(payload.subject, feed=payload.feed.value)


def predicted(session: Session) -> dict[str, str]:
    return {record: person for record, person, _ in persons_export(session)}


@pytest.fixture(params=["sqlite", "postgresql"])
def session(request: pytest.FixtureRequest, tmp_path: Path, pg_available: bool) -> Iterator[Session]:
    """A session on fresh identity tables: a SQLite file, or a uniquely named PostgreSQL schema."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'identity.sqlite'}")
        Base.metadata.create_all(engine)
        with Session(engine) as s:
            yield s
        engine.dispose()
        return
    if not pg_available:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 not reachable")
    yield from _pg_session(PG_URL)


def _pg_session(url: str) -> Iterator[Session]:
    schema = f"ident_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = sa.create_engine(url, execution_options={"schema_translate_map": {None: schema}})
    try:
        Base.metadata.create_all(engine)
        with Session(engine) as s:
            yield s
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _report(pred: dict[str, str], truth: dict[str, str]) -> str:
    return f"wrong: {wrong_pairs(pred, truth)} missed: {missed_pairs(pred, truth)}"


def test_samples_link_as_the_truth_says(session: Session, samples_dir: Path, truth: dict) -> None:
    """Every sample record, registry first then the feeds in event time: precision ≥ 0.999, recall ≥ 0.99."""
    svc = IdentityService(session, address_prefixes=SAMPLE_PREFIXES)
    for payload in sample_payloads(samples_dir):
        apply(svc, payload)
    session.commit()
    pred = predicted(session)
    records = truth["records"]
    assert set(records) <= set(pred)
    precision, recall = pairwise_scores(pred, records)
    assert precision >= 0.999, _report(pred, records)
    assert recall >= 0.99, _report(pred, records)


def test_samples_with_the_registry_last_never_merge_wrongly(tmp_path: Path, samples_dir: Path, truth: dict) -> None:
    """Order matters only for recall (late registry rows adopt source persons on strong evidence only)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'late.sqlite'}")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        svc = IdentityService(s, address_prefixes=SAMPLE_PREFIXES)
        for payload in sample_payloads(samples_dir, registry_first=False):
            apply(svc, payload)
        pred = predicted(s)
        precision, recall = pairwise_scores(pred, truth["records"])
        assert precision >= 0.999, _report(pred, truth["records"])
        assert recall >= 0.9
        assert all(r.evidence for r in list_reviews(s))
    engine.dispose()


def test_hard_synthetic_data(session: Session) -> None:
    """Twins, namesakes, same-name parents, homophone slips, variants, wrong resident numbers …"""
    data = generate(seed=7, households=500)
    svc = IdentityService(session, address_prefixes=PREFIXES)
    for ev in data.registry:
        svc.observe_resident(ev)
    for obs in data.observations:
        if isinstance(obs, tuple):
            person, feed, household_no = obs
            svc.resolve(person, feed=feed, source_household_no=household_no)
        else:
            svc.resolve_case(obs)
    session.commit()
    pred = predicted(session)
    precision, recall = pairwise_scores(pred, data.truth)
    assert precision >= 0.999, _report(pred, data.truth)
    assert recall >= 0.98, _report(pred, data.truth)
    reviews = list_reviews(session)
    assert reviews, "the hard cases (wrong resident numbers, slips without a reading) go to review"
    names = {p.resident.name for p in data.registry}
    assert not any(str(v) in names for r in reviews for v in r.evidence.values())
