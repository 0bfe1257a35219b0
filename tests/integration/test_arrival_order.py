"""The consent gate decides as of each event's source time whatever the arrival order (service mode, issue 10.4)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date, datetime

import pytest

from hub.pipeline.ordering import RETRACTION_TYPE, Sent, retractions
from integration.test_consent_flow import (
    ELDER_HOUSEHOLD,
    ELDER_KANA,
    ELDER_NAME,
    ELDER_NO,
    Hub,
    at,
    elder_case,
    fhir_consent,
    resident,
)
from schemas.envelope import CloudEvent


def visible(hub: Hub) -> set[str]:
    """What a team view shows: case events sent, minus those retracted afterwards."""
    shown: set[str] = set()
    for e in hub.events(hub.topics.team):
        if e.type.startswith("jp.tsunagu.case."):
            shown.add(e.id)
        elif e.type == RETRACTION_TYPE:
            shown.discard(str(e.data["event_id"]))
    return shown


@pytest.fixture
def fresh(database_url: str) -> Iterator[Hub]:
    h = Hub(database_url)
    h.send(resident(ELDER_NO, ELDER_HOUSEHOLD, ELDER_NAME, ELDER_KANA, date(1950, 2, 3)))
    yield h
    h.close()


def _events() -> dict[str, CloudEvent]:
    return {
        "grant": fhir_consent(date(2026, 5, 2)),
        "before": elder_case(1, at(15)),  # covered: consent from 5/2, withdrawn only on 5/20
        "after": elder_case(2, at(25)),  # after the withdrawal: must never stay visible
        "withdrawal": fhir_consent(date(2026, 5, 20), status="inactive"),
    }


ORDERS = list(itertools.permutations(["grant", "before", "after", "withdrawal"]))


# every third permutation (8, including grant-before-after-withdrawal, the reproduced leak) plus one more leak
@pytest.mark.parametrize("order", [*ORDERS[::3], ("grant", "after", "before", "withdrawal")],
                         ids=lambda o: "-".join(o))
def test_every_arrival_order_ends_with_the_source_time_answer(fresh: Hub, order: tuple[str, ...]) -> None:
    """Whatever order consent grant, withdrawal and two case events arrive in, the team ends up seeing exactly the
    event from while consent held (5/15), never the one after the withdrawal (5/25), and a retracted event's deny
    is audited."""
    events = _events()
    for name in order:
        fresh.send(events[name])
    assert visible(fresh) == {events["before"].id}, order
    after_audit = fresh.audit(events["after"].id)
    assert after_audit and after_audit[-1].decision == "deny"


def test_one_batch_with_the_withdrawal_last_is_corrected(fresh: Hub) -> None:
    """All four in one batch with the withdrawal last (the reproduced leak): the 5/25 event is retracted."""
    events = _events()
    fresh.send(events["grant"], events["before"], events["after"], events["withdrawal"])
    assert visible(fresh) == {events["before"].id}
    retracted = [e for e in fresh.events(fresh.topics.team) if e.type == RETRACTION_TYPE]
    assert [r.data["event_id"] for r in retracted] == [events["after"].id]
    assert set(retracted[0].data) == {"event_id", "event_source", "consent_id", "reason"}  # ids only, no content


def test_retractions_pure_core() -> None:
    """The pure core keeps only what is no longer permitted, in source-time order."""
    a = Sent("a", "s", datetime(2026, 5, 25))
    b = Sent("b", "s", datetime(2026, 5, 15))
    c = Sent("c", "s", datetime(2026, 5, 21))
    assert retractions([a, b, c], lambda e: e.event_id == "b") == [c, a]
    assert retractions([], lambda e: False) == []
