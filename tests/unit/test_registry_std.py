"""The registry connector's 住民記録 標準準拠システム layout: recognition, ordering, 不詳, names, canaries."""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from connectors.contract import Item
from connectors.csv_export import read_csv
from connectors.mapping import MappingError, default_mapping, load_mapping, parse_mapping
from connectors.registry import RegistryConnector
from connectors.runner import ConnectorRunner, ConnectorState
from schemas.codes import Relation, Sex
from schemas.compat import current_schemas
from schemas.events import ResidentObservedV1
from schemas.registry_codes import MoveReason, NamePreference, ResidentStatus

REPO = Path(__file__).resolve().parents[2]
STD_SAMPLES = REPO / "tests" / "data" / "registry_std"

MY_NUMBER = "731029384756"  # canary in the 個人番号 column
JUMINHYO_CODE = "50294837162"  # canary in the 住民票コード column

HEADER = [
    "宛名番号", "世帯番号", "個人番号", "住民票コード", "住民種別", "住民状態", "異動年月日", "異動年月日_不詳フラグ",
    "異動届出年月日", "異動事由", "氏名", "氏名_フリガナ", "氏名_外国人ローマ字", "氏名_外国人漢字", "旧氏",
    "旧氏_フリガナ", "通称", "通称_フリガナ", "氏名優先区分", "性別", "生年月日", "生年月日_不詳フラグ",
    "生年月日_不詳表記", "続柄コード1", "続柄コード2", "続柄コード3", "続柄コード4", "続柄表記",
    "住所_市区町村コード", "住所_町字コード", "住所_都道府県", "住所_市区郡町村名", "住所_町字", "住所_番地号表記",
    "住所_方書", "住所_郵便番号", "住民となった年月日",
]  # fmt: skip

DEFAULTS: dict[str, str] = {
    "宛名番号": "1000000001",
    "世帯番号": "5000000001",
    "個人番号": MY_NUMBER,
    "住民票コード": JUMINHYO_CODE,
    "住民種別": "1",
    "住民状態": "1",
    "異動年月日": "20240401",
    "異動届出年月日": "20240401",
    "異動事由": "01",
    "氏名": "試験　花子",
    "氏名_フリガナ": "シケン　ハナコ",
    "氏名優先区分": "1",
    "性別": "2",
    "生年月日": "19450102",
    "続柄コード1": "02",
    "住所_都道府県": "さくら県",
    "住所_市区郡町村名": "みなと市",
    "住所_町字": "中央一丁目",
    "住所_番地号表記": "2番3号",
    "住民となった年月日": "19450102",
}


def row(**kw: str) -> list[str]:
    cells = {**DEFAULTS, **kw}
    return [cells.get(h, "") for h in HEADER]


