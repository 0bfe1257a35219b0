"""Batching is invisible: the household stage publishes and audits the same whether events come one per batch or
all in one batch (the consent gate read once per batch and kept up to date within it)."""

from __future__ import annotations

import itertools
from datetime import date
from pathlib import Path

import pytest

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


def _events() -> dict[str, CloudEvent]:
    return {
        "early": elder_case(1, at(3)),  # arrives before the grant: held, then released by it
        "grant": fhir_consent(date(2026, 5, 2)),
        "before": elder_case(2, at(15)),
        "registry": resident(ELDER_NO, ELDER_HOUSEHOLD, ELDER_NAME, ELDER_KANA, date(1950, 2, 3)),
        "after": elder_case(3, at(25)),
        "withdrawal": fhir_consent(date(2026, 5, 20), status="inactive"),
        "late": elder_case(4, at(28)),
    }


def _outcome(hub: Hub, events: dict[str, CloudEvent]) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """The team topic in order (type, the event it is about) and each case event's audited decisions."""
    team = [(e.type, str(e.data.get("event_id", e.id))) for e in hub.events(hub.topics.team)]
    audited = {name: [a.decision for a in hub.audit(ev.id)] for name, ev in events.items() if name not in
               ("grant", "withdrawal", "registry")}
    return team, audited


ORDERS = list(itertools.permutations(["grant", "before", "after", "withdrawal"]))


@pytest.mark.parametrize("order", ORDERS[::5], ids=lambda o: "-".join(o))
def test_one_batch_publishes_and_audits_as_one_event_per_batch(tmp_path: Path, order: tuple[str, ...]) -> None:
    events = _events()
    names = ["early", order[0], order[1], "registry", order[2], order[3], "late"]
    outcomes = []
    for batched in (False, True):
        hub = Hub(f"sqlite:///{tmp_path / f'hub-{batched}.sqlite'}")
        try:
            hub.send(resident(ELDER_NO, ELDER_HOUSEHOLD, ELDER_NAME, ELDER_KANA, date(1950, 2, 3)))
            if batched:
                hub.send(*(events[n] for n in names))
            else:
                for n in names:
                    hub.send(events[n])
            outcomes.append(_outcome(hub, events))
        finally:
            hub.close()
    assert outcomes[1] == outcomes[0]
    team, audited = outcomes[0]
    assert audited["early"][0] == "deny"  # sanity: held until the grant arrived (the gate really decided)
    assert any(t.startswith("jp.tsunagu.case.") for t, _ in team)
