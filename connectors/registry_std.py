"""The 住民記録 標準準拠システム layout of the registry feed: one row → one ResidentObservedV1.

Column names and codes come from the built-in mapping ``connectors/mappings/registry_std.toml``
(``layout = "standard"``); :class:`connectors.registry.RegistryConnector` recognises a file of
this layout by its header and turns each row into an event with :func:`status`, :func:`person`
and :func:`details`, each person's rows in 異動年月日 order (:func:`order_key`).

* 個人番号 and 住民票コード never get here: :func:`connectors.csv_export.read_csv` drops their
  columns with the header.
* 不詳 birth dates (``生年月日_不詳フラグ`` set, or a ``生年月日_不詳表記`` with no date) give no
  birth date and ``birth_date_unknown``; they are not a bad row.
* 続柄コード1–4 spell a relation to the 世帯主 as a chain (子 + 妻 = 子の妻); ``続柄表記`` wins
  when it is a relation tsunagu knows.
* The address is 都道府県 + 市区郡町村名 + 町字 + 番地号表記 (town and city from their codes
  when the mapping has a table for them); 方書 goes to ``address_building``.
* Names are kept exactly as written (MJ+: variation selectors and plane-16 private-use
  characters included).
"""

from __future__ import annotations

import unicodedata
from datetime import date

from connectors.csv_export import CsvRecord, Row, RowError, lookup_code
from connectors.mapping import CsvMapping
from schemas.codes import RELATION_LABELS, Relation
from schemas.events import PersonRecord
from schemas.normalize import split_name
from schemas.registry_codes import (
    MOVE_REASON_LABELS,
    NAME_PREFERENCE_LABELS,
    RESIDENT_STATUS_LABELS,
    MoveReason,
    NamePreference,
    ResidentStatus,
)

LAYOUT = "standard"

RELATION_CODES: tuple[str, ...] = ("続柄コード1", "続柄コード2", "続柄コード3", "続柄コード4")

#: canonical columns a standard-layout file must have
REQUIRED: tuple[str, ...] = (
    "宛名番号", "世帯番号", "住民状態", "異動年月日", "氏名", "生年月日", "性別", "続柄コード1",
)

#: every canonical column of the layout (optional ones may be absent from the header).
#: ``続柄コード`` is no header: it names the one code table of 続柄コード1–4 in a mapping.
COLUMNS: tuple[str, ...] = (
    *REQUIRED,
    "住民種別",
    "異動年月日_不詳フラグ",
    "異動年月日_不詳表記",
    "異動届出年月日",
    "異動事由",
    "氏名_フリガナ",
    "氏名_外国人ローマ字",
    "氏名_外国人漢字",
    "旧氏",
    "旧氏_フリガナ",
    "通称",
    "通称_フリガナ",
    "氏名優先区分",
    "生年月日_不詳フラグ",
    "生年月日_不詳表記",
    "続柄コード2",
    "続柄コード3",
    "続柄コード4",
    "続柄表記",
    "続柄コード",
    "住所_市区町村コード",
    "住所_町字コード",
    "住所_都道府県",
    "住所_市区郡町村名",
    "住所_町字",
    "住所_番地号表記",
    "住所_方書",
    "住所_郵便番号",
    "住民となった年月日",
    "住民となった年月日_不詳フラグ",
    "住民となった年月日_不詳表記",
)

#: chains of 続柄コード (joined with の) that name a relation tsunagu knows
CHAINS: dict[str, Relation] = {
    "世帯主": Relation.HEAD,
    "子の妻": Relation.DAUGHTER_IN_LAW,
    "子の夫": Relation.SON_IN_LAW,
    "子の子": Relation.GRANDCHILD,
    "父の父": Relation.GRANDFATHER,
    "母の父": Relation.GRANDFATHER,
    "父の母": Relation.GRANDMOTHER,
    "母の母": Relation.GRANDMOTHER,
}

_TRUE = {"1", "TRUE", "Y", "YES", "○", "有", "あり", "不詳"}
_FALSE = {"", "0", "FALSE", "N", "NO", "無", "なし"}


def is_standard(mapping: CsvMapping) -> bool:
    return mapping.layout == LAYOUT


def number(row: Row, column: str) -> str | None:
    """宛名番号 / 世帯番号: 10 digits; a 15-digit zero-padded one (00000 + 10 digits) is read as its 10 digits.

    Standard systems may pad these numbers to 15 digits; the agency feeds write 10. Any other
    length stays a ``malformed`` dead letter (never silently cut).
    """
    v = unicodedata.normalize("NFKC", row.text(column)).strip()
    if len(v) == 15 and v.isascii() and v.isdigit() and v.startswith("00000"):
        return v[5:]
    return row.resident_no(column)


def flag(row: Row, column: str) -> bool:
    """A yes/no column (不詳フラグ); anything else is an unknown code."""
    v = unicodedata.normalize("NFKC", row.text(column)).strip().upper()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise RowError(f"unknown code in {column}")