def extract(
    rows: list[list[str]], *, encoding: str = "utf-8", bom: bool = False, header: list[str] | None = None
) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header or HEADER)
    w.writerows(rows)
    return (b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode(encoding)


def write(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder


def read(folder: Path, checkpoints: dict[str, str] | None = None) -> list[Item]:
    return list(RegistryConnector(folder).read(checkpoints or {}))


def payloads(items: list[Item]) -> list[ResidentObservedV1]:
    return [ResidentObservedV1.model_validate(it.event.data) for it in items if it.event is not None]


def dead(items: list[Item]) -> list[str]:
    return [it.dead_letter.reason for it in items if it.dead_letter is not None]


# --- recognition ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "bom"), [("utf-8", True), ("utf-8", False), ("cp932", False)], ids=["utf8-bom", "utf8", "cp932"]
)
def test_standard_header_is_recognised_in_every_encoding(tmp_path: Path, encoding: str, bom: bool) -> None:
    """A 標準準拠 extract is read with the standard layout whether it is UTF-8 with or without BOM, or CP932."""
    husband = row(宛名番号="1000000002", 氏名="試験　太郎", 性別="1", 続柄コード1="11", 続柄表記="")
    data = extract([row(), husband], encoding=encoding, bom=bom)
    folder = write(tmp_path / "registry", "JUKI_KIHON_20260401.csv", data)
    items = read(folder)
    assert dead(items) == []
    first, second = payloads(items)
    assert first.resident.name == "試験　花子" and first.resident.kana == "シケン　ハナコ"
    assert first.status is ResidentStatus.RESIDENT and first.move_reason is MoveReason.MOVED_IN
    assert first.resident.relation is Relation.HEAD and second.resident.relation is Relation.HUSBAND
    assert second.resident.sex is Sex.MALE
    assert first.resident.address == "さくら県みなと市中央一丁目2番3号"


def test_both_layouts_side_by_side_and_a_standard_file_named_jumin_csv(tmp_path: Path) -> None:
    """The layout follows the header, not the name: jumin.csv in the standard layout is read as standard."""
    simplified = (
        "宛名番号,世帯番号,続柄,氏名,氏名カナ,生年月日,性別,住所,異動日\n"
        "1000000009,5000000009,世帯主,旧式　一郎,キュウシキ　イチロウ,1950-01-01,1,中央1-1-1,2024-04-01\n"
    )
    write(tmp_path / "a" / "registry", "jumin_20240401.csv", simplified.encode())
    folder = write(tmp_path / "a" / "registry", "kihon_20260401.csv", extract([row()]))
    got = payloads(read(folder))
    assert [p.resident.record for p in got] == ["registry:1000000009", "registry:1000000001"]
    assert got[0].status is None and got[1].status is ResidentStatus.RESIDENT

    renamed = write(tmp_path / "b" / "registry", "jumin.csv", extract([row()], bom=True))
    (only,) = payloads(read(renamed))
    assert only.status is ResidentStatus.RESIDENT


def test_unknown_header_is_one_dead_letter(tmp_path: Path) -> None:
    """A .csv whose header is neither layout is one dead letter naming what is missing, never silently skipped."""
    folder = write(tmp_path / "registry", "other_20260401.csv", "宛名番号,氏名\n1000000001,試験\n".encode())
    items = read(folder)
    assert len(items) == 1 and dead(items)[0].startswith("header lacks required columns")


# --- 個人番号 / 住民票コード ----------------------------------------------------------------------


def canary_extract() -> bytes:
    header = [*HEADER[:2], "個人番号（マイナンバー）", "住民票ｺｰﾄﾞ", *HEADER[4:]]
    good = row()
    bad_date = row(宛名番号="1000000002", 生年月日="19451302")
    short = row(宛名番号="1000000003")[:-3]
    unknown = row(宛名番号="1000000004", 住民状態="7")
    return extract([good, bad_date, short, unknown], header=header)


def test_forbidden_columns_never_reach_a_row(tmp_path: Path) -> None:
    """read_csv drops 個人番号 and 住民票コード columns with the header: no record's values hold them."""
    records = list(read_csv(canary_extract(), "x.csv", encodings=["utf-8"], required=["宛名番号"]))
    assert len(records) == 4
    for r in records:
        assert not any("番号（" in h or "ｺｰﾄﾞ" in h for h in r.values)
        assert MY_NUMBER not in repr(r) and JUMINHYO_CODE not in repr(r)
    assert records[2].error == "wrong column count (expected 37, got 34)"


def test_canaries_never_stored_logged_or_published(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Through the runner's outbox: no event, dead letter, outbox or checkpoint row and no log line holds a canary."""
    folder = write(tmp_path / "registry", "kihon_20260401.csv", canary_extract())
    state = ConnectorState(f"sqlite:///{tmp_path / 'state.sqlite'}")
    caplog.set_level(logging.DEBUG)
    structlog.get_logger("tsunagu.connector").info("canary test starts")
    with capture_logs() as logs:
        runner = ConnectorRunner(RegistryConnector(folder), state, None, intake_topic="in", deadletter_topic="dl")
        runner.read_into_outbox()
    from connectors.runner import OutboxRow

    with state.sessions() as s:
        rows = s.query(OutboxRow).all()
        published = [(r.key, r.value, r.scope, r.position) for r in rows]
    state.dispose()
    types = [json.loads(v)["type"] for _, v, _, _ in published]
    assert {t == "jp.tsunagu.deadletter.v1" for t in types} == {False, True}  # events and dead letters
    assert len(published) == 4
    reasons = sorted(json.loads(v)["data"]["detail"] for _, v, _, _ in published
                     if json.loads(v)["type"] == "jp.tsunagu.deadletter.v1")
    assert reasons == [
        "impossible date in 生年月日", "unknown code in 住民状態", "wrong column count (expected 37, got 34)"]
    everything = [repr(published), repr(logs), caplog.text]
    for path in tmp_path.rglob("state.sqlite*"):
        everything.append(path.read_bytes().decode("latin-1"))
    for canary in (MY_NUMBER, JUMINHYO_CODE):
        assert not any(canary in text for text in everything), canary


def test_a_mapping_pointing_at_a_forbidden_column_is_refused() -> None:
    """A mapping that names 個人番号 or 住民票コード as a column's header is an error when it is loaded."""
    doc = {"feed": "registry", "layout": "standard", "file_pattern": ".*", "columns": {"宛名番号": "住民票コード"}}
    with pytest.raises(MappingError, match="個人番号/住民票コード"):
        RegistryConnector(Path("/nonexistent"), parse_mapping(doc))


def test_no_event_schema_has_a_personal_number_property() -> None:
    """No published event version has a property for a マイナンバー or a 住民票コード."""
    def names(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [*node.get("properties", {}), *[n for v in node.values() for n in names(v)]]
        if isinstance(node, list):
            return [n for v in node for n in names(v)]
        return []

    found = {n for schema in current_schemas().values() for n in names(schema)}
    assert "resident_no" in found and "former_surname" in found
    assert not {n for n in found if any(w in n for w in ("my_number", "mynumber", "individual", "juminhyo", "card"))}


# --- change extracts ------------------------------------------------------------------------------


def test_change_extract_applies_in_move_date_order_and_resumes(tmp_path: Path) -> None:
    """Rows of a change extract become events in 異動年月日 order; a resume after any item yields exactly the rest."""
    rows = [
        row(異動年月日="20260915", 異動事由="13", 通称="中村　安男"),
        row(宛名番号="1000000002", 異動年月日="20260710", 住民状態="3", 異動事由="22"),
        row(異動年月日="20260901", 異動事由="01"),
        row(宛名番号="1000000003", 異動年月日="20260710", 異動事由="11"),
    ]
    folder = write(tmp_path / "registry", "ido_20261101.csv", extract(rows))
    items = read(folder)
    got = [(p.resident.record, p.moved_on, p.move_reason) for p in payloads(items)]
    assert got == [
        ("registry:1000000002", date(2026, 7, 10), MoveReason.DIED),
        ("registry:1000000003", date(2026, 7, 10), MoveReason.MOVED_WITHIN),
        ("registry:1000000001", date(2026, 9, 1), MoveReason.MOVED_IN),
        ("registry:1000000001", date(2026, 9, 15), MoveReason.NAME_CHANGED),
    ]
    assert [it.checkpoint.position for it in items] == ["00000001", "00000002", "00000003", "00000004"]
    assert [it.event.time.date() for it in items if it.event] == [d for _, d, _ in got]
    for k in range(len(items) + 1):
        cps = {it.checkpoint.scope: it.checkpoint.position for it in items[:k]}
        assert read(folder, cps) == items[k:]


def test_removed_residents_carry_status_and_date(tmp_path: Path) -> None:
    """転出 and 死亡 rows say the status and its date; 住民 rows date their status by 住民となった年月日."""
    folder = write(tmp_path / "registry", "ido_20261101.csv", extract([
        row(住民状態="2", 異動年月日="20260630", 異動事由="21"),
        row(宛名番号="1000000002", 住民状態="死亡者", 異動年月日="20260710", 異動事由="死亡"),
        row(宛名番号="1000000003", 住民となった年月日="20100401"),
    ]))  # fmt: skip
    items = read(folder)
    moved, died, resident = payloads(items)
    # one row per person: nothing to reorder, the file is streamed and positions are line numbers
    assert [it.checkpoint.position for it in items] == ["00000002", "00000003", "00000004"]
    assert (moved.status, moved.status_on) == (ResidentStatus.MOVED_OUT, date(2026, 6, 30))
    assert (died.status, died.status_on) == (ResidentStatus.DECEASED, date(2026, 7, 10))
    assert died.move_reason is MoveReason.DIED
    assert died.status.is_removed and not resident.status.is_removed  # type: ignore[union-attr]
    assert resident.status_on == date(2010, 4, 1)


# --- 不詳 dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cells",
    [
        {"生年月日": "", "生年月日_不詳フラグ": "1", "生年月日_不詳表記": "昭和23年（月日不詳）"},
        {"生年月日": "19480000", "生年月日_不詳フラグ": "1"},
        {"生年月日": "", "生年月日_不詳表記": "不詳"},
    ],
    ids=["flag-and-text", "flag-with-partial-date", "text-only"],
)
def test_unknown_birth_date_is_no_birth_date_not_a_bad_row(tmp_path: Path, cells: dict[str, str]) -> None:
    """A 不詳 birth date gives no birth date and birth_date_unknown, and the row flows."""
    folder = write(tmp_path / "registry", "kihon_20260401.csv", extract([row(**cells)]))
    items = read(folder)
    assert dead(items) == []
    (p,) = payloads(items)
    assert p.resident.birth_date is None and p.birth_date_unknown


def test_impossible_birth_date_without_flag_is_still_a_dead_letter(tmp_path: Path) -> None:
    """Without a 不詳 flag, an impossible birth date stays a data error; an unknown flag value is one too."""
    folder = write(tmp_path / "registry", "kihon_20260401.csv", extract(
        [row(生年月日="19480000"), row(宛名番号="1000000002", 生年月日_不詳フラグ="X")]))  # fmt: skip
    assert sorted(dead(read(folder))) == ["impossible date in 生年月日", "unknown code in 生年月日_不詳フラグ"]


def test_unknown_move_date_falls_back_to_the_notification_date(tmp_path: Path) -> None:
    """An 異動年月日 不詳 row is timed by its 異動届出年月日; with neither date it is a dead letter."""
    folder = write(tmp_path / "registry", "kihon_20260401.csv", extract([
        row(異動年月日="", 異動年月日_不詳フラグ="1", 異動届出年月日="20200105"),
        row(宛名番号="1000000002", 異動年月日="", 異動年月日_不詳フラグ="1", 異動届出年月日=""),
    ]))  # fmt: skip
    items = read(folder)
    assert dead(items) == ["empty 異動年月日"]
    (p,) = payloads(items)
    assert p.moved_on is None and p.notified_on == date(2020, 1, 5)
    assert next(it.event for it in items if it.event).time.date() == date(2020, 1, 5)  # type: ignore[union-attr]


def test_zero_padded_15_digit_numbers_are_read_as_10_digits(tmp_path: Path) -> None:
    """A 宛名番号/世帯番号 padded to 15 digits is its 10 digits; any other length is a malformed number."""
    folder = write(tmp_path / "registry", "kihon_20260401.csv", extract([
        row(宛名番号="000001000000001", 世帯番号="000005000000001"),
        row(宛名番号="123451000000002"),
    ]))  # fmt: skip
    items = read(folder)
    assert dead(items) == ["malformed 宛名番号"]
    (p,) = payloads(items)
    assert (p.resident.record, p.resident.household_no) == ("registry:1000000001", "5000000001")


# --- 続柄, names, addresses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ({"続柄コード1": "2"}, Relation.HEAD),
        ({"続柄コード1": "２０"}, Relation.CHILD),
        ({"続柄コード1": "20", "続柄コード2": "10"}, Relation.DAUGHTER_IN_LAW),
        ({"続柄コード1": "20", "続柄コード2": "20"}, Relation.GRANDCHILD),
        ({"続柄コード1": "10", "続柄コード2": "31"}, Relation.OTHER),
        ({"続柄コード1": "20", "続柄表記": "長男"}, Relation.ELDEST_SON),
        ({"続柄コード1": "70"}, Relation.LODGER),
    ],
)
def test_relation_codes(tmp_path: Path, cells: dict[str, str], expected: Relation) -> None:
    """続柄コード1–4 are read as a chain through the mapping's code table; a known 続柄表記 wins."""
    folder = write(tmp_path / "registry", "kihon_20260401.csv", extract([row(**cells)]))
    (p,) = payloads(read(folder))
    assert p.resident.relation is expected


