"""`tsunagu run` end to end on ../shared/agency-systems/samples: broker, hub, export, against the truth."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from consent.audit import verify
from e2e.identity_scorer import pairwise_scores
from e2e.truth_checks import (
    consented,
    export_alert_set,
    load_export,
    team_case_events,
    truth_alert_set,
    truth_key,
)
from hub.cli.main import app
from hub.logging import configure_logging
from hub.run.batch import batch_run
from hub.run.state import RunError
from hub.settings import Settings


def _settings(base: Settings, kafka: str, **extra: Any) -> Settings:
    return base.model_copy(update={"kafka_bootstrap": kafka, **extra})


@pytest.fixture(scope="module")
def sample_run(kafka: str, samples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One batch run over the samples on the real broker and SQLite, shared by the checks below."""
    import uuid

    rid = uuid.uuid4().hex[:8]
    settings = Settings(kafka_bootstrap=kafka, topic_prefix=f"e2e{rid}", hub_group=f"e2e-{rid}", partitions=3,
                        session_timeout_ms=1000, heartbeat_interval_ms=100, fetch_max_wait_ms=10)
    out = tmp_path_factory.mktemp("export")
    logs = io.StringIO()
    configure_logging("DEBUG", stream=logs)
    result = batch_run(samples_dir, out, settings=settings, progress=None)
    export = load_export(out)
    export["logs"] = logs.getvalue()
    export["result"] = result
    return export


def test_every_record_key_is_in_persons(sample_run: dict[str, Any], truth: dict[str, Any]) -> None:
    """persons.jsonl lists every record key of every feed, registry residents and 同居家族 included."""
    records = {p["record"] for p in sample_run["persons"]}
    missing = set(truth["records"]) - records
    bad = {b["record"] for b in truth["bad"]}
    assert missing <= bad, sorted(missing - bad)[:10]


def test_identity_precision_and_recall(sample_run: dict[str, Any], truth: dict[str, Any]) -> None:
    """Records are grouped into persons with pairwise precision ≥ 0.999 and recall ≥ 0.99."""
    predicted = {p["record"]: p["person"] for p in sample_run["persons"]}
    precision, recall = pairwise_scores(predicted, truth["records"])
    assert precision >= 0.999 and recall >= 0.99, (precision, recall)


def test_no_team_event_without_consent(sample_run: dict[str, Any], truth: dict[str, Any]) -> None:
    """Every case event on the team topic is covered by a consent at its source time."""
    allowed = {truth_key(e) for e in truth["events"] if consented(truth, e)}
    got = team_case_events(sample_run["team"])
    assert got <= allowed, sorted(got - allowed)[:10]


def test_every_consented_change_reaches_the_team(sample_run: dict[str, Any], truth: dict[str, Any]) -> None:
    """Every change the truth says was consented at its time is on the team topic."""
    expected = {truth_key(e) for e in truth["events"] if consented(truth, e)}
    assert expected, "the samples have consented events"
    assert expected <= team_case_events(sample_run["team"])


def test_team_events_are_cloudevents_with_extensions(sample_run: dict[str, Any]) -> None:
    """team.jsonl lines are CloudEvents with sourcerecord, field, person and household attributes."""
    for ev in sample_run["team"]:
        assert ev["specversion"] == "1.0" and ev["datacontenttype"] == "application/json"
        assert {"id", "source", "type", "time", "data", "sourcerecord", "person"} <= set(ev)
        if ev["type"].startswith("jp.tsunagu.case."):
            assert ev["field"] and ev["household"]


def test_bad_records_are_dead_letters_and_never_shared(sample_run: dict[str, Any], truth: dict[str, Any]) -> None:
    """Every planted bad record is a dead letter with a reason, and none reaches the team."""
    dead = {d["record"] for d in sample_run["deadletter"]}
    wheres = " ".join(d["where"] for d in sample_run["deadletter"])
    for bad in truth["bad"]:
        # a delivery with a bad signature is never parsed, so it is named by its delivery id only
        assert bad["record"] in dead or (bad.get("delivery") and bad["delivery"] in wheres), bad
    team_records = {e["sourcerecord"] for e in sample_run["team"]}
    assert not team_records & {b["record"] for b in truth["bad"]}
    for d in sample_run["deadletter"]:
        assert d["source"] and d["where"] and d["reason"]


