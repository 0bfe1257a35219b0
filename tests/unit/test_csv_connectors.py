"""CSV connectors (registry, houkatsu, jiritsu): reading, mapping, events and dead letters."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.contract import Item
from connectors.csv_export import read_csv
from connectors.houkatsu import COLUMNS as H_COLUMNS
from connectors.houkatsu import HoukatsuConnector, parse_household
from connectors.jiritsu import COLUMNS as J_COLUMNS
from connectors.jiritsu import JiritsuConnector
from connectors.mapping import MappingError, default_mapping, load_mapping, parse_mapping
from connectors.registry import COLUMNS as R_COLUMNS
from connectors.registry import RegistryConnector
from schemas.codes import CaseStatus, MemberNote, ReferralTarget, Relation, Sex, Topic
from schemas.deadletter import DeadLetter
from schemas.envelope import CloudEvent
from schemas.events import CaseV1, ConsentV1, ReferralRequestedV1, ResidentObservedV1
from schemas.wareki import JST

# Dead-letter reasons are fixed phrases: column names, counts, nothing from a cell.
REASON = re.compile(
    r"^(impossible date in [^\s]+( [^\s]+)?|empty [^\s]+|empty name|empty name in 同居家族|empty 続柄 in 同居家族"
    r"|unknown code in [^\s]+( [^\s]+)?|malformed [^\s]+|malformed entry in 同居家族|undecodable bytes"
    r"|wrong column count \(expected \d+, got \d+\)|情報共有同意 without 同意日|unterminated quoted field"
    r"|header lacks required columns: .+|undecodable header|schema validation failed at .+)$"
)


# --- helpers ------------------------------------------------------------------------------------


def csv_bytes(
    header: list[str], rows: list[list[str]], *, encoding: str = "cp932", newline: str = "\r\n", bom: bool = False
) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=newline)
    w.writerow(header)
    w.writerows(rows)
    return (b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode(encoding)


H_DEFAULTS: dict[str, str] = {
    "センターコード": "C09",
    "受付番号": "2025-0001",
    "受付日": "R7.4.1",
    "更新日時": "2025/04/01 10:00",
    "宛名番号": "",
    "氏名": "試験　花子",
    "氏名カナ": "ｼｹﾝ ﾊﾅｺ",
    "生年月日": "S20.1.2",
    "性別": "女",
    "住所": "中央1-1-1",
    "電話番号": "",
    "世帯状況": "独居",
    "相談区分": "介護保険",
    "相談概要": "概要",
    "対応状況": "対応中",
    "つなぎ先": "",
    "終結日": "",
    "同居家族": "",
}

J_DEFAULTS: dict[str, str] = {
    "相談受付番号": "J25-0101",
    "受付日": "2025/10/01",
    "更新日": "2025/10/01",
    "宛名番号": "",
    "氏名": "試験　太郎",
    "ふりがな": "しけん　たろう",
    "生年月日": "1970/01/02",
    "性別": "男性",
    "住所": "中央1-1-1",
    "電話": "",
    "相談経路": "本人来所",
    "紹介元": "",
    "主訴": "住まい",
    "情報共有同意": "0",
    "同意日": "",
    "支援状況": "インテーク",
    "終結日": "",
}


def h_row(**kw: str) -> list[str]:
    values = {**H_DEFAULTS, **kw}
    return [values[c] for c in H_COLUMNS]


def j_row(**kw: str) -> list[str]:
    values = {**J_DEFAULTS, **kw}
    return [values[c] for c in J_COLUMNS]


def write_houkatsu(folder: Path, name: str, rows: list[list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(csv_bytes(list(H_COLUMNS), rows))
    return path


def write_jiritsu(folder: Path, name: str, rows: list[list[str]], *, bom: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(csv_bytes(list(J_COLUMNS), rows, encoding="utf-8", newline="\n", bom=bom))
    return path


def events(items: list[Item]) -> list[CloudEvent]:
    return [i.event for i in items if i.event is not None]


def dead(items: list[Item]) -> list[DeadLetter]:
    return [i.dead_letter for i in items if i.dead_letter is not None]


def cases(items: list[Item]) -> list[CaseV1]:
    return [CaseV1.model_validate(e.data) for e in events(items) if e.type.startswith("jp.tsunagu.case.")]


def one_case(items: list[Item]) -> CaseV1:
    found = cases(items)
    assert len(found) == 1, [d.reason for d in dead(items)]
    return found[0]


def houkatsu(tmp_path: Path, *rows: list[str]) -> list[Item]:
    write_houkatsu(tmp_path / "h", "C09_soudan_20250401.csv", list(rows))
    return list(HoukatsuConnector(tmp_path / "h").read({}))


def jiritsu(tmp_path: Path, *rows: list[str]) -> list[Item]:
    write_jiritsu(tmp_path / "j", "jiritsu_202510.csv", list(rows))
    return list(JiritsuConnector(tmp_path / "j").read({}))


# --- read_csv -----------------------------------------------------------------------------------


def test_cp932_crlf_undecodable_line_is_only_that_line() -> None:
    header = ["a", "b"]
    data = csv_bytes(header, [["1", "山田"], ["2", "鈴木"], ["3", "佐藤"]])
    lines = data.split(b"\r\n")
    lines[2] = b"2,\x81\x20\xff"  # a lead byte without its trail byte
    recs = list(read_csv(b"\r\n".join(lines), "f.csv", encodings=["cp932"], required=header))
    assert [(r.line, r.error) for r in recs] == [(2, None), (3, "undecodable bytes"), (4, None)]
    assert recs[0].values == {"a": "1", "b": "山田"}
    assert recs[2].values == {"a": "3", "b": "佐藤"}
    assert recs[1].values["a"] == "2"  # best effort, for the record key only
    assert recs[1].where == "f.csv:3" and recs[1].position == "00000003"


def test_utf8_bom_wins_and_lf() -> None:
    data = csv_bytes(["列", "名"], [["一", "二"]], encoding="utf-8", newline="\n", bom=True)
    recs = list(read_csv(data, "f.csv", encodings=["cp932"], required=["列", "名"]))
    assert [(r.line, dict(r.values), r.error) for r in recs] == [(2, {"列": "一", "名": "二"}, None)]


def test_utf8_without_bom_falls_back_when_cp932_header_does_not_match() -> None:
    data = csv_bytes(["受付番号", "氏名"], [["1", "髙橋"]], encoding="utf-8")
    recs = list(read_csv(data, "f.csv", encodings=["cp932", "utf-8"], required=["受付番号", "氏名"]))
    assert [dict(r.values) for r in recs] == [{"受付番号": "1", "氏名": "髙橋"}]


def test_wrong_column_count_and_header_problems() -> None:
    data = b"a,b,c\n1,2,3\n1,2\n1,2,3,4\n"
    recs = list(read_csv(data, "f.csv", encodings=["utf-8"], required=["a", "b", "c"]))
    assert [r.error for r in recs] == [
        None,
        "wrong column count (expected 3, got 2)",
        "wrong column count (expected 3, got 4)",
    ]
    bad = list(read_csv(data, "f.csv", encodings=["utf-8"], required=["a", "x"]))
    assert [(r.line, r.error) for r in bad] == [(1, "header lacks required columns: x")]
    assert list(read_csv(data, "f.csv", encodings=["utf-8"], required=["a", "x"], after_line=1)) == []


def test_quoted_newlines_blank_lines_and_resume() -> None:
    data = b'a,b\r\n1,"two\r\nlines"\r\n\r\n3,x\r\n4,"open\r\n5,y\r\n'
    recs = list(read_csv(data, "f.csv", encodings=["utf-8"], required=["a", "b"]))
    assert [(r.line, r.error) for r in recs] == [
        (2, None),
        (5, None),
        (6, "unterminated quoted field"),
        (7, None),
    ]
    assert recs[0].values["b"] == "two\nlines"
    resumed = list(read_csv(data, "f.csv", encodings=["utf-8"], required=["a", "b"], after_line=5))
    assert [r.line for r in resumed] == [6, 7]


def test_empty_and_header_only_files_yield_nothing() -> None:
    assert list(read_csv(b"", "f.csv", encodings=["utf-8"], required=["a"])) == []
    assert list(read_csv(b"a,b\r\n", "f.csv", encodings=["utf-8"], required=["a"])) == []


# --- houkatsu: 和暦 and dates --------------------------------------------------------------------

SPELLINGS = [
    ("S19.05.03", date(1944, 5, 3)),
    ("S19.5.3", date(1944, 5, 3)),
    ("昭和19年5月3日", date(1944, 5, 3)),
    ("昭和１９年５月３日", date(1944, 5, 3)),
    ("H2.1.5", date(1990, 1, 5)),
    ("平成2年1月5日", date(1990, 1, 5)),
    ("R6.04.01", date(2024, 4, 1)),
    ("R06.04.01", date(2024, 4, 1)),
    ("令和元年5月1日", date(2019, 5, 1)),
    ("令和６年４月１日", date(2024, 4, 1)),
    ("1944/05/03", date(1944, 5, 3)),
    ("19440503", date(1944, 5, 3)),
    ("1944-05-03", date(1944, 5, 3)),
    ("１９４４／０５／０３", date(1944, 5, 3)),
]


@pytest.mark.parametrize(("text", "expected"), SPELLINGS)
def test_houkatsu_every_date_spelling_in_every_date_column(tmp_path: Path, text: str, expected: date) -> None:
    items = houkatsu(
        tmp_path,
        h_row(
            受付日=text,
            生年月日=text,
            対応状況="終結",
            終結日=text,
            更新日時="2026/01/05 09:00",
            同居家族=f"長男:試験一郎:{text}:",
        ),
    )
    case = one_case(items)
    assert case.opened_on == expected
    assert case.closed_on == expected
    assert case.subject.birth_date == expected
    assert case.household_members[0].person.birth_date == expected


@pytest.mark.parametrize("column", ["受付日", "生年月日", "終結日", "更新日時"])
@pytest.mark.parametrize("text", ["R7.13.45", "S20.02.30", "H31.5.1", "昭和", "2025/02/29 10:00"])
def test_houkatsu_impossible_dates_are_dead_letters_without_the_value(tmp_path: Path, column: str, text: str) -> None:
    items = houkatsu(tmp_path, h_row(**{column: text}), h_row(受付番号="2025-0002"))
    [dl] = dead(items)
    assert dl.reason == f"impossible date in {column}"
    assert dl.where == "C09_soudan_20250401.csv:2"
    assert dl.record == "houkatsu:C09-2025-0001"
    assert text not in dl.model_dump_json()
    assert [c.case for c in cases(items)] == ["houkatsu:C09-2025-0002"]  # the rest flows


def test_houkatsu_update_time_is_jst_and_event_fields(tmp_path: Path) -> None:
    items = houkatsu(tmp_path, h_row(宛名番号="１０５５４３３００６", 相談区分="介護保険;認知症;介護保険"))
    [item] = items
    ev = item.event
    assert ev is not None
    assert ev.type == "jp.tsunagu.case.opened.v1"
    assert ev.time == datetime(2025, 4, 1, 10, 0, tzinfo=JST) and ev.time.utcoffset() == JST.utcoffset(None)
    assert ev.source == "urn:tsunagu:connector:houkatsu:C09"
    assert ev.sourcerecord == item.key == "houkatsu:C09-2025-0001"
    assert ev.field is not None and ev.field.value == "elderly"
    assert item.checkpoint.scope == "C09_soudan_20250401.csv" and item.checkpoint.position == "00000002"
    case = CaseV1.model_validate(ev.data)
    assert case.agency == "C09"
    assert case.topics == [Topic.LONG_TERM_CARE, Topic.DEMENTIA]
    assert case.subject.resident_no == "1055433006"
    assert case.subject.sex is Sex.FEMALE
    assert (case.subject.family_name, case.subject.given_name) == ("試験", "花子")
    assert case.sensitive.summary == "概要"
    assert case.revision == "2025-04-01T10:00:00+09:00"


def test_houkatsu_change_kind_and_referral(tmp_path: Path) -> None:
    items = houkatsu(
        tmp_path,
        h_row(),
        h_row(更新日時="2025/05/01 09:00", 対応状況="継続支援"),
        h_row(更新日時="2025/06/01 09:00", 対応状況="他機関へつなぎ", つなぎ先="自立相談"),
        h_row(更新日時="2025/07/01 09:00", 対応状況="終結", 終結日="令和7年7月1日"),
    )
    types = [e.type.rsplit(".", 2)[-2] for e in events(items)]
    assert types == ["opened", "updated", "updated", "requested", "closed"]
    case_ev, ref_ev = events(items)[2:4]
    assert items[2].checkpoint == items[3].checkpoint
    assert case_ev.id != ref_ev.id and ref_ev.time == case_ev.time
    referral = ReferralRequestedV1.model_validate(ref_ev.data)
    assert referral.to is ReferralTarget.LIVELIHOOD and referral.requested_on == date(2025, 6, 1)
    assert CaseV1.model_validate(case_ev.data).referral_to is ReferralTarget.LIVELIHOOD
    assert CaseV1.model_validate(events(items)[-1].data).status is CaseStatus.CLOSED


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"氏名": ""}, "empty name"),
        ({"氏名": "　"}, "empty name"),
        ({"相談区分": "介護保険;年金"}, "unknown code in 相談区分"),
        ({"対応状況": "保留"}, "unknown code in 対応状況"),
        ({"対応状況": "他機関へつなぎ"}, "empty つなぎ先"),
        ({"対応状況": "他機関へつなぎ", "つなぎ先": "警察"}, "unknown code in つなぎ先"),
        ({"性別": "X"}, "unknown code in 性別"),
        ({"世帯状況": "大家族"}, "unknown code in 世帯状況"),
        ({"宛名番号": "12345"}, "malformed 宛名番号"),
        ({"同居家族": "叔父:試験次郎::"}, "unknown code in 同居家族 続柄"),
    ],
)
def test_houkatsu_bad_rows(tmp_path: Path, kw: dict[str, str], reason: str) -> None:
    [item] = houkatsu(tmp_path, h_row(**kw))
    assert item.dead_letter is not None
    assert item.dead_letter.reason == reason
    assert item.key == item.dead_letter.record == "houkatsu:C09-2025-0001"
    assert REASON.fullmatch(reason)


def test_houkatsu_bad_key_has_no_record(tmp_path: Path) -> None:
    [item] = houkatsu(tmp_path, h_row(受付番号=""))
    assert item.dead_letter is not None and item.dead_letter.record is None and item.key is None


def test_houkatsu_variant_spellings_of_status_are_unknown_without_a_mapping(tmp_path: Path) -> None:
    [item] = houkatsu(tmp_path, h_row(対応状況="対応中(継続)"))
    assert item.dead_letter is not None and item.dead_letter.reason == "unknown code in 対応状況"


# --- houkatsu: 同居家族 ---------------------------------------------------------------------------

KEY = "houkatsu:C09-2025-0001"


def test_household_empty() -> None:
    assert parse_household("", KEY) == []
    assert parse_household("  ", KEY) == []


def test_household_one_entry() -> None:
    [m] = parse_household("妻:千葉文子:S13.08.20:就労中", KEY)
    assert m.person.record == f"{KEY}:family:1"
    assert m.person.relation is Relation.WIFE
    assert m.person.name == "千葉文子" and m.person.birth_date == date(1938, 8, 20)
    assert m.notes == [MemberNote.EMPLOYED] and m.notes_text is None


def test_household_several_entries_with_empty_notes_and_blank_entries() -> None:
    text = "長男:斉木 俊介:S61.7.11:／嫁:斉木智子:S61.3.25:就労中／／孫:斉木 結菜:R03.01.31:／"
    members = parse_household(text, KEY)
    assert [m.person.record for m in members] == [f"{KEY}:family:{n}" for n in (1, 2, 3)]
    assert [m.person.relation for m in members] == [Relation.ELDEST_SON, Relation.DAUGHTER_IN_LAW, Relation.GRANDCHILD]
    assert [m.notes for m in members] == [[], [MemberNote.EMPLOYED], []]
    assert (members[0].person.family_name, members[0].person.given_name) == ("斉木", "俊介")
    assert members[2].person.birth_date == date(2021, 1, 31)


def test_household_entry_without_birth_or_notes_and_unknown_words() -> None:
    [a, b] = parse_household("長女:鈴木香織／長男:鈴木誠::ひきこもり・無職 通院中", KEY)
    assert a.person.birth_date is None and a.notes == []
    assert b.notes == [MemberNote.HIKIKOMORI, MemberNote.UNEMPLOYED]
    assert b.notes_text == "通院中"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("叔父:試験次郎:S20.1.1:", "unknown code in 同居家族 続柄"),
        (":試験次郎:S20.1.1:", "empty 続柄 in 同居家族"),
        ("長男::S20.1.1:", "empty name in 同居家族"),
        ("長男", "malformed entry in 同居家族"),
        ("長男:試験次郎:S20.13.1:", "impossible date in 同居家族 生年月日"),
    ],
)
def test_household_bad_entries(text: str, reason: str) -> None:
    from connectors.csv_export import RowError

    with pytest.raises(RowError) as exc:
        parse_household(f"妻:試験花子::／{text}", KEY)
    assert exc.value.reason == reason


# --- houkatsu: files, order, encodings, resume --------------------------------------------------


def test_houkatsu_files_sorted_by_date_then_centre(tmp_path: Path) -> None:
    folder = tmp_path / "h"
    write_houkatsu(folder, "C01_soudan_20250402.csv", [h_row(センターコード="C01", 受付番号="2025-0002")])
    write_houkatsu(folder, "C02_soudan_20250401.csv", [h_row(センターコード="C02", 受付番号="2025-0001")])
    write_houkatsu(folder, "C01_soudan_20250401.csv", [h_row(センターコード="C01", 受付番号="2025-0001")])
    (folder / "notes.txt").write_text("ignored")
    scopes = [i.checkpoint.scope for i in HoukatsuConnector(folder).read({})]
    assert scopes == ["C01_soudan_20250401.csv", "C02_soudan_20250401.csv", "C01_soudan_20250402.csv"]


def test_houkatsu_resume_skips_done_files_and_read_lines(tmp_path: Path) -> None:
    folder = tmp_path / "h"
    write_houkatsu(folder, "C01_soudan_20250401.csv", [h_row(受付番号="2025-0001"), h_row(受付番号="2025-0002")])
    write_houkatsu(folder, "C01_soudan_20250402.csv", [h_row(受付番号="2025-0003")])
    conn = HoukatsuConnector(folder)
    full = list(conn.read({}))
    assert list(conn.read({"C01_soudan_20250401.csv": "00000002"})) == full[1:]
    assert list(conn.read({"C01_soudan_20250401.csv": "done"})) == full[2:]
    assert list(conn.read({"C01_soudan_20250401.csv": "done", "C01_soudan_20250402.csv": "00000002"})) == []


def test_houkatsu_file_in_utf8_is_still_read(tmp_path: Path) -> None:
    folder = tmp_path / "h"
    folder.mkdir()
    (folder / "C09_soudan_20250401.csv").write_bytes(csv_bytes(list(H_COLUMNS), [h_row()], encoding="utf-8"))
    assert one_case(list(HoukatsuConnector(folder).read({}))).subject.name == "試験　花子"


def test_houkatsu_ids_are_stable_and_depend_on_content(tmp_path: Path) -> None:
    a = events(houkatsu(tmp_path / "a", h_row()))
    b = events(houkatsu(tmp_path / "b", h_row()))
    c = events(houkatsu(tmp_path / "c", h_row(住所="中央1-1-2")))
    assert a[0].id == b[0].id != c[0].id


# --- TOML mapping: a second centre with another layout -------------------------------------------

VARIANT_TOML = r"""
name = "houkatsu-c04"
feed = "houkatsu"
file_pattern = '^soudan_(?P<centre>C04)_(?P<date>\d{8})\.csv$'
encodings = ["cp932"]