def _code(text: str) -> str:
    """A code cell as the mapping's tables spell it: NFKC, one digit padded to two (2 → 02)."""
    v = unicodedata.normalize("NFKC", text).strip()
    return v.zfill(2) if v.isdigit() and len(v) == 1 else v


def unknown_date(row: Row, column: str) -> bool:
    """A 不詳 date: its flag is set, or it has a 不詳表記 and no date."""
    if flag(row, f"{column}_不詳フラグ"):
        return True
    return bool(row.text(f"{column}_不詳表記")) and not row.text(column)


def move_date(row: Row) -> date | None:
    """異動年月日, or None when it is 不詳."""
    if unknown_date(row, "異動年月日"):
        return None
    return row.required_date("異動年月日")


def order_key(row: Row, record: CsvRecord) -> tuple[date, int]:
    """Where a record goes in a change extract: by 異動年月日, then by line (unreadable dates first)."""
    if record.error is None:
        try:
            moved = move_date(row)
        except RowError:
            moved = None
        if moved is not None:
            return (moved, record.line)
    return (date.min, record.line)


def relation(row: Row) -> Relation | None:
    """The relation to the 世帯主 from 続柄表記 or the chain 続柄コード1–4."""
    written = row.opt("続柄表記")
    if written:
        known = RELATION_LABELS.get(row.mapping.label("続柄表記", written))
        if known is not None:
            return known
    labels: list[str] = []
    for column in RELATION_CODES:
        code = row.text(column)
        if not code:
            break
        label = row.mapping.label("続柄コード", _code(code))
        lookup_code(RELATION_LABELS, label, column)  # every link must be a known 続柄
        labels.append(label)
    if not labels:
        return None
    if len(labels) == 1:
        return lookup_code(RELATION_LABELS, labels[0], RELATION_CODES[0])
    return CHAINS.get("の".join(labels), Relation.OTHER)


def _coded_text(row: Row, text_column: str, code_column: str) -> str:
    """A place name written out, or looked up from its code in the mapping's table (else "")."""
    text = row.text(text_column)
    if text:
        return text
    code = row.text(code_column)
    if not code:
        return ""
    label = row.mapping.label(code_column, code)
    return "" if label == code else label


def address(row: Row) -> str | None:
    """都道府県 + 市区郡町村名 + 町字 + 番地号表記, or None without a town or a number."""
    town = _coded_text(row, "住所_町字", "住所_町字コード")
    number = row.text("住所_番地号表記")
    if not town and not number:
        return None
    city = row.text("住所_市区郡町村名")
    prefecture = row.text("住所_都道府県")
    if not city:
        city = _coded_text(row, "住所_市区郡町村名", "住所_市区町村コード")
    return f"{prefecture}{city}{town}{number}" or None


def status(row: Row) -> ResidentStatus:
    return row.code("住民状態", RESIDENT_STATUS_LABELS)


def person(row: Row, key: str, resident_no: str, household_no: str, birth_unknown: bool) -> PersonRecord:
    name = row.opt("氏名") or row.opt("氏名_外国人漢字") or row.opt("氏名_外国人ローマ字")
    if not name:
        raise RowError("empty name")
    family, given = split_name(name)
    return PersonRecord(
        record=key,
        name=name,
        family_name=family or None,
        given_name=given or None,
        kana=row.opt("氏名_フリガナ"),
        birth_date=None if birth_unknown else row.required_date("生年月日"),
        sex=row.sex("性別"),
        address=address(row),
        resident_no=resident_no,
        household_no=household_no,
        relation=relation(row),
    )


def details(row: Row, moved_on: date | None, state: ResidentStatus, birth_unknown: bool) -> dict[str, object]:
    """The standard layout's optional fields of ResidentObservedV1."""
    reason: MoveReason | None = row.opt_code("異動事由", MOVE_REASON_LABELS)
    preference: NamePreference | None = None
    if row.text("氏名優先区分"):
        preference = lookup_code(
            NAME_PREFERENCE_LABELS, row.mapping.label("氏名優先区分", row.text("氏名優先区分")), "氏名優先区分"
        )
    if state is ResidentStatus.RESIDENT:
        status_on = None if unknown_date(row, "住民となった年月日") else row.opt_date("住民となった年月日")
    else:
        status_on = moved_on
    return {
        "status": state,
        "status_on": status_on,
        "move_reason": reason,
        "notified_on": row.opt_date("異動届出年月日"),
        "birth_date_unknown": birth_unknown,
        "former_surname": row.opt("旧氏"),
        "former_surname_kana": row.opt("旧氏_フリガナ"),
        "alias_name": row.opt("通称"),
        "alias_kana": row.opt("通称_フリガナ"),
        "foreign_name_alphabet": row.opt("氏名_外国人ローマ字"),
        "foreign_name_kanji": row.opt("氏名_外国人漢字"),
        "name_preference": preference,
        "address_building": row.opt("住所_方書"),
    }
