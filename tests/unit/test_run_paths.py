"""Paths and state files of a batch run: checked before any work, one-line errors, unclaimed files named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from typer.testing import CliRunner

from hub.cli.main import app
from hub.run.batch import survey_sources
from hub.run.state import RunError, read_marker, run_identity
from hub.settings import Settings

SAMPLES = Path(__file__).resolve().parents[2] / "hub" / "samples"


def _run(sources: Path, export: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["run", "--sources", str(sources), "--once", "--export", str(export),
                                      "--quiet", *extra])
    return result.exit_code, result.output


def test_export_pointing_at_a_file_fails_before_any_work(tmp_path: Path) -> None:
    """--export naming an existing file is a one-line error with exit 2, before a broker or database starts."""
    (tmp_path / "houkatsu").mkdir()
    out = tmp_path / "out.txt"
    out.write_text("keep me", encoding="utf-8")
    state = tmp_path / "state"
    code, output = _run(tmp_path, out, "--state", str(state))
    assert code == 2
    assert "is a file" in output and "Traceback" not in output
    assert out.read_text(encoding="utf-8") == "keep me"
    assert not state.exists()  # nothing was started


def test_export_under_a_file_fails_before_any_work(tmp_path: Path) -> None:
    """--export inside a path whose parent is a file is refused the same way."""
    (tmp_path / "houkatsu").mkdir()
    (tmp_path / "f").write_text("x", encoding="utf-8")
    code, output = _run(tmp_path, tmp_path / "f" / "out")
    assert code == 2 and "is under a file" in output


def test_sources_without_any_feed_is_an_error(tmp_path: Path) -> None:
    """An empty sources folder (or one with only unknown folders) says that it holds no feed, exit 2."""
    (tmp_path / "misc").mkdir()
    code, output = _run(tmp_path, tmp_path / "out")
    assert code == 2
    assert "no feed in sources folder" in output and "registry/" in output


def test_every_unclaimed_file_is_warned_and_counted(tmp_path: Path) -> None:
    """Files no connector takes (a garbage name in a feed folder, a stray top-level file, an unknown folder)
    are each named in a warning; the files connectors read and mapping files are not."""
    import shutil

    for feed in ("houkatsu", "consent", "kodomo"):
        shutil.copytree(SAMPLES / feed, tmp_path / feed)
    (tmp_path / "houkatsu" / "garbage.bin").write_bytes(b"\x00\x01")
    (tmp_path / "consent" / "notes.txt").write_text("x", encoding="utf-8")
    (tmp_path / "README").write_text("x", encoding="utf-8")
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "C01_soudan_20250404.csv").write_text("x", encoding="utf-8")
    (tmp_path / "houkatsu" / ".hidden").write_text("x", encoding="utf-8")
    with capture_logs() as logs:
        unclaimed = survey_sources(tmp_path, Settings())
    assert unclaimed == ["README", "consent/notes.txt", "extra/C01_soudan_20250404.csv", "houkatsu/garbage.bin"]
    warned = sorted(e["where"] for e in logs if e["event"].startswith("file not read"))
    assert warned == unclaimed


def test_the_samples_have_no_unclaimed_file() -> None:
    """Every file of the bundled feed folders is read by some connector: the demo warns of nothing."""
    assert survey_sources(SAMPLES, Settings()) == []


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b'{"run": 1}', b"\xff\xfe"])
def test_damaged_run_marker_alone_is_rebuilt(tmp_path: Path, content: bytes) -> None:
    """An empty or garbage run.json with nothing else in the state is replaced by a new, valid one."""
    (tmp_path / "run.json").write_bytes(content)
    rid = run_identity(tmp_path, Settings(kafka_bootstrap="127.0.0.1:1"))
    assert json.loads((tmp_path / "run.json").read_text(encoding="utf-8")) == {"run": rid, "broker": "127.0.0.1:1"}


@pytest.mark.parametrize("content", [b"", b"{garbage"])
def test_damaged_run_marker_beside_state_is_a_one_line_error(tmp_path: Path, content: bytes) -> None:
    """An empty or garbage run.json beside a database cannot say which topics to resume: a RunError, not a crash."""
    (tmp_path / "run.json").write_bytes(content)
    (tmp_path / "connectors.sqlite").write_bytes(b"")
    with pytest.raises(RunError, match="empty or damaged"):
        read_marker(tmp_path)


def test_garbage_state_database_is_a_one_line_error(tmp_path: Path) -> None:
    """A state database overwritten with garbage stops a resume with a RunError naming the file."""
    (tmp_path / "run.json").write_text(json.dumps({"run": "abc", "broker": "127.0.0.1:1"}), encoding="utf-8")
    (tmp_path / "hub.sqlite").write_bytes(b"this is not a database at all")
    with pytest.raises(RunError, match=r"hub\.sqlite is damaged"):
        run_identity(tmp_path, Settings(kafka_bootstrap="127.0.0.1:1"))


def test_run_marker_is_written_whole(tmp_path: Path) -> None:
    """run.json is written through a temporary file and a rename: no temporary file is left behind."""
    run_identity(tmp_path, Settings(kafka_bootstrap="127.0.0.1:1"))
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
