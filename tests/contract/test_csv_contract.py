"""The connector contract for the three CSV feeds (registry, houkatsu, jiritsu)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Hashable
from pathlib import Path

import pytest

from connectors.contract import Connector
from connectors.houkatsu import COLUMNS as HOUKATSU_COLUMNS
from connectors.houkatsu import HoukatsuConnector
from connectors.jiritsu import COLUMNS as JIRITSU_COLUMNS
from connectors.jiritsu import JiritsuConnector
from connectors.registry import COLUMNS as REGISTRY_COLUMNS
from connectors.registry import RegistryConnector
from schemas.envelope import CloudEvent
from tests.contract.suite import SAMPLES_DIR, ConnectorContract, SourceKind

pytestmark = pytest.mark.skipif(not SAMPLES_DIR.is_dir(), reason="sample feeds not available")


def insert_lines(path: Path, after_line: int, lines: list[bytes], newline: bytes) -> None:
    """Insert raw lines after a 1-based line number of a file."""
    data = path.read_bytes()
    parts = data.split(newline)
    parts[after_line:after_line] = lines
    path.write_bytes(newline.join(parts))


def copy_feed(feed: str, tmp_path: Path) -> Path:
    dest = tmp_path / feed
    shutil.copytree(SAMPLES_DIR / feed, dest)
    return dest


class TestHoukatsuContract(ConnectorContract):
    def make_source(self, tmp_path: Path, kind: SourceKind) -> Path:
        if kind == "empty":
            folder = tmp_path / "houkatsu"
            folder.mkdir()
            (folder / "C01_soudan_20250401.csv").write_bytes(",".join(HOUKATSU_COLUMNS).encode("cp932") + b"\r\n")
            (folder / "C02_soudan_20250401.csv").write_bytes(b"")
            return folder
        folder = copy_feed("houkatsu", tmp_path)
        if kind == "broken":
            base = (
                "C03,2026-0098,R8.2.16,2026/02/16 12:00,,山田　花子,ﾔﾏﾀﾞ ﾊﾅｺ,{birth},女,本町1-1-1,,"
                "独居,介護保険,,対応中,,,"
            )
            insert_lines(
                folder / "C03_soudan_20260216.csv",
                2,
                [
                    base.format(birth="S99.99.99").encode("cp932"),  # impossible date
                    base.format(birth="S20.1.1").encode("cp932")[:-3],  # wrong column count
                    base.format(birth="S20.1.1").encode("cp932").replace("花子".encode("cp932"), b"\x81\x20"),
                ],
                b"\r\n",
            )
        return folder

    def make_connector(self, source: Path) -> Connector:
        return HoukatsuConnector(source)


class TestJiritsuContract(ConnectorContract):
    def make_source(self, tmp_path: Path, kind: SourceKind) -> Path:
        if kind == "empty":
            folder = tmp_path / "jiritsu"
            folder.mkdir()
            (folder / "jiritsu_202501.csv").write_bytes(b"\xef\xbb\xbf" + ",".join(JIRITSU_COLUMNS).encode() + b"\n")
            return folder
        folder = copy_feed("jiritsu", tmp_path)
        if kind == "broken":
            row = (
                "J26-0098,2026/04/10,2026/04/10,,石田　花,いしだ　はな,1990/01/01,女性,中央1-1-1,,"
                "電話,,住まい,{flag},,{status},"
            )
            insert_lines(
                folder / "jiritsu_202604.csv",
                2,
                [
                    row.format(flag="0", status="再開").encode(),  # unknown code in 支援状況
                    row.format(flag="1", status="インテーク").encode(),  # consent flag without 同意日
                    row.format(flag="0", status="インテーク").encode().replace("石田".encode(), b"\xff\xfe"),
                ],
                b"\n",
            )
        return folder

    def make_connector(self, source: Path) -> Connector:
        return JiritsuConnector(source)


class TestRegistryContract(ConnectorContract):
    def make_source(self, tmp_path: Path, kind: SourceKind) -> Path:
        if kind == "empty":
            folder = tmp_path / "registry"
            folder.mkdir()
            (folder / "jumin.csv").write_bytes(",".join(REGISTRY_COLUMNS).encode() + b"\n")
            return folder
        folder = copy_feed("registry", tmp_path)
        if kind == "broken":
            insert_lines(
                folder / "jumin.csv",
                10,
                [
                    "1099999991,5099999991,子,山田　花,ヤマダ　ハナ,1990-02-30,2,中央1-1-1,2024-04-01".encode(),
                    "1099999992,5099999992,子,山田　花".encode(),
                    "1099999993,5099999993,甥,山田　花,ヤマダ　ハナ,1990-02-03,2,中央1-1-1,2024-04-01".encode(),
                ],
                b"\n",
            )
        return folder

    def make_connector(self, source: Path) -> Connector:
        return RegistryConnector(source)

    def good_event_identity(self, event: CloudEvent) -> Hashable:
        # the snapshot (file name + content hash) legitimately changes with every line of the file
        data = {k: v for k, v in event.data.items() if k != "snapshot"}
        return (event.type, event.sourcerecord, event.time, json.dumps(data, sort_keys=True, ensure_ascii=False))


STD_SAMPLES = Path(__file__).resolve().parents[2] / "tests" / "data" / "registry_std"


class TestRegistryStandardLayoutContract(ConnectorContract):
    """The registry connector reading 住民記録 標準準拠システム extracts (full and out-of-order change)."""

    def make_source(self, tmp_path: Path, kind: SourceKind) -> Path:
        folder = tmp_path / "registry"
        folder.mkdir()
        header = (STD_SAMPLES / "jumin_std_20260601.csv").read_bytes().split(b"\r\n", 1)[0]
        if kind == "empty":
            (folder / "jumin_std_20260601.csv").write_bytes(header + b"\r\n")
            return folder
        for csv_file in STD_SAMPLES.glob("*.csv"):
            shutil.copy(csv_file, folder / csv_file.name)
        if kind == "broken":
            cells = header.decode("utf-8-sig").split(",")
            good = dict.fromkeys(cells, "")
            good.update({"宛名番号": "1099999991", "世帯番号": "5099999991", "住民状態": "1", "異動年月日": "20261020",
                         "氏名": "山田　花", "性別": "2", "生年月日": "19900203", "続柄コード1": "02"})

            def line(**kw: str) -> bytes:
                return ",".join({**good, **kw}[c] for c in cells).encode()

            insert_lines(
                folder / "jumin_ido_20261101.csv",
                3,
                [
                    line(生年月日="19900230"),  # impossible date
                    line(宛名番号="1099999992")[:-40],  # wrong column count
                    line(宛名番号="1099999993", 住民状態="7"),  # unknown code
                    line(宛名番号="1099999994", 続柄コード1="88"),  # unknown 続柄コード
                    line(宛名番号="1099999995", 異動年月日="2026-13-01"),  # impossible 異動年月日 (sorted first)
                ],
                b"\r\n",
            )
        return folder

    def make_connector(self, source: Path) -> Connector:
        return RegistryConnector(source)

    def good_event_identity(self, event: CloudEvent) -> Hashable:
        data = {k: v for k, v in event.data.items() if k != "snapshot"}
        return (event.type, event.sourcerecord, event.time, json.dumps(data, sort_keys=True, ensure_ascii=False))
