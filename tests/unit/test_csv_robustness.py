"""CSV feeds against hostile files: odd line endings, UTF-16, control characters, bad names, bad mappings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connectors.csv_export import read_csv
from connectors.houkatsu import COLUMNS as H_COLUMNS
from connectors.houkatsu import HoukatsuConnector
from connectors.jiritsu import COLUMNS as J_COLUMNS
from connectors.jiritsu import JiritsuConnector
from connectors.mapping import MappingError, load_mapping
from connectors.registry import COLUMNS as R_COLUMNS
from connectors.registry import RegistryConnector
from unit.test_csv_connectors import csv_bytes, dead, events, h_row, j_row, write_houkatsu

R_ROW = ["1000000001", "5000000001", "世帯主", "試験　花子", "シケン　ハナコ", "1980-01-02", "2", "中央1-1-1",
         "2024-04-01"]


def test_cr_only_line_endings_are_lines() -> None:
    """A file whose lines end in a bare CR (old Mac exports) is read record by record."""
    data = csv_bytes(["a", "b"], [["1", "山田"], ["2", "鈴木"]], newline="\r")
    recs = list(read_csv(data, "f.csv", encodings=["cp932"], required=["a", "b"]))
    assert [(r.line, r.error, r.values) for r in recs] == [
        (2, None, {"a": "1", "b": "山田"}),
        (3, None, {"a": "2", "b": "鈴木"}),
    ]


def test_cr_only_houkatsu_file_yields_its_cases(tmp_path: Path) -> None:
    """A houkatsu export with CR-only endings yields one case per row, not one dead letter."""
    folder = tmp_path / "h"
    folder.mkdir()
    data = csv_bytes(list(H_COLUMNS), [h_row(), h_row(受付番号="2025-0002")], newline="\r")
    (folder / "C09_soudan_20250401.csv").write_bytes(data)
    items = list(HoukatsuConnector(folder).read({}))
    assert dead(items) == []
    assert len(events(items)) == 2


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_bom_is_read(tmp_path: Path, encoding: str) -> None:
    """A UTF-16 export with a byte-order mark is read like UTF-8 (any byte order)."""
    text = csv_bytes(list(J_COLUMNS), [j_row(), j_row(相談受付番号="J25-0102")], encoding="utf-8", newline="\r\n")
    bom = {"utf-16": b"", "utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}[encoding]
    folder = tmp_path / "j"
    folder.mkdir()
    (folder / "jiritsu_202510.csv").write_bytes(bom + text.decode("utf-8").encode(encoding))
    items = list(JiritsuConnector(folder).read({}))
    assert dead(items) == []
    assert [e.sourcerecord for e in events(items)] == ["jiritsu:J25-0101", "jiritsu:J25-0102"]
    assert [i.checkpoint.position for i in items] == ["00000002", "00000003"]


def test_utf16_broken_line_is_only_that_line() -> None:
    """A lone UTF-16 surrogate spoils only its own line, which becomes an undecodable record."""
    good1 = "1,山田\r\n".encode("utf-16-le")
    bad = "2,".encode("utf-16-le") + b"\x00\xd8" + "\r\n".encode("utf-16-le")
    good2 = "3,佐藤".encode("utf-16-le") + b"\x00"  # and an odd trailing byte
    data = b"\xff\xfe" + "a,b\r\n".encode("utf-16-le") + good1 + bad + good2
    recs = list(read_csv(data, "f.csv", encodings=["cp932"], required=["a", "b"]))
    assert [(r.line, r.error) for r in recs] == [(2, None), (3, "undecodable bytes"), (4, "undecodable bytes")]
    assert recs[0].values == {"a": "1", "b": "山田"}


@pytest.mark.parametrize("bad", ["\x00", "\x07", "\x1b", "\x7f"])
def test_control_characters_in_a_name_are_a_dead_letter(tmp_path: Path, bad: str) -> None:
    """A NUL or other control character inside a name makes the row a dead letter naming the column only."""
    name = f"試験{bad}花子"
    write_houkatsu(tmp_path / "h", "C09_soudan_20250401.csv", [h_row(氏名=name), h_row(受付番号="2025-0002")])
    items = list(HoukatsuConnector(tmp_path / "h").read({}))
    [letter] = dead(items)
    assert letter.reason == "control character in 氏名"
    assert letter.record == "houkatsu:C09-2025-0001"
    assert "花子" not in letter.model_dump_json()
    assert len(events(items)) == 1


def test_nul_in_a_registry_name_is_a_dead_letter_in_utf8(tmp_path: Path) -> None:
    """NUL bytes in a UTF-8 registry snapshot are not accepted silently."""
    folder = tmp_path / "r"
    folder.mkdir()
    row = list(R_ROW)
    row[3] = "試験\x00\x00花子"
    (folder / "jumin.csv").write_bytes(csv_bytes(list(R_COLUMNS), [row], encoding="utf-8", newline="\n"))
    [item] = list(RegistryConnector(folder).read({}))
    assert item.dead_letter is not None and item.dead_letter.reason == "control character in 氏名"


def test_file_name_that_is_not_utf8_is_read_with_an_escaped_name(tmp_path: Path) -> None:
    """A matching file whose name is not UTF-8 is read; its scope and where are storable text."""
    from connectors.mapping import parse_mapping

    mapping = parse_mapping(
        {"feed": "houkatsu", "file_pattern": r"^C09_.*\.csv$", "encodings": ["cp932"]}, "test"
    )
    folder = tmp_path / "h"
    folder.mkdir()
    raw_name = b"C09_\xff\xfe.csv"
    data = csv_bytes(list(H_COLUMNS), [h_row(), h_row(受付番号="2025-0002", 生年月日="S99.99.99")])
    with open(os.path.join(os.fsencode(folder), raw_name), "wb") as f:
        f.write(data)
    items = list(HoukatsuConnector(os.fsencode(folder), mapping).read({}))  # type: ignore[arg-type]
    assert len(items) == 2
    for item in items:
        item.checkpoint.scope.encode("utf-8")  # storable
        assert item.checkpoint.scope == "C09_\\xff\\xfe.csv"
    letter = dead(items)[0]
    assert letter.where == "C09_\\xff\\xfe.csv:3"
    letter.to_json_bytes()
    events(items)[0].to_json_bytes()


def test_mapping_with_invalid_bytes_is_a_one_line_error(tmp_path: Path) -> None:
    """A mapping TOML that is not UTF-8 raises MappingError with one line naming the file, no traceback."""
    path = tmp_path / "c04.mapping.toml"
    path.write_bytes(b'name = "c04"\nfeed = "houkatsu"\nfile_pattern = "\xff\xfe"\n')
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    message = str(info.value)
    assert "\n" not in message and "c04.mapping.toml" in message
    assert "not UTF-8" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_mapping_with_a_nul_byte_is_a_one_line_error(tmp_path: Path) -> None:
    """A NUL in a mapping TOML is a MappingError too."""
    path = tmp_path / "c05.mapping.toml"
    path.write_bytes(b'name = "c05\x00"\nfeed = "houkatsu"\n')
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    assert "\n" not in str(info.value)


def test_unreadable_file_is_a_dead_letter_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that cannot be read (permission, I/O error) is one dead letter naming it; the next file still flows."""
    folder = tmp_path / "h"
    write_houkatsu(folder, "C09_soudan_20250401.csv", [h_row()])
    write_houkatsu(folder, "C09_soudan_20250402.csv", [h_row(受付番号="2025-0002")])
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "C09_soudan_20250401.csv":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    items = list(HoukatsuConnector(folder).read({}))
    [letter] = dead(items)
    assert letter.where == "C09_soudan_20250401.csv"
    assert letter.reason == "unreadable file (PermissionError)"
    assert [e.sourcerecord for e in events(items)] == ["houkatsu:C09-2025-0002"]


