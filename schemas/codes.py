"""Code lists shared by every feed, with the sources' labels mapped to one English name each.

Names follow ../shared/domain/glossary.md. A label a source sends that is not in a
table here is an *unknown code*: the connector turns the record into a dead letter.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

T = TypeVar("T")


class UnknownCode(ValueError):
    """A label that no code list knows; the message names the code list, never the value."""


class Field(StrEnum):
    """分野: the four fields of comprehensive consultation."""

    ELDERLY = "elderly"
    DISABILITY = "disability"
    CHILD = "child"
    LIVELIHOOD = "livelihood"


class Feed(StrEnum):
    """The agency systems tsunagu connects to (folder names under a sources directory)."""

    REGISTRY = "registry"
    HOUKATSU = "houkatsu"
    SHOGAI = "shogai"
    KODOMO = "kodomo"
    JIRITSU = "jiritsu"
    CONSENT = "consent"


FEED_FIELD: dict[Feed, Field] = {
    Feed.HOUKATSU: Field.ELDERLY,
    Feed.SHOGAI: Field.DISABILITY,
    Feed.KODOMO: Field.CHILD,
    Feed.JIRITSU: Field.LIVELIHOOD,
}


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"
    UNKNOWN = "unknown"
    NOT_STATED = "not_stated"


class CaseStatus(StrEnum):
    """Where a case stands, the same across fields (対応状況 / joukyou / 支援状況)."""

    INTAKE = "intake"  # 受付 / インテーク
    ASSESSMENT = "assessment"  # アセスメント
    PLANNING = "planning"  # プラン作成
    IN_PROGRESS = "in_progress"  # 対応中 / 支援中
    ONGOING = "ongoing"  # 継続支援
    REFERRED = "referred"  # 他機関へつなぎ
    SUSPENDED = "suspended"  # 中断 (livelihood: ends the case like 終結)
    CLOSED = "closed"  # 終結

    @property
    def is_terminal(self) -> bool:
        """Whether a case in this status is no longer active (alerts.md: 終結, or 中断 for livelihood)."""
        return self in (CaseStatus.CLOSED, CaseStatus.SUSPENDED)


class Relation(StrEnum):
    """続柄, as the registry, houkatsu 同居家族 and kodomo 保護者 write it."""

    HEAD = "head"  # 世帯主
    WIFE = "wife"  # 妻
    HUSBAND = "husband"  # 夫
    CHILD = "child"  # 子
    FATHER = "father"  # 父
    MOTHER = "mother"  # 母
    GRANDCHILD = "grandchild"  # 孫
    ELDER_BROTHER = "elder_brother"  # 兄
    ELDER_SISTER = "elder_sister"  # 姉
    YOUNGER_BROTHER = "younger_brother"  # 弟
    YOUNGER_SISTER = "younger_sister"  # 妹
    GRANDFATHER = "grandfather"  # 祖父
    GRANDMOTHER = "grandmother"  # 祖母
    LODGER = "lodger"  # 同居人
    SPOUSE = "spouse"  # 配偶者
    ELDEST_SON = "eldest_son"  # 長男
    ELDEST_DAUGHTER = "eldest_daughter"  # 長女
    SECOND_SON = "second_son"  # 次男
    SECOND_DAUGHTER = "second_daughter"  # 次女
    THIRD_SON = "third_son"  # 三男
    THIRD_DAUGHTER = "third_daughter"  # 三女
    SON = "son"  # 息子
    DAUGHTER = "daughter"  # 娘
    SON_IN_LAW = "son_in_law"  # 婿 / 義理の息子
    DAUGHTER_IN_LAW = "daughter_in_law"  # 嫁
    OTHER = "other"  # その他

    @property
    def is_child_of_subject(self) -> bool:
        """alerts.md: a 同居家族 entry with this 続柄 is a child of the houkatsu subject."""
        return self in _CHILD_RELATIONS


_CHILD_RELATIONS = frozenset(
    {
        Relation.CHILD,
        Relation.ELDEST_SON,
        Relation.ELDEST_DAUGHTER,
        Relation.SECOND_SON,
        Relation.SECOND_DAUGHTER,
        Relation.THIRD_SON,
        Relation.THIRD_DAUGHTER,
        Relation.SON,
        Relation.DAUGHTER,
    }
)

RELATION_LABELS: dict[str, Relation] = {
    "世帯主": Relation.HEAD,
    "本人": Relation.HEAD,
    "妻": Relation.WIFE,
    "夫": Relation.HUSBAND,
    "子": Relation.CHILD,
    "父": Relation.FATHER,
    "母": Relation.MOTHER,
    "孫": Relation.GRANDCHILD,
    "兄": Relation.ELDER_BROTHER,
    "姉": Relation.ELDER_SISTER,
    "弟": Relation.YOUNGER_BROTHER,
    "妹": Relation.YOUNGER_SISTER,
    "祖父": Relation.GRANDFATHER,
    "祖母": Relation.GRANDMOTHER,
    "同居人": Relation.LODGER,
    "配偶者": Relation.SPOUSE,
    "長男": Relation.ELDEST_SON,
    "長女": Relation.ELDEST_DAUGHTER,
    "次男": Relation.SECOND_SON,
    "二男": Relation.SECOND_SON,
    "次女": Relation.SECOND_DAUGHTER,
    "二女": Relation.SECOND_DAUGHTER,
    "三男": Relation.THIRD_SON,
    "三女": Relation.THIRD_DAUGHTER,
    "息子": Relation.SON,
    "娘": Relation.DAUGHTER,
    "婿": Relation.SON_IN_LAW,
    "嫁": Relation.DAUGHTER_IN_LAW,
    "その他": Relation.OTHER,
}


class HouseholdSituation(StrEnum):
    """houkatsu 世帯状況."""

    LIVING_ALONE = "living_alone"  # 独居
    ELDERLY_ONLY = "elderly_only"  # 高齢者のみ世帯
    WITH_CHILD = "with_child"  # 子と同居
    OTHER = "other"  # その他


HOUSEHOLD_SITUATION_LABELS: dict[str, HouseholdSituation] = {
    "独居": HouseholdSituation.LIVING_ALONE,
    "高齢者のみ世帯": HouseholdSituation.ELDERLY_ONLY,
    "子と同居": HouseholdSituation.WITH_CHILD,
    "その他": HouseholdSituation.OTHER,
}


class ReferralTarget(StrEnum):
    """つなぎ先 / 紹介元: agencies a case is handed to or comes from."""

    ELDERLY = "elderly"  # 地域包括
    DISABILITY = "disability"  # 障害相談
    CHILD = "child"  # こども家庭センター
    LIVELIHOOD = "livelihood"  # 自立相談
    MULTI_AGENCY = "multi_agency"  # 多機関協働
    WELFARE_OFFICE = "welfare_office"  # 福祉事務所
    SOCIAL_WELFARE_COUNCIL = "social_welfare_council"  # 社会福祉協議会
    COMMISSIONED_VOLUNTEER = "commissioned_volunteer"  # 民生委員
    HELLO_WORK = "hello_work"  # ハローワーク


REFERRAL_LABELS: dict[str, ReferralTarget] = {
    "地域包括": ReferralTarget.ELDERLY,
    "障害相談": ReferralTarget.DISABILITY,
    "こども家庭センター": ReferralTarget.CHILD,
    "自立相談": ReferralTarget.LIVELIHOOD,
    "多機関協働": ReferralTarget.MULTI_AGENCY,
    "福祉事務所": ReferralTarget.WELFARE_OFFICE,
    "社会福祉協議会": ReferralTarget.SOCIAL_WELFARE_COUNCIL,
    "民生委員": ReferralTarget.COMMISSIONED_VOLUNTEER,
    "ハローワーク": ReferralTarget.HELLO_WORK,
}


class Topic(StrEnum):
    """houkatsu 相談区分, shogai kadai, kodomo soudan_naiyou and jiritsu 主訴, as one list of concerns."""

    LONG_TERM_CARE = "long_term_care"  # 介護保険 / 介護
    DEMENTIA = "dementia"  # 認知症
    RIGHTS_ADVOCACY = "rights_advocacy"  # 権利擁護
    ELDER_ABUSE = "elder_abuse"  # 高齢者虐待
    MEDICAL = "medical"  # 医療
    HARDSHIP = "hardship"  # 生活困窮 / 経済的困窮
    FAMILY = "family"  # 家族の問題 / 家族関係 / 家族との関係
    EMPLOYMENT = "employment"  # 就労 / 仕事探し・就職
    WORK_WORRIES = "work_worries"  # 仕事上の不安
    HOUSING = "housing"  # 住まい
    MONEY = "money"  # 経済 / 収入・生活費
    RENT_LOAN = "rent_loan"  # 家賃・ローン
    TAXES_UTILITIES = "taxes_utilities"  # 税金・公共料金
    DEBT = "debt"  # 債務
    HEALTH_DISABILITY = "health_disability"  # 病気・健康・障害
    COMMUNITY = "community"  # 地域との関係
    HIKIKOMORI = "hikikomori"  # ひきこもり / ひきこもり・不登校
    ABUSE = "abuse"  # 虐待 / DV・虐待
    CHILD_ABUSE_SUSPECTED = "child_abuse_suspected"  # 児童虐待疑い
    CHILD_REARING = "child_rearing"  # 子育て / 養育相談
    DEVELOPMENT = "development"  # 発達
    YOUNG_CARER = "young_carer"  # ヤングケアラー
    PREGNANCY = "pregnancy"  # 妊娠・出産
    SCHOOL_REFUSAL = "school_refusal"  # 不登校
    NO_FOOD = "no_food"  # 食べるものがない
    OTHER = "other"  # その他


HOUKATSU_TOPICS: dict[str, Topic] = {
    "介護保険": Topic.LONG_TERM_CARE,
    "認知症": Topic.DEMENTIA,
    "権利擁護": Topic.RIGHTS_ADVOCACY,
    "高齢者虐待": Topic.ELDER_ABUSE,
    "医療": Topic.MEDICAL,
    "生活困窮": Topic.HARDSHIP,
    "家族の問題": Topic.FAMILY,
    "その他": Topic.OTHER,
}

SHOGAI_TOPICS: dict[str, Topic] = {
    "就労": Topic.EMPLOYMENT,
    "住まい": Topic.HOUSING,
    "家族関係": Topic.FAMILY,
    "経済": Topic.MONEY,
    "医療": Topic.MEDICAL,
    "ひきこもり": Topic.HIKIKOMORI,
    "虐待": Topic.ABUSE,
    "介護": Topic.LONG_TERM_CARE,
    "子育て": Topic.CHILD_REARING,
    "その他": Topic.OTHER,
}

KODOMO_TOPICS: dict[str, Topic] = {
    "養育相談": Topic.CHILD_REARING,
    "発達": Topic.DEVELOPMENT,
    "経済的困窮": Topic.HARDSHIP,
    "ヤングケアラー": Topic.YOUNG_CARER,
    "児童虐待疑い": Topic.CHILD_ABUSE_SUSPECTED,
    "妊娠・出産": Topic.PREGNANCY,
    "不登校": Topic.SCHOOL_REFUSAL,
    "その他": Topic.OTHER,
}

JIRITSU_TOPICS: dict[str, Topic] = {
    "病気・健康・障害": Topic.HEALTH_DISABILITY,
    "住まい": Topic.HOUSING,
    "収入・生活費": Topic.MONEY,
    "家賃・ローン": Topic.RENT_LOAN,
    "税金・公共料金": Topic.TAXES_UTILITIES,
    "債務": Topic.DEBT,
    "仕事探し・就職": Topic.EMPLOYMENT,
    "仕事上の不安": Topic.WORK_WORRIES,
    "地域との関係": Topic.COMMUNITY,
    "家族との関係": Topic.FAMILY,
    "子育て": Topic.CHILD_REARING,
    "介護": Topic.LONG_TERM_CARE,
    "ひきこもり・不登校": Topic.HIKIKOMORI,
    "DV・虐待": Topic.ABUSE,
    "食べるものがない": Topic.NO_FOOD,
    "その他": Topic.OTHER,
}

HOUKATSU_STATUS: dict[str, CaseStatus] = {
    "対応中": CaseStatus.IN_PROGRESS,
    "継続支援": CaseStatus.ONGOING,
    "他機関へつなぎ": CaseStatus.REFERRED,
    "終結": CaseStatus.CLOSED,
}

SHOGAI_STATUS: dict[str, CaseStatus] = {
    "受付": CaseStatus.INTAKE,
    "支援中": CaseStatus.IN_PROGRESS,
    "終結": CaseStatus.CLOSED,
}

KODOMO_STATUS = SHOGAI_STATUS

JIRITSU_STATUS: dict[str, CaseStatus] = {
    "インテーク": CaseStatus.INTAKE,
    "アセスメント": CaseStatus.ASSESSMENT,
    "プラン作成": CaseStatus.PLANNING,
    "支援中": CaseStatus.IN_PROGRESS,
    "終結": CaseStatus.CLOSED,
    "中断": CaseStatus.SUSPENDED,
}


class DisabilityType(StrEnum):
    """shogai_shubetsu: 要配慮個人情報, carried only in an event's sensitive section."""

    PHYSICAL = "physical"  # 身体
    INTELLECTUAL = "intellectual"  # 知的
    MENTAL = "mental"  # 精神
    DEVELOPMENTAL = "developmental"  # 発達
    INTRACTABLE_DISEASE = "intractable_disease"  # 難病


