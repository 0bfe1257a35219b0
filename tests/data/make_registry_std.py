"""Generates the sample registry in the 住民記録 標準準拠システム layout from hub/samples/registry/jumin.csv.

    python tests/data/make_registry_std.py            # writes tests/data/registry_std/
    python tests/data/make_registry_std.py --check    # exits 1 when the committed files differ

Output (deterministic, UTF-8 with BOM, CRLF, as Windows-based vendor systems write it):

* ``jumin_std_20260601.csv`` — a full (全件) extract as of 2026-06-01: every resident of
  jumin.csv (same 宛名番号, 世帯番号, 続柄, name, reading, birth date, sex and address), plus two
  residents 消除 before it (a deceased former 世帯主, a child who moved out), a foreign resident
  known by a 通称, 旧氏 for a married woman, a new resident whose names use MJ+ glyphs, and
  IVS / plane-16 private-use glyphs in three existing residents' names;
* ``jumin_ido_20261101.csv`` — a change (異動分) extract up to 2026-11-01, rows deliberately
  *not* in date order: a death (with the 世帯主変更 it causes), a 転出, and a foreign family's
  転入 followed by a 通称記載.

``expected_differences.json`` beside them says which persons, households and alerts a batch run
on ``registry_std/`` (copied in place of ``registry/``) should give differently from jumin.csv,
and why. A sources folder for that run is ``hub/samples`` with ``registry/`` replaced by a copy
of ``registry_std/`` (``expected_differences.json`` is not a CSV and is ignored there).

The 個人番号 and 住民票コード columns are present, as a standard system's extract has them, and
left empty: tsunagu drops them when it reads the header (tests use canary values instead).
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "hub" / "samples" / "registry" / "jumin.csv"
OUT = REPO / "tests" / "data" / "registry_std"

HEADER = [
    "宛名番号", "世帯番号", "個人番号", "住民票コード", "住民種別", "住民状態",
    "異動年月日", "異動年月日_不詳フラグ", "異動年月日_不詳表記", "異動届出年月日", "異動事由",
    "氏名", "氏名_フリガナ", "氏名_外国人ローマ字", "氏名_外国人漢字",
    "旧氏", "旧氏_フリガナ", "通称", "通称_フリガナ", "氏名優先区分",
    "性別", "生年月日", "生年月日_不詳フラグ", "生年月日_不詳表記",
    "続柄コード1", "続柄コード2", "続柄コード3", "続柄コード4", "続柄表記",
    "住所_市区町村コード", "住所_町字コード", "住所_都道府県", "住所_市区郡町村名", "住所_町字",
    "住所_番地号表記", "住所_方書", "住所_郵便番号", "住民となった年月日",
    "転入前住所", "転出先住所", "外国人住民となった年月日", "国名コード", "在留資格等コード", "在留期間の満了の日",
]  # fmt: skip

MUNICIPALITY = "999999"
RELATION_CODE = {"世帯主": "02", "妻": "10", "夫": "11", "子": "20", "母": "31", "父": "30"}
KANJI_DIGITS = "〇一二三四五六七八九"
ADDRESS = re.compile(r"^(?P<pref>.+?県)(?P<city>.+?市)(?P<town>.+?)(?P<chome>\d+)丁目(?P<rest>.+)$")

VS17, VS18 = "\U000e0100", "\U000e0101"  # ideographic variation selectors (IVS)
PUA_1, PUA_2 = "\U00100010", "\U00100400"  # plane-16 private use (MJ+ GJ additions)

#: existing residents whose names the standard system writes with MJ+ glyphs (each known to an agency)
GLYPHS = {
    "1055435239": "山崎" + VS18 + "\u3000健一",  # jumin.csv 山﨑 健一; shogai:137 writes 山崎 健一
    "1055435384": "齊" + VS18 + "木\u3000健一",  # jumin.csv 齊木 健一; shogai:149 writes 齊木健一
    "1055434703": "斉木\u3000" + PUA_1 + "子",  # jumin.csv 斉木 節子; houkatsu writes 斉木節子 (節: a GJ addition)
}

DEATH = ("1055433743", "2026-07-10", "2026-07-12")  # 鈴木 美代子, 世帯主 of 5033103552 (8050)
HEIR = "1055433778"  # her child 鈴木 香織 becomes 世帯主 the same day (世帯主変更)
MOVE_OUT = ("1055433675", "2026-06-30", "2026-06-20")  # 坂本 剛, 子 of 5033103517 (8050, multi_field)
FORMER_SURNAME = ("1055433267", "佐藤", "サトウ")  # 千葉 文子, 妻 of 5033103324
BUILDING = {"1055434999": "旭町ハイツ２０３", "1055435231": "西町コーポ１０１"}


def ymd(iso: str) -> str:
    return iso.replace("-", "")


def kanji_number(n: int) -> str:
    return "".join(KANJI_DIGITS[int(d)] for d in str(n)) if n < 10 else str(n)


def town_code(town: str) -> str:
    return f"{zlib.crc32(town.encode()) % 10_000_000:07d}"


def address_cells(address: str) -> dict[str, str]:
    m = ADDRESS.match(address)
    if m is None:
        raise ValueError("unexpected address shape in jumin.csv")
    town = f"{m['town']}{kanji_number(int(m['chome']))}丁目"
    return {
        "住所_市区町村コード": MUNICIPALITY,
        "住所_町字コード": town_code(town),
        "住所_都道府県": m["pref"],
        "住所_市区郡町村名": m["city"],
        "住所_町字": town,
        "住所_番地号表記": m["rest"],
        "住所_郵便番号": f"999-{zlib.crc32(town.encode()) % 10000:04d}",
    }


def base_row(**cells: str) -> dict[str, str]:
    row = dict.fromkeys(HEADER, "")
    row.update(cells)
    return row


def resident_row(r: dict[str, str]) -> dict[str, str]:
    """A jumin.csv resident as a standard system lists them (住民, last 異動 = 異動日)."""
    row = base_row(
        宛名番号=r["宛名番号"],
        世帯番号=r["世帯番号"],
        住民種別="1",
        住民状態="1",
        異動年月日=ymd(r["異動日"]),
        異動届出年月日=ymd(r["異動日"]),
        異動事由="01",
        氏名=r["氏名"],
        氏名_フリガナ=r["氏名カナ"],
        氏名優先区分="1",
        性別=r["性別"],
        生年月日=ymd(r["生年月日"]),
        続柄コード1=RELATION_CODE[r["続柄"]],
        続柄表記=r["続柄"],
        住民となった年月日=ymd(r["異動日"]),
        **address_cells(r["住所"]),
    )
    if r["宛名番号"] in GLYPHS:
        row["氏名"] = GLYPHS[r["宛名番号"]]
    if r["宛名番号"] == FORMER_SURNAME[0]:
        row["旧氏"], row["旧氏_フリガナ"] = FORMER_SURNAME[1], FORMER_SURNAME[2]
    if r["宛名番号"] in BUILDING:
        row["住所_方書"] = BUILDING[r["宛名番号"]]
    return row


def added_full_rows(rows: dict[str, dict[str, str]]) -> list[dict[str, str]]:
    """Residents only the standard extract knows: two 消除 before 2026-06-01, and two new residents."""
    widow = rows["1055433096"]  # 鈴木 節子, 世帯主 of 5033103190 since her husband died
    endo = rows["1055434013"]  # 遠藤 実, 世帯主 of 5033103635
    place = {k: v for k, v in widow.items() if k.startswith("住所_")}
    endo_place = {k: v for k, v in endo.items() if k.startswith("住所_")}
    return [
        base_row(
            宛名番号="1099000011", 世帯番号=widow["世帯番号"], 住民種別="1", 住民状態="3",
            異動年月日="20231102", 異動届出年月日="20231104", 異動事由="22",
            氏名="鈴木\u3000茂", 氏名_フリガナ="スズキ\u3000シゲル", 氏名優先区分="1", 性別="1",
            生年月日="19300505", 続柄コード1="02", 続柄表記="世帯主", 住民となった年月日="19650401", **place,
        ),
        base_row(
            宛名番号="1099000012", 世帯番号=endo["世帯番号"], 住民種別="1", 住民状態="2",
            異動年月日="20240331", 異動届出年月日="20240315", 異動事由="21",
            氏名="遠藤\u3000健太", 氏名_フリガナ="エンドウ\u3000ケンタ", 氏名優先区分="1", 性別="1",
            生年月日="19760214", 続柄コード1="20", 続柄表記="子", 住民となった年月日="19760214",
            転出先住所="東京都千代田区千代田１番１号", **endo_place,
        ),
        base_row(
            宛名番号="1099000021", 世帯番号="5099000021", 住民種別="2", 住民状態="1",
            異動年月日="20250415", 異動届出年月日="20250415", 異動事由="01",
            氏名="WANG XIUYING", 氏名_フリガナ="ワン\u3000シウイン", 氏名_外国人ローマ字="WANG XIUYING",
            氏名_外国人漢字="王\u3000秀英", 通称="大山\u3000秀子", 通称_フリガナ="オオヤマ\u3000ヒデコ",
            氏名優先区分="2", 性別="2", 生年月日="19791203", 続柄コード1="02", 続柄表記="世帯主",
            住民となった年月日="20250415", 外国人住民となった年月日="20250415", 国名コード="156",
            在留資格等コード="永住者", 在留期間の満了の日="",
            **address_cells("さくら県みなと市中央2丁目7番3号"), 住所_方書="中央レジデンス５０２",
        ),
        base_row(
            宛名番号="1099000031", 世帯番号="5099000031", 住民種別="1", 住民状態="1",
            異動年月日="20250201", 異動届出年月日="20250201", 異動事由="01",
            氏名="辻" + VS17 + "\u3000和" + PUA_2, 氏名_フリガナ="ツジ\u3000カズミ", 氏名優先区分="1", 性別="2",
            生年月日="19580909", 続柄コード1="02", 続柄表記="世帯主", 住民となった年月日="20250201",
            **address_cells("さくら県みなと市青葉2丁目4番8号"),
        ),
    ]  # fmt: skip


def change_rows(rows: dict[str, dict[str, str]]) -> list[dict[str, str]]:
    """異動分 2026-06-02 … 2026-11-01, written out of date order on purpose."""
    no, died, notified = DEATH
    death = dict(rows[no], 住民状態="3", 異動年月日=ymd(died), 異動届出年月日=ymd(notified), 異動事由="22")
    heir = dict(rows[HEIR], 異動年月日=ymd(died), 異動届出年月日=ymd(notified), 異動事由="12",
                続柄コード1="02", 続柄表記="世帯主")  # fmt: skip
    no, moved, notified = MOVE_OUT
    out = dict(rows[no], 住民状態="2", 異動年月日=ymd(moved), 異動届出年月日=ymd(notified), 異動事由="21",
               転出先住所="北海道札幌市中央区北一条西２丁目")  # fmt: skip
    place = address_cells("さくら県みなと市港南4丁目11番2号")
    family = {"世帯番号": "5099000041", "住民種別": "2", "住民状態": "1", "異動年月日": "20260901",
              "異動届出年月日": "20260903", "異動事由": "01", "住民となった年月日": "20260901",
              "外国人住民となった年月日": "20260901", "国名コード": "704", "在留資格等コード": "技能実習",
              "在留期間の満了の日": "20290831", "転入前住所": "大阪府大阪市北区梅田１丁目", **place}  # fmt: skip
    head = base_row(宛名番号="1099000041", 氏名="NGUYEN VAN AN", 氏名_フリガナ="グエン\u3000ヴァン\u3000アン",
                    氏名_外国人ローマ字="NGUYEN VAN AN", 氏名優先区分="1", 性別="1", 生年月日="19850720",
                    続柄コード1="02", 続柄表記="世帯主", **family)  # fmt: skip
    alias = dict(head, 異動年月日="20260915", 異動届出年月日="20260915", 異動事由="13",
                 通称="中村\u3000安男", 通称_フリガナ="ナカムラ\u3000ヤスオ", 氏名優先区分="2")  # fmt: skip
    wife = base_row(宛名番号="1099000042", 氏名="TRAN THI HOA", 氏名_フリガナ="チャン\u3000ティ\u3000ホア",
                    氏名_外国人ローマ字="TRAN THI HOA", 氏名優先区分="1", 性別="2", 生年月日="19880211",
                    続柄コード1="10", 続柄表記="妻", **family)  # fmt: skip
    mother = base_row(宛名番号="1099000043", 氏名="NGUYEN THI LAN", 氏名_フリガナ="グエン\u3000ティ\u3000ラン",
                      氏名_外国人ローマ字="NGUYEN THI LAN", 氏名優先区分="1", 性別="2", 生年月日="",
                      生年月日_不詳フラグ="1", 生年月日_不詳表記="1950年（月日不詳）",
                      続柄コード1="31", 続柄表記="母", **family)  # fmt: skip
    # out of order: the 通称記載 (09-15) before the 転入 (09-01), the death (07-10) before the 転出 (06-30)
    return [alias, death, heir, out, head, wife, mother]


def render(rows: list[dict[str, str]]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HEADER, lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    return b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8")


def expected() -> dict[str, object]:
    return {
        "about": "what a batch run on registry_std/ (in place of registry/) gives differently from jumin.csv",
        "sources": "hub/samples with registry/ replaced by a copy of registry_std/",
        "files": ["jumin_std_20260601.csv", "jumin_ido_20261101.csv"],
        "unchanged": (
            "every jumin.csv resident keeps its 宛名番号, 世帯番号, relation, birth date, sex and address key; "
            "every record of the other feeds resolves to the same person and household as with jumin.csv; "
            "every alert of the truth is raised, except as listed under alerts"
        ),
        "persons_added": [
            {"record": "registry:1099000011", "status": "deceased", "status_on": "2023-11-02",
             "household": "5033103190", "why": "former 世帯主, 死亡 before the extract: history only, never a member"},
            {"record": "registry:1099000012", "status": "moved_out", "status_on": "2024-03-31",
             "household": "5033103635", "why": "child 転出 before the extract: history only, never a member"},
            {"record": "registry:1099000021", "status": "resident", "household": "5099000021",
             "why": "foreign resident (ローマ字 WANG XIUYING, 漢字 王 秀英) known by the 通称 大山 秀子"},
            {"record": "registry:1099000031", "status": "resident", "household": "5099000031",
             "why": "name with an IVS (辻+VS17) and a plane-16 private-use glyph, kept as given"},
            {"record": "registry:1099000041", "status": "resident", "household": "5099000041",
             "why": "転入 2026-09-01, 通称 中村 安男 from 2026-09-15 (rows out of order in the change extract)"},
            {"record": "registry:1099000042", "status": "resident", "household": "5099000041", "why": "転入, 妻"},
            {"record": "registry:1099000043", "status": "resident", "household": "5099000041",
             "why": "転入, 母, 生年月日 不詳: no birth date, not a bad row"},
        ],
        "status_changes": [
            {"record": "registry:1055433743", "status": "deceased", "status_on": "2026-07-10",
             "household": "5033103552", "why": "the parent of an 8050 household dies"},
            {"record": "registry:1055433778", "relation": "head", "on": "2026-07-10", "household": "5033103552",
             "why": "世帯主変更 after the death (異動事由 世帯変更)"},
            {"record": "registry:1055433675", "status": "moved_out", "status_on": "2026-06-30",
             "household": "5033103517",
             "why": "the child of an 8050 household moves out of the city; his jiritsu case goes on (J25-0001, "
                    "update 2026-10-09)"},
        ],
        "households": [
            {"household": "5033103552", "members_from": {"2026-07-10": ["registry:1055433778"]}},
            {"household": "5033103517", "members_from": {"2026-06-30": ["registry:1055433668"]}},
            {"household": "5099000041", "members_from": {
                "2026-09-01": ["registry:1099000041", "registry:1099000042", "registry:1099000043"]}},
        ],
        "alerts": [
            {"household": "5033103552", "kind": "8050", "expect": "raised, then closed on 2026-07-10",
             "reason": "member deceased (registry:1055433743)"},
            {"household": "5033103517", "kind": "8050", "expect": "raised, then closed on 2026-06-30",
             "reason": "member moved out (registry:1055433675)"},
            {"household": "5033103517", "kind": "multi_field", "expect": "raised, then closed on 2026-06-30",
             "reason": "member moved out (registry:1055433675)"},
        ],
        "team": [
            {"record": "jiritsu:J25-0001",
             "expect": "events after 2026-06-30 (the 2026-10-09 update) are not attributed to household 5033103517"},
        ],
        "identity": [
            {"record": "shogai:137", "resident": "registry:1055435239",
             "why": "registry writes 山崎+VS18 (IVS), shogai 山崎: same person once variation selectors fold"},
            {"record": "shogai:149", "resident": "registry:1055435384",
             "why": "registry writes 齊+VS18 木, shogai 齊木: same person once variation selectors fold"},
            {"record": "houkatsu:C01-2025-0043", "resident": "registry:1055434703",
             "why": "a private-use glyph equals nothing: still the same person by reading, birth date, address"},
        ],
        "former_surname": {
            "resident": "registry:1055433267", "former_surname": "佐藤",
            "agency_record": None,
            "why": "no sample agency record names her by her 旧氏 (every agency record spells the registry "
                   "surname); the identity test for 旧氏 needs its own agency record",
        },
    }  # fmt: skip


def build() -> dict[str, bytes]:
    with SOURCE.open(encoding="utf-8", newline="") as f:
        source = list(csv.DictReader(f))
    rows = {r["宛名番号"]: resident_row(r) for r in source}
    full = [*rows.values(), *added_full_rows(rows)]
    return {
        "jumin_std_20260601.csv": render(full),
        "jumin_ido_20261101.csv": render(change_rows(rows)),
        "expected_differences.json": (json.dumps(expected(), ensure_ascii=False, indent=2) + "\n").encode(),
    }


def main(argv: list[str]) -> int:
    files = build()
    if argv[1:] == ["--check"]:
        stale = [n for n, data in files.items() if not (OUT / n).is_file() or (OUT / n).read_bytes() != data]
        print("stale: " + ", ".join(stale) if stale else "up to date")
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        tmp = OUT / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(OUT / name)
        print(OUT / name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