def test_unknown_relation_code_is_a_dead_letter(tmp_path: Path) -> None:
    """A 続柄コード no table knows dead-letters the row, naming the column only."""
    folder = write(tmp_path / "registry", "kihon_20260401.csv", extract([row(続柄コード1="20", 続柄コード2="88")]))
    assert dead(read(folder)) == ["unknown code in 続柄コード2"]


def test_names_former_surname_alias_foreign_and_mj_glyphs_kept_as_given(tmp_path: Path) -> None:
    """旧氏, 通称, foreign names and MJ+ glyphs (IVS, plane-16 private use) reach the event exactly as written."""
    ivs_name = "辻\U000e0101\u3000和\U00100400"
    folder = write(tmp_path / "registry", "kihon_20260401.csv", extract([
        row(旧氏="佐藤", 旧氏_フリガナ="サトウ", 氏名優先区分="3"),
        row(宛名番号="1000000002", 住民種別="2", 氏名="", 氏名_外国人ローマ字="WANG XIUYING", 氏名優先区分="2",
            氏名_外国人漢字="王\u3000秀英", 通称="大山\u3000秀子", 通称_フリガナ="オオヤマ\u3000ヒデコ"),
        row(宛名番号="1000000003", 氏名=ivs_name),
    ]))  # fmt: skip
    items = read(folder)
    married, foreign, glyphs = payloads(items)
    assert (married.former_surname, married.former_surname_kana) == ("佐藤", "サトウ")
    assert married.name_preference is NamePreference.FORMER_SURNAME
    assert foreign.resident.name == "王\u3000秀英"  # no 氏名: the kanji name, else the alphabet name
    assert (foreign.foreign_name_alphabet, foreign.alias_name, foreign.alias_kana) == (
        "WANG XIUYING", "大山\u3000秀子", "オオヤマ\u3000ヒデコ")
    assert foreign.name_preference is NamePreference.ALIAS
    assert glyphs.resident.name == ivs_name and glyphs.resident.family_name == "辻\U000e0101"
    event = next(it.event for it in items if it.event and it.event.sourcerecord == "registry:1000000003")
    assert json.loads(event.to_json_bytes())["data"]["resident"]["name"] == ivs_name  # type: ignore[union-attr]


