"""`tsunagu run` on the samples with the registry in the 標準準拠 layout, against the same run on jumin.csv.

What must hold now and after the hub learns resident status (issue 13, items 2–4): the standard
extract is read without dead letters, the residents it adds are there, and everything
``expected_differences.json`` does not name is the same as with jumin.csv — who is who, which
records share a household, which alerts are raised.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from e2e.truth_checks import load_export
from hub.run.batch import batch_run
from hub.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "hub" / "samples"
STD = Path(__file__).resolve().parents[1] / "data" / "registry_std"


def _run(kafka: str, sources: Path, out: Path) -> dict[str, Any]:
    rid = uuid.uuid4().hex[:8]
    settings = Settings(kafka_bootstrap=kafka, topic_prefix=f"std{rid}", hub_group=f"std-{rid}", partitions=3,
                        session_timeout_ms=1000, heartbeat_interval_ms=100, fetch_max_wait_ms=10)
    batch_run(sources, out, settings=settings, progress=None)
    return load_export(out)


@pytest.fixture(scope="module")
def runs(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    """The batch run on the samples as shipped, and on a copy whose registry/ is registry_std/."""
    base = tmp_path_factory.mktemp("jumin")
    std_sources = tmp_path_factory.mktemp("std") / "sources"
    shutil.copytree(SAMPLES, std_sources)
    shutil.rmtree(std_sources / "registry")
    (std_sources / "registry").mkdir()
    for csv_file in STD.glob("*.csv"):
        shutil.copy(csv_file, std_sources / "registry" / csv_file.name)
    jumin = _run(kafka, SAMPLES, base / "out")
    std = _run(kafka, std_sources, tmp_path_factory.mktemp("std-out"))
    return jumin, std


def _persons(export: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {r["record"]: (r["person"], r["household"]) for r in export["persons"]}


def _groups(mapping: dict[str, str | None], keep: set[str]) -> set[frozenset[str]]:
    out: dict[str | None, set[str]] = defaultdict(set)
    for record, group in mapping.items():
        if record in keep:
            out[group].add(record)
    return {frozenset(v) for v in out.values()}


def expected() -> dict[str, Any]:
    return json.loads((STD / "expected_differences.json").read_text(encoding="utf-8"))


def test_standard_extract_reads_without_dead_letters(runs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """Every row of the standard extract reaches the hub: no registry dead letter, the added residents exist."""
    _, std = runs
    assert not [d for d in std["deadletter"] if d["source"] == "registry"]
    persons = _persons(std)
    for added in expected()["persons_added"]:
        assert added["record"] in persons, added["record"]


def test_same_persons_as_with_jumin_csv(runs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """Every record of every feed resolves to the same grouping of records into persons as with jumin.csv."""
    jumin, std = runs
    before, after = _persons(jumin), _persons(std)
    records = set(before)
    assert records <= set(after)
    assert _groups({r: p for r, (p, _) in after.items()}, records) == _groups(
        {r: p for r, (p, _) in before.items()}, records)


def test_households_and_alerts_unchanged_where_nothing_new_is_known(
    runs: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """Households and alerts the expected differences do not name are the same as with jumin.csv."""
    from hub.identity.tables import household_id_for_no

    jumin, std = runs
    exp = expected()
    named_nos = {h["household"] for h in exp["households"]} | {c["household"] for c in exp["status_changes"]}
    named_nos |= {p["household"] for p in exp["persons_added"]}
    named = {household_id_for_no(no) for no in named_nos}
    before, after = _persons(jumin), _persons(std)

    def members(persons: dict[str, tuple[str, str | None]]) -> dict[str | None, set[str]]:
        out: dict[str | None, set[str]] = defaultdict(set)
        for record, (_, household) in persons.items():
            if record in before and household not in named:
                out[household].add(record)
        return dict(out)

    assert members(after) == members(before)
    assert named & {h for _, h in before.values()}, "the named households exist in the jumin.csv run"

    closing = {(household_id_for_no(a["household"]), a["kind"]) for a in exp["alerts"]}

    def alerts(export: dict[str, Any]) -> set[tuple[str, str]]:
        return {(a["data"]["household"], a["data"]["kind"]) for a in export["alerts"]}

    assert alerts(jumin) - closing, "the samples raise alerts"
    assert alerts(std) - closing == alerts(jumin) - closing


REASONS = {"member deceased": "member_deceased", "member moved out": "member_moved_out"}


def test_alerts_that_depended_on_a_person_who_left_end_on_that_day(
    runs: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """Each alert expected_differences.json names is raised as with jumin.csv and then ended by the hub on
    the day the member it depended on died or moved out, with that reason; with jumin.csv it never ends."""
    from hub.identity.tables import household_id_for_no

    jumin, std = runs
    for want in expected()["alerts"]:
        household = household_id_for_no(want["household"])
        day = want["expect"].rsplit(" ", 1)[1]
        reason = REASONS[want["reason"].split(" (")[0]]

        def of(export: dict[str, Any], household: str = household, kind: str = want["kind"]) -> list[dict[str, Any]]:
            return [a for a in export["alerts"] if a["data"]["household"] == household and a["data"]["kind"] == kind]

        assert any(a["type"] == "jp.tsunagu.alert.raised.v1" for a in of(jumin)), want
        assert not any(a["type"] == "jp.tsunagu.alert.ended.v1" for a in of(jumin)), want
        raised = [a for a in of(std) if a["type"] == "jp.tsunagu.alert.raised.v1"]
        ends = [a for a in of(std) if a["type"] == "jp.tsunagu.alert.ended.v1"]
        assert len(raised) == 1 and len(ends) == 1, (want, [a["type"] for a in of(std)])
        end = ends[0]["data"]
        assert (end["status"], end["closed_on"], end["close_reason"]) == ("closed", day, reason), want
        assert raised[0]["time"] < ends[0]["time"]
        before = next(a for a in of(jumin) if a["type"] == "jp.tsunagu.alert.raised.v1")
        assert {k: raised[0]["data"][k] for k in ("records", "fields", "members")} == {
            k: before["data"][k] for k in ("records", "fields", "members")}, want
        assert raised[0]["time"] == before["time"], want


def test_alert_events_unchanged_where_nothing_new_is_known(runs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """Every alert event of a household and kind expected_differences.json does not name is the same as with
    jumin.csv: its day, fields, records and the members shown."""
    from hub.identity.tables import household_id_for_no

    jumin, std = runs
    named = {(household_id_for_no(a["household"]), a["kind"]) for a in expected()["alerts"]}

    def events(export: dict[str, Any]) -> set[tuple[Any, ...]]:
        return {(a["type"], a["time"], a["data"]["household"], a["data"]["kind"], tuple(a["data"]["fields"]),
                 tuple(a["data"]["records"]), a["data"]["members"]) for a in export["alerts"]
                if (a["data"]["household"], a["data"]["kind"]) not in named}

    assert events(jumin) and events(std) == events(jumin)


def test_no_other_alert_ends(runs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """Only the alerts expected_differences.json names are ended by the hub."""
    from hub.identity.tables import household_id_for_no

    _, std = runs
    named = {(household_id_for_no(a["household"]), a["kind"]) for a in expected()["alerts"]}
    ended = {(a["data"]["household"], a["data"]["kind"]) for a in std["alerts"]
             if a["type"] == "jp.tsunagu.alert.ended.v1"}
    assert ended == named


def test_team_gets_nothing_new_attributed_to_a_household_the_person_left(
    runs: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """The jiritsu case of the child who moved out on 2026-06-30 goes on, but its later events reach the team
    keyed by the person, not attributed to the household he left; with jumin.csv they still name it."""
    from hub.identity.tables import household_id_for_no

    jumin, std = runs
    left = {c["record"]: c for c in expected()["status_changes"] if c.get("status") == "moved_out"}
    for want in expected()["team"]:
        record = want["record"]
        change = next(c for c in left.values() if c["household"] in want["expect"])
        household = household_id_for_no(change["household"])
        cutoff = change["status_on"]

        def after(export: dict[str, Any], record: str = record, cutoff: str = cutoff) -> list[dict[str, Any]]:
            return [e for e in export["team"] if e.get("sourcerecord") == record and e["time"][:10] >= cutoff]

        assert after(jumin) and all(e.get("household") == household for e in after(jumin)), want
        assert after(std), want
        assert all(e.get("household") != household for e in after(std)), want
        assert all(e.get("person") for e in after(std)), want