[columns]
"受付番号" = "相談No"
"受付日" = "受付年月日"
"更新日時" = "最終更新"
"氏名" = "相談者氏名"
"氏名カナ" = "フリガナ"
"対応状況" = "状況"
"同居家族" = "家族構成"
"相談区分" = "相談種別"

[constants]
"センターコード" = "C04"

[codes."対応状況"]
"対応中(継続)" = "継続支援"
"新規受付" = "対応中"
"つなぎ" = "他機関へつなぎ"
"完了" = "終結"

[codes."性別"]
"M" = "男"
"F" = "女"

[codes."相談区分"]
"介護" = "介護保険"
"虐待" = "高齢者虐待"

[codes."つなぎ先"]
"自立" = "自立相談"

[separators]
"相談区分" = "・"
"同居家族" = "|"
"""


def write_variant(folder: Path, name: str, rows: list[dict[str, str]]) -> None:
    header = [
        *("状況", "最終更新", "相談者氏名", "相談No", "受付年月日", "家族構成", "相談種別", "フリガナ", "生年月日"),
        *("性別", "住所", "電話番号", "世帯状況", "相談概要", "つなぎ先", "終結日", "宛名番号", "備考欄"),
    ]
    base = {h: "" for h in header}
    base.update({"相談者氏名": "別所　花子", "生年月日": "昭和20年1月2日", "性別": "F", "世帯状況": "独居"})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(csv_bytes(header, [[{**base, **r}[h] for h in header] for r in rows]))


def test_variant_centre_is_onboarded_by_a_mapping_file(tmp_path: Path) -> None:
    toml = tmp_path / "c04.toml"
    toml.write_text(VARIANT_TOML, encoding="utf-8")
    variant = load_mapping(toml)
    folder = tmp_path / "h"
    write_houkatsu(folder, "C01_soudan_20250402.csv", [h_row(センターコード="C01", 更新日時="2025/04/02 09:00")])
    write_variant(
        folder,
        "soudan_C04_20250401.csv",
        [
            {
                "状況": "新規受付",
                "最終更新": "2025-04-01 10:00",
                "相談No": "A-1",
                "受付年月日": "R7.4.1",
                "相談種別": "介護・虐待",
                "家族構成": "長男:別所一郎:S45.1.1:無職|嫁:別所陽子::",
            },
        ],
    )
    write_variant(
        folder,
        "soudan_C04_20250403.csv",
        [
            {"状況": "対応中(継続)", "最終更新": "2025-04-03 10:00", "相談No": "A-1", "受付年月日": "R7.4.1"},
            {
                "状況": "つなぎ",
                "つなぎ先": "自立",
                "最終更新": "2025-04-03 11:00",
                "相談No": "A-1",
                "受付年月日": "R7.4.1",
                "性別": "M",
            },
            {
                "状況": "完了",
                "最終更新": "2025-04-03 12:00",
                "相談No": "A-1",
                "受付年月日": "R7.4.1",
                "終結日": "R7.4.3",
            },
            {"状況": "保留", "最終更新": "2025-04-03 13:00", "相談No": "A-1", "受付年月日": "R7.4.1"},
        ],
    )
    items = list(HoukatsuConnector(folder, [default_mapping("houkatsu"), variant]).read({}))
    assert [i.checkpoint.scope for i in items][:2] == ["soudan_C04_20250401.csv", "C01_soudan_20250402.csv"]
    found = cases(items)
    c04 = [c for c in found if c.agency == "C04"]
    assert [c.status for c in c04] == [
        CaseStatus.IN_PROGRESS,
        CaseStatus.ONGOING,
        CaseStatus.REFERRED,
        CaseStatus.CLOSED,
    ]
    first = c04[0]
    assert first.case == "houkatsu:C04-A-1"
    assert first.topics == [Topic.LONG_TERM_CARE, Topic.ELDER_ABUSE]
    assert first.subject.name == "別所　花子" and first.subject.sex is Sex.FEMALE
    assert first.subject.birth_date == date(1945, 1, 2)
    assert [m.person.record for m in first.household_members] == [
        "houkatsu:C04-A-1:family:1",
        "houkatsu:C04-A-1:family:2",
    ]
    assert first.household_members[0].notes == [MemberNote.UNEMPLOYED]
    assert c04[2].referral_to is ReferralTarget.LIVELIHOOD and c04[2].subject.sex is Sex.MALE
    assert c04[3].closed_on == date(2025, 4, 3)
    referral_sources = {e.source for e in events(items) if e.type == "jp.tsunagu.referral.requested.v1"}
    assert referral_sources == {"urn:tsunagu:connector:houkatsu:C04"}
    [dl] = dead(items)
    assert dl.reason == "unknown code in 対応状況" and dl.where == "soudan_C04_20250403.csv:5"
    assert dl.record == "houkatsu:C04-A-1"


def test_variant_file_missing_a_column_is_one_dead_letter(tmp_path: Path) -> None:
    toml = tmp_path / "c04.toml"
    toml.write_text(VARIANT_TOML.replace('"氏名" = "相談者氏名"', '"氏名" = "本人氏名"'), encoding="utf-8")
    folder = tmp_path / "h"
    write_variant(folder, "soudan_C04_20250401.csv", [{"状況": "新規受付", "相談No": "A-1"}])
    [item] = list(HoukatsuConnector(folder, load_mapping(toml)).read({}))
    assert item.dead_letter is not None
    assert item.dead_letter.reason == "header lacks required columns: 本人氏名"
    assert item.dead_letter.where == "soudan_C04_20250401.csv:1"


def test_mapping_errors() -> None:
    doc: dict[str, Any] = {"feed": "houkatsu", "file_pattern": r"^x\.csv$", "columns": {"氏名X": "a"}}
    with pytest.raises(MappingError):
        HoukatsuConnector(Path("."), parse_mapping(doc))
    with pytest.raises(MappingError):
        JiritsuConnector(Path("."), default_mapping("houkatsu"))
    with pytest.raises(MappingError):
        parse_mapping({"feed": "houkatsu"})
    with pytest.raises(MappingError):
        parse_mapping({"feed": "houkatsu", "file_pattern": "x", "encodings": ["no-such-codec"]})
    with pytest.raises(MappingError):
        default_mapping("nosuchfeed")


# --- jiritsu --------------------------------------------------------------------------------------


def test_jiritsu_case_event(tmp_path: Path) -> None:
    row = j_row(主訴="住まい|債務", 相談経路="関係機関からの紹介", 紹介元="地域包括", 性別="回答しない")
    items = jiritsu(tmp_path, row)
    [ev] = events(items)
    assert ev.type == "jp.tsunagu.case.opened.v1"
    assert ev.time == datetime(2025, 10, 1, tzinfo=JST)
    assert ev.source == "urn:tsunagu:connector:jiritsu" and ev.sourcerecord == "jiritsu:J25-0101"
    case = CaseV1.model_validate(ev.data)
    assert case.topics == [Topic.HOUSING, Topic.DEBT]
    assert case.referred_by is ReferralTarget.ELDERLY
    assert case.subject.sex is Sex.NOT_STATED
    assert case.subject.kana == "しけん　たろう"


@pytest.mark.parametrize(("status", "kind"), [("中断", "closed"), ("終結", "closed"), ("支援中", "updated")])
def test_jiritsu_terminal_statuses(tmp_path: Path, status: str, kind: str) -> None:
    [ev] = events(jiritsu(tmp_path, j_row(支援状況=status, 更新日="2025/11/02")))
    assert ev.type == f"jp.tsunagu.case.{kind}.v1"


def test_jiritsu_consent_comes_first_with_same_key_and_checkpoint(tmp_path: Path) -> None:
    items = jiritsu(
        tmp_path,
        j_row(
            宛名番号="1055435556", 情報共有同意="1", 同意日="2025/10/05", 更新日="2025/10/06", 支援状況="アセスメント"
        ),
    )
    assert [i.event.type for i in items if i.event] == [
        "jp.tsunagu.consent.recorded.v1",
        "jp.tsunagu.case.updated.v1",
    ]
    assert items[0].key == items[1].key == "jiritsu:J25-0101"
    assert items[0].checkpoint == items[1].checkpoint
    consent_ev = items[0].event
    assert consent_ev is not None
    consent = ConsentV1.model_validate(consent_ev.data)
    assert consent.consent_id == "jiritsu-form:J25-0101"
    assert consent.version == datetime(2025, 10, 5, tzinfo=JST) == consent_ev.time
    assert (consent.status, consent.decision, consent.grantor, consent.origin) == (
        "active",
        "permit",
        "self",
        "jiritsu_form",
    )
    assert consent.subject_record == "jiritsu:J25-0101" and consent.subject_resident_no == "1055435556"
    assert [f.value for f in consent.fields] == ["livelihood"] and consent.period_start == date(2025, 10, 5)


def test_jiritsu_consent_repeated_on_a_later_row_has_the_same_id(tmp_path: Path) -> None:
    items = jiritsu(
        tmp_path,
        j_row(情報共有同意="1", 同意日="2025/10/05", 更新日="2025/10/06"),
        j_row(情報共有同意="1", 同意日="2025/10/05", 更新日="2025/11/06", 支援状況="支援中"),
    )
    consent_ids = [e.id for e in events(items) if e.type == "jp.tsunagu.consent.recorded.v1"]
    assert len(consent_ids) == 2 and consent_ids[0] == consent_ids[1]


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"情報共有同意": "1"}, "情報共有同意 without 同意日"),
        ({"情報共有同意": "2"}, "unknown code in 情報共有同意"),
        ({"支援状況": "再開"}, "unknown code in 支援状況"),
        ({"主訴": "住まい|宝くじ"}, "unknown code in 主訴"),
        ({"紹介元": "警察"}, "unknown code in 紹介元"),
        ({"性別": "不詳"}, "unknown code in 性別"),
        ({"生年月日": "1970/02/30"}, "impossible date in 生年月日"),
        ({"氏名": ""}, "empty name"),
    ],
)
def test_jiritsu_bad_rows(tmp_path: Path, kw: dict[str, str], reason: str) -> None:
    [item] = jiritsu(tmp_path, j_row(**kw))
    assert item.dead_letter is not None and item.dead_letter.reason == reason
    assert item.dead_letter.record == "jiritsu:J25-0101"


def test_jiritsu_without_bom_and_with_crlf(tmp_path: Path) -> None:
    folder = tmp_path / "j"
    folder.mkdir()
    (folder / "jiritsu_202510.csv").write_bytes(csv_bytes(list(J_COLUMNS), [j_row()], encoding="utf-8"))
    assert one_case(list(JiritsuConnector(folder).read({}))).case == "jiritsu:J25-0101"


def test_jiritsu_undecodable_line(tmp_path: Path) -> None:
    folder = tmp_path / "j"
    rows = [j_row(), j_row(相談受付番号="J25-0102"), j_row(相談受付番号="J25-0103")]
    path = write_jiritsu(folder, "jiritsu_202510.csv", rows)
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2].replace("試験".encode(), b"\xff\xfe")
    path.write_bytes(b"\n".join(lines))
    items = list(JiritsuConnector(folder).read({}))
    [dl] = dead(items)
    assert (dl.reason, dl.where, dl.record) == ("undecodable bytes", "jiritsu_202510.csv:3", "jiritsu:J25-0102")
    assert len(cases(items)) == 2


# --- registry -------------------------------------------------------------------------------------


def test_registry_row_and_snapshot_scope(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    folder.mkdir()
    row = ["1055433006", "5033103023", "世帯主", "加藤　正", "カトウ　タダシ", "1933-01-10", "1", "栄町4丁目21番2号"]
    row.append("2024-04-01")
    path = folder / "jumin.csv"
    path.write_bytes(csv_bytes(list(R_COLUMNS), [row], encoding="utf-8", newline="\n"))
    [item] = list(RegistryConnector(folder).read({}))
    assert item.event is not None
    assert item.event.type == "jp.tsunagu.resident.observed.v1" and item.event.field is None
    assert item.event.time == datetime(2024, 4, 1, tzinfo=JST)
    obs = ResidentObservedV1.model_validate(item.event.data)
    r = obs.resident
    assert (r.record, r.resident_no, r.household_no, r.relation) == (
        "registry:1055433006",
        "1055433006",
        "5033103023",
        Relation.HEAD,
    )
    assert (r.family_name, r.given_name, r.sex, r.birth_date) == ("加藤", "正", Sex.MALE, date(1933, 1, 10))
    assert item.checkpoint.scope.startswith("jumin.csv@")
    # the next day's snapshot under the same name is a new scope: read from the start
    rows = [row, ["1055433007", *row[1:]]]
    path.write_bytes(csv_bytes(list(R_COLUMNS), rows, encoding="utf-8", newline="\n"))
    later = list(RegistryConnector(folder).read({item.checkpoint.scope: item.checkpoint.position}))
    assert len(later) == 2 and later[0].checkpoint.scope != item.checkpoint.scope


# --- the shared samples ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_items(samples_dir: Path) -> dict[str, list[Item]]:
    """The three CSV feeds of the shared samples (``samples_dir`` and ``truth`` come from tests/conftest.py)."""
    return {
        "registry": list(RegistryConnector(samples_dir / "registry").read({})),
        "houkatsu": list(HoukatsuConnector(samples_dir / "houkatsu").read({})),
        "jiritsu": list(JiritsuConnector(samples_dir / "jiritsu").read({})),
    }


STATE_OF = {"open": "opened", "mid": "updated", "closed": "closed"}


@pytest.mark.parametrize("feed", ["houkatsu", "jiritsu"])
def test_samples_dead_letters_match_truth(
    truth: dict[str, Any], sample_items: dict[str, list[Item]], feed: str
) -> None:
    bad = sorted(b["record"] for b in truth["bad"] if b["source"] == feed)
    letters = dead(sample_items[feed])
    assert sorted(d.record or "" for d in letters) == bad
    for d in letters:
        assert REASON.fullmatch(d.reason), d.reason


def test_samples_counts(truth: dict[str, Any], sample_items: dict[str, list[Item]]) -> None:
    def count(feed: str) -> Counter[str]:
        return Counter(e.type.removeprefix("jp.tsunagu.") for e in events(sample_items[feed]))

    truth_states = {
        feed: Counter(f"case.{STATE_OF[e['state']]}.v1" for e in truth["events"] if e["record"].startswith(f"{feed}:"))
        for feed in ("houkatsu", "jiritsu")
    }
    assert count("registry") == Counter({"resident.observed.v1": 137})
    h = count("houkatsu")
    assert {k: v for k, v in h.items() if k.startswith("case.")} == truth_states["houkatsu"]
    assert h["referral.requested.v1"] == 11
    j = count("jiritsu")
    assert {k: v for k, v in j.items() if k.startswith("case.")} == truth_states["jiritsu"]
    assert j["consent.recorded.v1"] == 2
    assert len(dead(sample_items["registry"])) == 0


@pytest.mark.parametrize("feed", ["registry", "houkatsu", "jiritsu"])
def test_samples_every_truth_record_appears(
    truth: dict[str, Any], sample_items: dict[str, list[Item]], feed: str
) -> None:
    seen: dict[str, date | None] = {}
    for ev in events(sample_items[feed]):
        if ev.type == "jp.tsunagu.resident.observed.v1":
            r = ResidentObservedV1.model_validate(ev.data).resident
            seen[r.record] = r.birth_date
        elif ev.type.startswith("jp.tsunagu.case."):
            case = CaseV1.model_validate(ev.data)
            seen[case.subject.record] = case.subject.birth_date
            for m in case.household_members:
                seen[m.person.record] = m.person.birth_date
    expected = {k for k in truth["records"] if k.startswith(f"{feed}:")}
    assert set(seen) == expected
    # and every birth date, whatever its spelling, reads as the true one
    for key in expected:
        person = truth["persons"][truth["records"][key]]
        assert str(seen[key]) == person["birth"], key


@pytest.mark.parametrize("feed", ["houkatsu", "jiritsu"])
def test_samples_every_truth_event_is_emitted(
    truth: dict[str, Any], sample_items: dict[str, list[Item]], feed: str
) -> None:
    emitted = {
        (e.sourcerecord, e.time, e.type) for e in events(sample_items[feed]) if e.type.startswith("jp.tsunagu.case.")
    }
    emitted_days = {(r, t.date(), ty) for r, t, ty in emitted}
    for e in (e for e in truth["events"] if e["record"].startswith(f"{feed}:")):
        at = datetime.fromisoformat(e["at"])
        wanted_type = f"jp.tsunagu.case.{STATE_OF[e['state']]}.v1"
        if feed == "jiritsu":
            # the export carries dates only (受付日, 更新日): the truth's time of day is not visible
            assert (e["record"], at.date(), wanted_type) in emitted_days, e
        else:
            assert (e["record"], at, wanted_type) in emitted, e


def test_samples_jiritsu_consents_visible_in_the_export(
    truth: dict[str, Any], sample_items: dict[str, list[Item]]
) -> None:
    consents = {
        ConsentV1.model_validate(e.data).subject_record: ConsentV1.model_validate(e.data).period_start.isoformat()
        for e in events(sample_items["jiritsu"])
        if e.type == "jp.tsunagu.consent.recorded.v1"
    }
    # every consent the export shows is a true one (others were signed after the last export row)
    assert consents and all(truth["jiritsu_consent"].get(k) == v for k, v in consents.items())


def test_samples_positions_and_keys(sample_items: dict[str, list[Item]]) -> None:
    for items in sample_items.values():
        for it in items:
            assert re.fullmatch(r"\d{8}", it.checkpoint.position)
            if it.event is not None:
                assert it.key == it.event.sourcerecord