def test_cp932_gaiji_are_kept_as_private_use_characters(tmp_path: Path) -> None:
    """A CP932 extract's 外字 (user-defined area F040–F9FC) reaches the event as its BMP private-use character."""
    folder = write(tmp_path / "registry", "kihon_20260401.csv", extract([row(氏名="試験　\ue000子")], encoding="cp932"))
    (p,) = payloads(read(folder))
    assert p.resident.name == "試験　\ue000子"


def test_address_from_codes_through_the_mapping_and_building_apart(tmp_path: Path) -> None:
    """Without written place names the mapping's code tables give them; 方書 stays out of the address."""
    doc = {
        "name": "vendor-x", "feed": "registry", "layout": "standard", "file_pattern": r"^x_(?P<date>\d{8})\.csv$",
        "columns": {"氏名": "漢字氏名", "宛名番号": "宛名ＮＯ"},
        "codes": {"住民状態": {"01": "住民"}, "住所_市区町村コード": {"999999": "さくら県みなと市"},
                  "住所_町字コード": {"0001001": "中央一丁目"}, "続柄コード": {"02": "世帯主"}},
    }  # fmt: skip
    header = [{"宛名番号": "宛名ＮＯ", "氏名": "漢字氏名"}.get(h, h) for h in HEADER]
    cells = row(住民状態="01", 異動事由="転入", 氏名優先区分="", 住所_都道府県="", 住所_市区郡町村名="", 住所_町字="",
                住所_市区町村コード="999999", 住所_町字コード="0001001", 住所_方書="みなとハイツ２０１")  # fmt: skip
    folder = write(tmp_path / "registry", "x_20260401.csv", extract([cells], header=header))
    mapping = parse_mapping(doc)
    items = list(RegistryConnector(folder, [mapping]).read({}))
    assert dead(items) == []
    (p,) = payloads(items)
    assert p.resident.name == "試験　花子" and p.resident.resident_no == "1000000001"
    assert p.resident.address == "さくら県みなと市中央一丁目2番3号"
    assert p.address_building == "みなとハイツ２０１"


