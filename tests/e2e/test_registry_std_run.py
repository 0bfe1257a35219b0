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
STD = SAMPLES / "registry_std"


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
    shutil.copytree(SAMPLES, std_sources, ignore=shutil.ignore_patterns("registry_std"))
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
