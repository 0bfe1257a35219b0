"""``tsunagu identity score EXPORT TRUTH``: a run's persons.jsonl scored pairwise against a generated truth."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session
from typer.testing import CliRunner

from hub.bootstrap import Database
from hub.cli.main import app
from hub.identity.tables import IdentityReview


def _write(tmp_path: Path, predicted: dict[str, str], truth: dict[str, str]) -> tuple[Path, Path]:
    export = tmp_path / "export"
    export.mkdir()
    (export / "persons.jsonl").write_text(
        "".join(json.dumps({"record": r, "person": p, "household": None}) + "\n" for r, p in predicted.items()),
        encoding="utf-8")
    truth_file = tmp_path / "truth.json"
    truth_file.write_text(json.dumps({"records": truth, "persons": {}}), encoding="utf-8")
    return export, truth_file


def test_score_prints_pairwise_precision_recall_and_f1(tmp_path: Path) -> None:
    """Four records of two people: one wrong pair and one missed pair are counted as such."""
    truth = {"a": "P1", "b": "P1", "c": "P1", "d": "P2"}
    predicted = {"a": "x", "b": "x", "c": "y", "d": "y"}  # together: a-b (right), c-d (wrong); missed a-c, b-c
    export, truth_file = _write(tmp_path, predicted, truth)
    out = CliRunner().invoke(app, ["identity", "score", str(export), str(truth_file)])
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout)
    assert (got["records"], got["precision"], got["recall"]) == (4, 0.5, round(1 / 3, 4))
    assert (got["missed_pairs"], got["wrong_pairs"], got["reviews"]) == (2, 1, None)
    assert got["f1"] == round(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3), 4)


def test_score_counts_the_pending_reviews_of_the_runs_database(tmp_path: Path) -> None:
    """With ``--database`` the pending reviews and their share of the records are reported."""
    export, truth_file = _write(tmp_path, {"a": "x", "b": "x"}, {"a": "P1", "b": "P1"})
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    db = Database.open(url, migrate=True)
    try:
        with Session(db.engine) as s:
            s.add(IdentityReview(record="a", candidate_person="p-1", score=5.0, evidence={}, status="pending",
                                 created_at=datetime.now(UTC)))
            s.add(IdentityReview(record="b", candidate_person="p-1", score=5.0, evidence={}, status="linked",
                                 created_at=datetime.now(UTC)))
            s.commit()
    finally:
        db.close()
    out = CliRunner().invoke(app, ["identity", "score", str(export), str(truth_file), "--database", url])
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout)
    assert (got["precision"], got["recall"], got["reviews"], got["review_share"]) == (1.0, 1.0, 1, 0.5)


def test_score_of_a_missing_export_fails_with_one_line(tmp_path: Path) -> None:
    truth_file = tmp_path / "truth.json"
    truth_file.write_text("{}", encoding="utf-8")
    out = CliRunner().invoke(app, ["identity", "score", str(tmp_path / "nowhere"), str(truth_file)])
    assert out.exit_code != 0 and "cannot read the export or the truth" in out.output