def test_alerts_match_the_truth(sample_run: dict[str, Any], truth: dict[str, Any]) -> None:
    """Alerts raised are exactly the (household, kind) pairs of samples.truth.json."""
    assert export_alert_set(sample_run, truth) == truth_alert_set(truth)


def test_audit_trail_verifies_and_covers_every_team_event(sample_run: dict[str, Any]) -> None:
    """audit.jsonl is an intact hash chain and holds a permit for every case event shared."""
    result = verify(sample_run["audit"])
    assert result.ok, result
    permits = {a["event"] for a in sample_run["audit"] if a["decision"] == "permit"}
    for ev in sample_run["team"]:
        if ev["type"].startswith("jp.tsunagu.case."):
            assert ev["id"] in permits
    assert all("data" not in a for a in sample_run["audit"])


def test_summary_counts(sample_run: dict[str, Any]) -> None:
    """summary.json counts per feed and in total agree with the other files."""
    s = sample_run["summary"]
    assert set(s["feeds"]) >= {"registry", "houkatsu", "shogai", "kodomo", "jiritsu", "consent"}
    assert s["team_events"] == len(sample_run["team"])
    assert s["dead_letters"] == len(sample_run["deadletter"])
    assert s["records"] == len(sample_run["persons"])
    for feed, c in s["feeds"].items():
        assert c["published"] == c["processed"], feed


def test_logs_carry_no_personal_data(sample_run: dict[str, Any], samples_dir: Path) -> None:
    """No resident's name, reading or birth date from the registry appears in any log line."""
    import csv

    logs = sample_run["logs"]
    assert logs, "the run logged something"
    with (samples_dir / "registry" / "jumin.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for value in (row["氏名"], row["氏名カナ"], row["生年月日"], row["住所"]):
                assert value not in logs


def test_canaries_reach_no_log_and_no_dead_letter_reason(kafka: str, samples_dir: Path, tmp_path: Path,
                                                         fast_settings: Settings) -> None:
    """Planted canary names and birth dates, in good and bad rows, appear in no log line or reason."""
    src = tmp_path / "src"
    (src / "houkatsu").mkdir(parents=True)
    shutil.copytree(samples_dir / "registry", src / "registry")
    header = (samples_dir / "houkatsu" / "C01_soudan_20251123.csv").read_bytes().decode("cp932").splitlines()[0]
    rows = [
        "C09,2026-0001,R8.1.5,2026/01/05 10:00,,鳩羽　カナリア,ﾊﾄﾊﾞ ｶﾅﾘｱ,S23.11.29,女,中央9-9-9,0901234567,独居,"
        "認知症,カナリア事案の概要,対応中,,,長男:鳩羽　カナリオ:昭和50年2月3日:ひきこもり",
        "C09,2026-0002,R8.1.6,2026/01/06 10:00,,鳩羽　ツグミ,ﾊﾄﾊﾞ ﾂｸﾞﾐ,S23.02.31,女,中央9-9-9,,独居,認知症,"
        "ツグミ事案,対応中,,,",
    ]
    (src / "houkatsu" / "C09_soudan_20260106.csv").write_bytes(("\r\n".join([header, *rows]) + "\r\n").encode("cp932"))
    logs = io.StringIO()
    configure_logging("DEBUG", stream=logs)
    out = tmp_path / "out"
    batch_run(src, out, settings=_settings(fast_settings, kafka), progress=None)
    export = load_export(out)
    text = logs.getvalue()
    reasons = json.dumps([d["reason"] for d in export["deadletter"]], ensure_ascii=False)
    canaries = ("カナリア", "ｶﾅﾘｱ", "カナリオ", "ツグミ", "ﾂｸﾞﾐ", "1948-11-29", "S23.11.29", "昭和50年2月3日",
                "S23.02.31", "0901234567", "中央9-9-9")
    for canary in canaries:
        assert canary not in text, canary
        assert canary not in reasons, canary
    assert any(d["record"] == "houkatsu:C09-2026-0002" for d in export["deadletter"])
    assert "houkatsu:C09-2026-0001:family:1" in {p["record"] for p in export["persons"]}


def test_missing_sources_is_a_one_line_error(tmp_path: Path) -> None:
    """A missing sources folder stops the run with one line on stderr and a non-zero exit."""
    with pytest.raises(RunError):
        batch_run(tmp_path / "nope", tmp_path / "out", settings=Settings(), progress=None)
    result = CliRunner().invoke(app, ["run", "--sources", str(tmp_path / "nope"), "--once", "--export",
                                      str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "sources folder not found" in result.output