def test_registry_snapshot_with_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    """A registry snapshot matched by a mapping under a non-UTF-8 name gives storable scopes and events."""
    from connectors.mapping import parse_mapping

    mapping = parse_mapping({"feed": "registry", "file_pattern": r"^jumin.*\.csv$"}, "test")
    folder = tmp_path / "r"
    folder.mkdir()
    with open(os.path.join(os.fsencode(folder), b"jumin\xff.csv"), "wb") as f:
        f.write(csv_bytes(list(R_COLUMNS), [R_ROW], encoding="utf-8", newline="\n"))
    [item] = list(RegistryConnector(os.fsencode(folder), mapping).read({}))
    assert item.event is not None and item.checkpoint.scope.startswith("jumin\\xff.csv@")
    item.event.to_json_bytes()


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_is_recognised(encoding: str) -> None:
    """A UTF-16 registry snapshot without a byte-order mark (ASCII-heavy, so NULs every other byte) is read."""
    text = csv_bytes(list(R_COLUMNS), [R_ROW], encoding="utf-8", newline="\r\n").decode("utf-8")
    recs = list(read_csv(text.encode(encoding), "jumin.csv", encodings=["utf-8"], required=list(R_COLUMNS)))
    assert [(r.line, r.error) for r in recs] == [(2, None)]
    assert recs[0].values["氏名"] == "試験　花子"


def test_nul_bytes_in_a_cp932_line_are_not_taken_for_utf16() -> None:
    """A few NUL bytes in an ordinary file do not make it UTF-16; the row becomes a dead letter downstream."""
    data = csv_bytes(["a", "b"], [["1", "山田\x00"]], newline="\r\n")
    recs = list(read_csv(data, "f.csv", encodings=["cp932"], required=["a", "b"]))
    assert [(r.line, r.values["b"]) for r in recs] == [(2, "山田\x00")]