def test_built_in_mapping_loads_and_a_vendor_copy_is_onboarded(tmp_path: Path) -> None:
    """The shipped registry_std.toml is a valid standard-layout mapping; a municipality's edited copy loads too."""
    builtin = default_mapping("registry_std")
    assert builtin.layout == "standard" and builtin.label("続柄コード", "02") == "世帯主"
    text = (REPO / "connectors" / "mappings" / "registry_std.toml").read_text(encoding="utf-8")
    own = tmp_path / "vendor.mapping.toml"
    own.write_text(text.replace('"氏名" = "氏名"', '"氏名" = "氏名_漢字"'), encoding="utf-8")
    assert load_mapping(own).header("氏名") == "氏名_漢字"


def test_a_file_is_hashed_once_not_once_per_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The snapshot hash of a file is computed once however many rows it has (reading stays linear)."""
    import connectors.registry as registry

    calls: list[int] = []
    real = registry.file_digest
    monkeypatch.setattr(registry, "file_digest", lambda data: calls.append(len(data)) or real(data))
    registry.snapshot_digest.cache_clear()
    rows = [row(宛名番号=f"{1000000001 + i}") for i in range(40)]
    items = read(write(tmp_path / "registry", "kihon_20260401.csv", extract(rows)))
    assert len(payloads(items)) == 40 and len(calls) == 1


# --- the sample ----------------------------------------------------------------------------------


def test_standard_sample_matches_jumin_csv_residents() -> None:
    """Every jumin.csv resident is in the standard sample with the same household, relation, birth date and sex."""
    with (REPO / "hub" / "samples" / "registry" / "jumin.csv").open(encoding="utf-8") as f:
        jumin = {r["宛名番号"]: r for r in csv.DictReader(f)}
    items = read(STD_SAMPLES)
    assert dead(items) == []
    latest: dict[str, ResidentObservedV1] = {}
    for p in payloads(items):
        latest[p.resident.resident_no or ""] = p
    assert set(jumin) < set(latest)
    for no, r in jumin.items():
        p = latest[no]
        assert p.resident.household_no == r["世帯番号"]
        assert p.resident.birth_date == date.fromisoformat(r["生年月日"])
        assert p.resident.sex is (Sex.MALE if r["性別"] == "1" else Sex.FEMALE)
        if no != "1055433778":  # 世帯主変更 after her mother's death
            assert p.resident.relation is not None and p.resident.relation.value == {
                "世帯主": "head", "妻": "wife", "子": "child", "母": "mother"}[r["続柄"]]
    assert latest["1055433743"].status is ResidentStatus.DECEASED
    assert latest["1099000041"].alias_name == "中村\u3000安男"  # its change rows arrive out of order


def test_standard_sample_generator_is_up_to_date() -> None:
    """The committed standard-layout sample is what tests/data/make_registry_std.py generates."""
    import runpy

    module = runpy.run_path(str(REPO / "tests" / "data" / "make_registry_std.py"))
    for name, data in module["build"]().items():
        assert (STD_SAMPLES / name).read_bytes() == data, name
