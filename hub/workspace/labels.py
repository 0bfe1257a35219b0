"""Japanese labels of the workspace's codes, one table per code (alert kind, field, state, case status, topic…)."""

from __future__ import annotations

from schemas.codes import REFERRAL_LABELS, RELATION_LABELS

#: alert kinds (the workspace, the FHIR export and /ops use these words)
ALERT_KIND: dict[str, str] = {
    "multi_field": "複数分野",
    "8050": "8050",
    "double_care": "ダブルケア",
    "young_carer": "ヤングケアラー",
}
#: fields / agencies (screens, FHIR export, the yearly figures)
FIELD: dict[str, str] = {
    "elderly": "高齢（地域包括）",
    "disability": "障害",
    "child": "子ども",
    "livelihood": "生活困窮",
    "multi_agency": "多機関協働",
    "outreach": "アウトリーチ等を通じた継続的支援事業",
    "participation": "参加支援事業",
}
#: states of alert work, referrals, meetings, plans and consents (screens and the yearly figures)
STATUS: dict[str, str] = {
    # alert work
    "new": "新規",
    "acknowledged": "確認済み",
    "assigned": "担当決定",
    "closed": "終了",
    "reopened": "再開",
    # referrals (HL7 Gravity SDOH Task)
    "requested": "依頼中",
    "accepted": "受理",
    "rejected": "不受理",
    "in-progress": "対応中",
    "completed": "完了",
    "cancelled": "取消",
    # meetings
    "agenda": "議題予定",
    "held": "開催済み",
    # plans
    "active": "支援中",
    "evaluated": "評価済み",
    "handed_over": "主担当へ引継ぎ",
    # consents
    "inactive": "撤回済み",
    "permit": "同意",
    "deny": "不同意",
}
CASE_STATUS: dict[str, str] = {
    "intake": "受付",
    "assessment": "アセスメント",
    "planning": "プラン作成",
    "in_progress": "支援中",
    "ongoing": "継続支援",
    "referred": "他機関へつなぎ",
    "suspended": "中断",
    "closed": "終結",
}
CHANGE: dict[str, str] = {"opened": "受付", "updated": "更新", "closed": "終結", "referral": "つなぎ"}
DISABILITY: dict[str, str] = {
    "physical": "身体",
    "intellectual": "知的",
    "mental": "精神",
    "developmental": "発達",
    "intractable_disease": "難病",
}
TOPIC: dict[str, str] = {
    "long_term_care": "介護",
    "dementia": "認知症",
    "rights_advocacy": "権利擁護",
    "elder_abuse": "高齢者虐待",
    "medical": "医療",
    "hardship": "生活困窮",
    "family": "家族関係",
    "employment": "就労",
    "work_worries": "仕事上の不安",
    "housing": "住まい",
    "money": "収入・生活費",
    "rent_loan": "家賃・ローン",
    "taxes_utilities": "税金・公共料金",
    "debt": "債務",
    "health_disability": "病気・健康・障害",
    "community": "地域との関係",
    "hikikomori": "ひきこもり",
    "abuse": "虐待・DV",
    "child_abuse_suspected": "児童虐待疑い",
    "child_rearing": "子育て",
    "development": "発達",
    "young_carer": "ヤングケアラー",
    "pregnancy": "妊娠・出産",
    "school_refusal": "不登校",
    "no_food": "食べるものがない",
    "other": "その他",
}
#: the first source label of each code (世帯主, 妻, 子 …)
RELATION: dict[str, str] = {}
for _label, _code in RELATION_LABELS.items():
    RELATION.setdefault(_code.value, _label)
REFERRAL_TARGET: dict[str, str] = {}
for _label, _target in REFERRAL_LABELS.items():
    REFERRAL_TARGET.setdefault(_target.value, _label)
REFERRAL_TARGET.update({"outreach": "アウトリーチ等を通じた継続的支援事業", "participation": "参加支援事業",
                        "multi_agency": "多機関協働"})
SEX: dict[str, str] = {"male": "男", "female": "女"}
ROUTE: dict[str, str] = {
    "team": "本人同意に基づく共有（重層的支援会議・社会福祉法第106条の4）",
    "support_meeting": "支援会議（社会福祉法第106条の6）による必要最小限の共有",
    "alert_only": "支援会議候補（種類・分野・人数・年代のみ）",
    "none": "表示できる情報はありません",
}

ALL = {"case_status": CASE_STATUS, "change": CHANGE, "disability": DISABILITY, "topic": TOPIC,
       "relation": RELATION, "target": REFERRAL_TARGET, "sex": SEX, "route": ROUTE}
