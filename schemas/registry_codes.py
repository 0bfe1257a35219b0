"""Code lists of the 住民記録 標準準拠システム extract: 住民状態, 異動事由 and 氏名優先区分 (labels → codes).

The English codes follow the glossary's style (one English name per Japanese term). The tables
map the standard's *labels* (``転出``, ``死亡``…); numeric codes a vendor writes are translated to
these labels by the registry mapping (``connectors/mappings/registry_std.toml``), so a
municipality whose vendor numbers them differently edits the mapping, not this module.
"""

from __future__ import annotations

from enum import StrEnum


class ResidentStatus(StrEnum):
    """住民状態: whether the person is (still) a resident of the municipality."""

    RESIDENT = "resident"  # 住民
    MOVING_OUT = "moving_out"  # 転出予定 (転出届 filed; still a resident until the move)
    MOVED_OUT = "moved_out"  # 転出 (消除)
    DECEASED = "deceased"  # 死亡 (消除)
    REMOVED = "removed"  # 職権消除 and other 消除

    @property
    def is_removed(self) -> bool:
        """消除: the person is kept as history but no longer belongs to a household."""
        return self in (ResidentStatus.MOVED_OUT, ResidentStatus.DECEASED, ResidentStatus.REMOVED)


RESIDENT_STATUS_LABELS: dict[str, ResidentStatus] = {
    "住民": ResidentStatus.RESIDENT,
    "現住者": ResidentStatus.RESIDENT,
    "転出予定": ResidentStatus.MOVING_OUT,
    "転出予定者": ResidentStatus.MOVING_OUT,
    "転出": ResidentStatus.MOVED_OUT,
    "転出者": ResidentStatus.MOVED_OUT,
    "死亡": ResidentStatus.DECEASED,
    "死亡者": ResidentStatus.DECEASED,
    "消除": ResidentStatus.REMOVED,
    "消除者": ResidentStatus.REMOVED,
    "職権消除": ResidentStatus.REMOVED,
}


class MoveReason(StrEnum):
    """異動事由: why the registry changed this person's record."""

    MOVED_IN = "moved_in"  # 転入
    MOVED_WITHIN = "moved_within"  # 転居 (within the municipality)
    MOVED_OUT = "moved_out"  # 転出
    BORN = "born"  # 出生
    DIED = "died"  # 死亡
    HOUSEHOLD_CHANGED = "household_changed"  # 世帯変更 (世帯分離・世帯合併・世帯主変更)
    ENTERED_EX_OFFICIO = "entered_ex_officio"  # 職権記載
    REMOVED_EX_OFFICIO = "removed_ex_officio"  # 職権消除
    CORRECTED = "corrected"  # 職権修正・訂正
    NATURALIZED = "naturalized"  # 帰化
    NATIONALITY_ACQUIRED = "nationality_acquired"  # 国籍取得
    NATIONALITY_LOST = "nationality_lost"  # 国籍喪失
    BECAME_FOREIGN_RESIDENT = "became_foreign_resident"  # 外国人住民 (法30条の46・47 等による記載)
    NAME_CHANGED = "name_changed"  # 氏名変更・通称記載/削除・旧氏記載/削除
    OTHER = "other"  # その他


MOVE_REASON_LABELS: dict[str, MoveReason] = {
    "転入": MoveReason.MOVED_IN,
    "転居": MoveReason.MOVED_WITHIN,
    "転出": MoveReason.MOVED_OUT,
    "転出確定": MoveReason.MOVED_OUT,
    "出生": MoveReason.BORN,
    "死亡": MoveReason.DIED,
    "失踪宣告": MoveReason.DIED,
    "世帯変更": MoveReason.HOUSEHOLD_CHANGED,
    "世帯分離": MoveReason.HOUSEHOLD_CHANGED,
    "世帯合併": MoveReason.HOUSEHOLD_CHANGED,
    "世帯主変更": MoveReason.HOUSEHOLD_CHANGED,
    "世帯構成変更": MoveReason.HOUSEHOLD_CHANGED,
    "職権記載": MoveReason.ENTERED_EX_OFFICIO,
    "職権消除": MoveReason.REMOVED_EX_OFFICIO,
    "職権修正": MoveReason.CORRECTED,
    "訂正": MoveReason.CORRECTED,
    "帰化": MoveReason.NATURALIZED,
    "国籍取得": MoveReason.NATIONALITY_ACQUIRED,
    "国籍喪失": MoveReason.NATIONALITY_LOST,
    "外国人住民記載": MoveReason.BECAME_FOREIGN_RESIDENT,
    "氏名変更": MoveReason.NAME_CHANGED,
    "通称記載": MoveReason.NAME_CHANGED,
    "通称削除": MoveReason.NAME_CHANGED,
    "旧氏記載": MoveReason.NAME_CHANGED,
    "旧氏削除": MoveReason.NAME_CHANGED,
    "その他": MoveReason.OTHER,
}


class NamePreference(StrEnum):
    """氏名優先区分: which of the person's names the municipality uses first (notices, lists)."""

    NAME = "name"  # 氏名
    ALIAS = "alias"  # 通称
    FORMER_SURNAME = "former_surname"  # 旧氏 (旧氏併記)
    FOREIGN_ALPHABET = "foreign_alphabet"  # 外国人 ローマ字氏名
    FOREIGN_KANJI = "foreign_kanji"  # 外国人 漢字氏名


NAME_PREFERENCE_LABELS: dict[str, NamePreference] = {
    "氏名": NamePreference.NAME,
    "通称": NamePreference.ALIAS,
    "旧氏": NamePreference.FORMER_SURNAME,
    "ローマ字": NamePreference.FOREIGN_ALPHABET,
    "外国人ローマ字": NamePreference.FOREIGN_ALPHABET,
    "漢字": NamePreference.FOREIGN_KANJI,
    "外国人漢字": NamePreference.FOREIGN_KANJI,
}