DISABILITY_LABELS: dict[str, DisabilityType] = {
    "身体": DisabilityType.PHYSICAL,
    "知的": DisabilityType.INTELLECTUAL,
    "精神": DisabilityType.MENTAL,
    "発達": DisabilityType.DEVELOPMENTAL,
    "難病": DisabilityType.INTRACTABLE_DISEASE,
}


class MemberNote(StrEnum):
    """houkatsu 同居家族 備考 words that the alert rules read."""

    HIKIKOMORI = "hikikomori"  # ひきこもり
    UNEMPLOYED = "unemployed"  # 無職
    DISABILITY = "disability"  # 障害
    NEEDS_CARE = "needs_care"  # 要介護
    EMPLOYED = "employed"  # 就労中
    OTHER = "other"


MEMBER_NOTE_LABELS: dict[str, MemberNote] = {
    "ひきこもり": MemberNote.HIKIKOMORI,
    "無職": MemberNote.UNEMPLOYED,
    "障害": MemberNote.DISABILITY,
    "要介護": MemberNote.NEEDS_CARE,
    "就労中": MemberNote.EMPLOYED,
}


def lookup(table: dict[str, T], label: str, code_list: str) -> T:
    """Map a source label through one code list; UnknownCode names the list, not the label."""
    try:
        return table[label.strip()]
    except KeyError:
        raise UnknownCode(f"unknown code in {code_list}") from None


def lookup_many(table: dict[str, T], labels: str, sep: str, code_list: str) -> list[T]:
    """Map a separated list of labels; empty parts are skipped, duplicates kept once, order kept."""
    out: list[T] = []
    for part in labels.split(sep):
        if not part.strip():
            continue
        code = lookup(table, part, code_list)
        if code not in out:
            out.append(code)
    return out
