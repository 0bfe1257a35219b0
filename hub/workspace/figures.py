"""Yearly figures for 事業評価 and 国への実績報告, as a pure aggregation over rows (counts only, no personal data).

Fiscal year (年度) N runs from 1 April N to 31 March N+1, dates read in Japan time. The rows
carry no names, no record keys and no text: only fields, dates, states and codes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from hub.workspace.labels import FIELD, STATUS
from hub.workspace.plan_rules import CLOSE_REASONS, PROGRAMMES
from hub.workspace.referral_rules import STATUSES
from schemas.codes import REFERRAL_LABELS, Field

FIELD_LABELS: dict[str, str] = {f.value: FIELD[f.value] for f in Field}
TARGET_LABELS: dict[str, str] = {
    **{code.value: label for label, code in REFERRAL_LABELS.items()},
    "outreach": FIELD["outreach"],
    "participation": FIELD["participation"],
}
#: referral states, in the screens' words
STATUS_LABELS: dict[str, str] = {s: STATUS[s] for s in STATUSES}
MEETING_LABELS: dict[str, str] = {"support_meeting": "支援会議（第106条の6）", "team_meeting": "重層的支援会議"}


def fiscal_year_of(day: date) -> int:
    """The 年度 a day belongs to (April–March)."""
    return day.year if day.month >= 4 else day.year - 1


def fiscal_year_range(fy: int) -> tuple[date, date]:
    """First and last day of 年度 ``fy``."""
    return date(fy, 4, 1), date(fy + 1, 3, 31)


def fiscal_year_label(fy: int) -> str:
    """``2026`` → ``令和8年度``; 2019 is 令和元年度; before it 平成."""
    if fy >= 2019:
        n = fy - 2018
        return f"令和{'元' if n == 1 else n}年度"
    if fy >= 1989:
        n = fy - 1988
        return f"平成{'元' if n == 1 else n}年度"
    return f"{fy}年度"


@dataclass(frozen=True)
class CaseRow:
    field: str
    opened_on: date
    closed_on: date | None
    person: str | None = None  # an opaque hub id, used only to count people once (実人数)


@dataclass(frozen=True)
class MeetingRow:
    household: str
    kind: str
    state: str
    held_on: date | None
    decision: str | None


@dataclass(frozen=True)
class PlanRow:
    household: str
    created_on: date  # JST date
    programmes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlanEndRow:
    kind: str  # closure | handover
    on: date
    reason: str | None = None


@dataclass(frozen=True)
class ReferralRow:
    target: str
    status: str
    requested_on: date  # JST date


@dataclass(frozen=True)
class Figure:
    section: str
    item: str
    value: int


@dataclass(frozen=True)
class Figures:
    fiscal_year: int
    label: str
    start: date
    end: date
    rows: tuple[Figure, ...]

    def section(self, name: str) -> list[Figure]:
        return [r for r in self.rows if r.section == name]

    def value(self, section: str, item: str) -> int:
        return next((r.value for r in self.rows if r.section == section and r.item == item), 0)

    def csv_rows(self) -> list[list[str]]:
        """Header and one line per figure: 年度, 区分, 項目, 件数."""
        out = [["年度", "区分", "項目", "件数"]]
        out += [[self.label, r.section, r.item, str(r.value)] for r in self.rows]
        return out


S_CONSULT = "相談受付件数（分野別）"
S_PEOPLE = "相談者の実人数（分野別）"
S_CASE_CLOSED = "相談の終結件数（分野別）"
S_TEAM = "多機関協働事業"
S_MEETINGS = "会議の開催件数"
S_REFERRALS = "つなぎ（紹介）の件数（つなぎ先・結果別）"
S_PLAN_ENDS = "プランの終結・引継ぎ"

TAKEN_IN = "多機関協働の対象とした世帯数"
PLANS_MADE = "プラン作成件数"


def aggregate(fy: int, cases: Iterable[CaseRow], meetings: Iterable[MeetingRow], plans: Iterable[PlanRow],
              plan_ends: Iterable[PlanEndRow], referrals: Iterable[ReferralRow]) -> Figures:
    """The figures of 年度 ``fy``: every count is of things whose date falls inside it.

    - consultations received: cases by intake date, per field (and in total), and the people
      behind them counted once (実人数; a case whose person is not resolved is not counted there);
    - case closures: cases by closing date, per field;
    - households taken into 多機関協働: distinct households with a 重層的支援会議 decision
      ``take_into_team`` held in the year, or a plan made in the year; plans made, and those
      routed to アウトリーチ等 and 参加支援;
    - 支援会議 and 重層的支援会議 held (by the day held);
    - referrals requested in the year, by target and by their status now;
    - plan closures by reason code, and hand-overs to the 主担当 agency.
    """
    start, end = fiscal_year_range(fy)

    def inside(d: date | None) -> bool:
        return d is not None and start <= d <= end

    rows: list[Figure] = []
    case_list: Sequence[CaseRow] = list(cases)
    opened = Counter(c.field for c in case_list if inside(c.opened_on))
    closed = Counter(c.field for c in case_list if inside(c.closed_on))
    for f in Field:
        rows.append(Figure(S_CONSULT, FIELD_LABELS[f.value], opened[f.value]))
    rows.append(Figure(S_CONSULT, "合計", sum(opened[f.value] for f in Field)))
    people: dict[str, set[str]] = {f.value: set() for f in Field}
    for c in case_list:
        if inside(c.opened_on) and c.person is not None and c.field in people:
            people[c.field].add(c.person)
    for f in Field:
        rows.append(Figure(S_PEOPLE, FIELD_LABELS[f.value], len(people[f.value])))
    rows.append(Figure(S_PEOPLE, "合計（分野をまたぐ方は1人）", len(set().union(*people.values()))))
    for f in Field:
        rows.append(Figure(S_CASE_CLOSED, FIELD_LABELS[f.value], closed[f.value]))
    rows.append(Figure(S_CASE_CLOSED, "合計", sum(closed[f.value] for f in Field)))

    held = [m for m in meetings if m.state == "held" and inside(m.held_on)]
    plan_list = [p for p in plans if inside(p.created_on)]
    taken_in = {m.household for m in held if m.kind == "team_meeting" and m.decision == "take_into_team"}
    taken_in |= {p.household for p in plan_list}
    rows.append(Figure(S_TEAM, TAKEN_IN, len(taken_in)))
    rows.append(Figure(S_TEAM, PLANS_MADE, len(plan_list)))
    for code, label in PROGRAMMES.items():
        rows.append(Figure(S_TEAM, f"うち{label}につないだプラン", sum(code in p.programmes for p in plan_list)))

    by_kind = Counter(m.kind for m in held)
    for kind, label in MEETING_LABELS.items():
        rows.append(Figure(S_MEETINGS, label, by_kind[kind]))
    designated = sum(m.kind == "support_meeting" and m.decision == "designate" for m in held)
    rows.append(Figure(S_MEETINGS, "うち支援会議の対象に指定した件数", designated))

    refs = Counter((r.target, r.status) for r in referrals if inside(r.requested_on))
    for target, label in TARGET_LABELS.items():
        total = sum(n for (t, _s), n in refs.items() if t == target)
        if total == 0:
            continue
        rows.append(Figure(S_REFERRALS, f"{label}（計）", total))
        for status, slabel in STATUS_LABELS.items():
            if refs[(target, status)]:
                rows.append(Figure(S_REFERRALS, f"{label}：{slabel}", refs[(target, status)]))
    rows.append(Figure(S_REFERRALS, "合計", sum(refs.values())))

    ends = [e for e in plan_ends if inside(e.on)]
    closures = Counter(e.reason or "other" for e in ends if e.kind == "closure")
    rows.append(Figure(S_PLAN_ENDS, "終結（計）", sum(closures.values())))
    for code, label in CLOSE_REASONS.items():
        if closures[code]:
            rows.append(Figure(S_PLAN_ENDS, f"終結：{label}", closures[code]))
    rows.append(Figure(S_PLAN_ENDS, "主担当機関への引継ぎ", sum(e.kind == "handover" for e in ends)))
    return Figures(fy, fiscal_year_label(fy), start, end, tuple(rows))


def target_label(code: str | None) -> str:
    """Japanese name of an agency or programme code (``—`` for none)."""
    if not code:
        return "—"
    return TARGET_LABELS.get(code, code)
