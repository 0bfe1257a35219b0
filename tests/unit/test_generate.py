"""``tsunagu generate``: real formats through the real connectors, determinism, a consistent truth, identity scores."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from connectors.contract import Connector
from hub import wiring
from hub.cli.main import app
from hub.generate.feeds import Plan, generate
from hub.generate.people import Options
from hub.settings import Settings

FEEDS = ("registry", "houkatsu", "shogai", "kodomo", "jiritsu", "consent")


def _read_all(src: Path) -> dict[str, tuple[int, list[tuple[str | None, str, str]]]]:
    """Every connector the batch run would use over ``src``: (events, dead letters) per feed."""
    out: dict[str, tuple[int, list[tuple[str | None, str, str]]]] = {}
    connectors: list[Connector] = [*wiring.registry_connectors(src), *wiring.case_connectors(src, Settings())]
    for c in connectors:
        events, dead = 0, []
        for item in c.read({}):
            if item.dead_letter is not None:
                dead.append((item.dead_letter.record, item.dead_letter.reason, item.dead_letter.where))
            else:
                events += 1
        c.close()
        out[c.name] = (events, dead)
    return out


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    out = tmp_path_factory.mktemp("gen") / "feeds"
    summary = generate(out, 11, Plan(households=250, residents=900))
    truth = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    return out, summary, truth


def test_every_feed_reads_with_only_the_planted_dead_letters(generated: tuple[Path, dict[str, Any],
                                                                              dict[str, Any]]) -> None:
    """Each feed reads through its real connector; the dead letters are exactly the planted rows, by reason."""
    out, summary, truth = generated
    read = _read_all(out)
    assert set(read) == set(FEEDS)
    got = Counter()
    for feed, (events, dead) in read.items():
        assert events == summary["events"][feed], feed
        for record, reason, where in dead:
            got[(feed, record if record else where.removeprefix("delivery:"), reason)] += 1
    want = Counter((b["source"], b["record"] if b["source"] != "kodomo" else b["delivery"], b["why"])
                   for b in truth["bad"])
    assert got == want
    assert {b["source"] for b in truth["bad"]} == {"houkatsu", "shogai", "kodomo", "jiritsu"}


def test_formats_are_the_vendors(generated: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    """houkatsu is CP932 with CRLF, jiritsu UTF-8 with BOM and LF, the registry UTF-8 without BOM, kodomo signed."""
    out, _, _ = generated
    for f in (out / "houkatsu").glob("*.csv"):
        raw = f.read_bytes()
        raw.decode("cp932")
        assert raw.count(b"\r\n") == raw.count(b"\n") > 1
    for f in (out / "jiritsu").glob("*.csv"):
        raw = f.read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw
    assert not (out / "registry" / "jumin.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    doc = json.loads(next((out / "kodomo").glob("d-2*.json")).read_text(encoding="utf-8"))
    assert doc["headers"]["X-Signature"].startswith("sha256=") and isinstance(doc["body"], str)


def test_registry_is_padded_to_the_residents_asked(generated: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    """--residents pads the registry with households no agency knows, all of them in the truth."""
    out, summary, truth = generated
    lines = (out / "registry" / "jumin.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) - 1 == summary["residents"] >= 900
    assert summary["households"] > summary["case_households"] == 250
    assert sum(1 for k in truth["records"] if k.startswith("registry:")) == summary["residents"]


def test_truth_is_consistent(generated: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    """Every record key maps to a known person, every person to a household listing them, bad records are apart."""
    _, summary, truth = generated
    assert len(truth["records"]) == summary["records"]
    assert set(truth["records"].values()) <= set(truth["persons"])
    for pid, person in truth["persons"].items():
        assert pid in truth["households"][person["household"]]["members"]
    assert not {b["record"] for b in truth["bad"]} & set(truth["records"])
    kinds = Counter(h["kind"] for h in truth["households"].values())
    assert {"elderly_single", "elderly_couple", "p8050", "double_care", "young_carer", "family"} <= set(kinds)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    """Two runs with one seed write identical files; another seed writes other ones."""
    a, b, c = (tmp_path / n for n in "abc")
    for folder, seed in ((a, 5), (b, 5), (c, 6)):
        generate(folder, seed, Plan(households=60, residents=200),
                 Options(glyph_variants=0.3, changed_surnames=0.3, birth_slips=0.2, outside_registry=0.1))
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db
    assert da["registry/jumin.csv"] != dc["registry/jumin.csv"]


def test_variance_options_change_what_they_name(tmp_path: Path) -> None:
    """Glyph variants reach registry names, 住登外 households are absent from the registry, feeds still read."""
    out = tmp_path / "v"
    generate(out, 3, Plan(households=200), Options(glyph_variants=1.0, changed_surnames=0.5, birth_slips=0.3,
                                                   outside_registry=0.2))
    truth = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    registry = (out / "registry" / "jumin.csv").read_text(encoding="utf-8")
    assert any(0xF900 <= ord(ch) <= 0xFAFF or ord(ch) >= 0xE0100 for ch in registry)
    outside = [h for h in truth["households"].values() if not h["registered"]]
    assert outside
    assert all(truth["persons"][p]["atena"] is None for h in outside for p in h["members"])
    read = _read_all(out)
    assert sum(len(dead) for _, dead in read.values()) == len(truth["bad"])


def test_cli_refuses_a_folder_with_feeds(tmp_path: Path) -> None:
    """`tsunagu generate` writes the summary as JSON, and refuses to write over existing feeds."""
    runner = CliRunner()
    first = runner.invoke(app, ["generate", "--households", "20", "--seed", "2", "--quiet", str(tmp_path / "o")])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["case_households"] == 20
    again = runner.invoke(app, ["generate", "--households", "20", "--seed", "2", "--quiet", str(tmp_path / "o")])
    assert again.exit_code != 0


def test_batch_run_scores_identity(kafka: str, fast_settings: Settings, tmp_path: Path) -> None:
    """A batch run over a small generated folder groups records with precision 1.0 and recall ≥ 0.95."""
    from e2e.identity_scorer import missed_pairs, pairwise_scores, wrong_pairs
    from e2e.truth_checks import load_export
    from hub.run.batch import batch_run

    src = tmp_path / "src"
    generate(src, 21, Plan(households=120, residents=400))
    truth = json.loads((src / "truth.json").read_text(encoding="utf-8"))
    out = tmp_path / "out"
    batch_run(src, out, settings=fast_settings.model_copy(update={"kafka_bootstrap": kafka}), progress=None)
    export = load_export(out)
    predicted = {p["record"]: p["person"] for p in export["persons"]}
    precision, recall = pairwise_scores(predicted, truth["records"])
    assert precision == 1.0, wrong_pairs(predicted, truth["records"])
    assert recall >= 0.95, (recall, missed_pairs(predicted, truth["records"]))
    dead = {d["record"] for d in export["deadletter"]}
    assert {b["record"] for b in truth["bad"] if b["source"] != "kodomo"} <= dead
