"""Onboarding by configuration: a centre's mapping file beside the standard centres' files."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from hub.cli.main import app
from hub.settings import Settings
from hub.wiring import case_connectors
from unit.test_csv_connectors import VARIANT_TOML, h_row, write_houkatsu, write_variant


def test_mapping_file_adds_a_centre_without_hiding_the_standard_ones(tmp_path: Path) -> None:
    """With c04.mapping.toml in houkatsu/, both the C04 variant and the standard C01 files are read."""
    folder = tmp_path / "houkatsu"
    write_houkatsu(folder, "C01_soudan_20250402.csv", [h_row(センターコード="C01", 更新日時="2025/04/02 09:00")])
    write_variant(folder, "soudan_C04_20250401.csv", [
        {"状況": "新規受付", "最終更新": "2025-04-01 10:00", "相談No": "A-1", "受付年月日": "R7.4.1"},
    ])
    (folder / "c04.mapping.toml").write_text(VARIANT_TOML, encoding="utf-8")
    [houkatsu] = case_connectors(tmp_path, Settings())
    items = list(houkatsu.read({}))
    assert all(i.dead_letter is None for i in items), [i.dead_letter for i in items]
    sources = {i.event.source for i in items if i.event is not None}
    assert sources == {"urn:tsunagu:connector:houkatsu:C01", "urn:tsunagu:connector:houkatsu:C04"}


def test_broken_mapping_is_a_one_line_error(tmp_path: Path) -> None:
    """A mapping file that is not valid TOML stops the run with one line, not a traceback."""
    folder = tmp_path / "houkatsu"
    folder.mkdir()
    (folder / "bad.mapping.toml").write_text("this is = = not toml", encoding="utf-8")
    result = CliRunner().invoke(app, ["run", "--sources", str(tmp_path), "--once", "--export", str(tmp_path / "o"),
                                      "--quiet"])
    assert result.exit_code == 2
    assert "cannot read mapping bad.mapping.toml" in result.output
    assert "Traceback" not in result.output
