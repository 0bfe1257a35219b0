"""Yearly figures: April–March fiscal years, counts per section, CSV rows; no personal data in the input."""

from __future__ import annotations

from datetime import date

from hub.workspace.figures import (
    PLANS_MADE,
    S_CASE_CLOSED,
    S_CONSULT,
    S_MEETINGS,
    S_PEOPLE,
    S_PLAN_ENDS,
    S_REFERRALS,
    S_TEAM,
    TAKEN_IN,
    CaseRow,
    MeetingRow,
    PlanEndRow,
    PlanRow,
    ReferralRow,
    aggregate,
    fiscal_year_label,
    fiscal_year_of,
    fiscal_year_range,
)


def test_fiscal_years_run_april_to_march_with_reiwa_labels() -> None:
    """31 March belongs to the previous 年度, 1 April starts a new one; 2019 is 令和元年度."""
    assert fiscal_year_of(date(2027, 3, 31)) == 2026
    assert fiscal_year_of(date(2026, 4, 1)) == 2026
    assert fiscal_year_of(date(2026, 3, 31)) == 2025
    assert fiscal_year_range(2026) == (date(2026, 4, 1), date(2027, 3, 31))
    assert fiscal_year_label(2026) == "令和8年度"
    assert fiscal_year_label(2019) == "令和元年度"
    assert fiscal_year_label(2018) == "平成30年度"


def test_counts_fall_in_the_year_by_their_own_dates() -> None:
    """Each figure counts only what happened inside the fiscal year, at its boundaries too."""
    cases = [CaseRow("elderly", date(2026, 4, 1), None, "p1"), CaseRow("elderly", date(2026, 3, 31), date(2026, 5, 1)),
             CaseRow("child", date(2027, 3, 31), None, "p1"), CaseRow("livelihood", date(2027, 4, 1), None, "p2"),
             CaseRow("disability", date(2025, 1, 1), date(2027, 4, 1)), CaseRow("child", date(2026, 9, 1), None, "p1"),
             CaseRow("child", date(2026, 10, 1), None, "p3")]
    meetings = [MeetingRow("H1", "support_meeting", "held", date(2026, 6, 1), "designate"),
                MeetingRow("H2", "support_meeting", "held", date(2026, 7, 1), "no_action"),
                MeetingRow("H3", "support_meeting", "agenda", None, None),
                MeetingRow("H4", "support_meeting", "cancelled", date(2026, 7, 1), None),
                MeetingRow("H1", "team_meeting", "held", date(2026, 9, 1), "take_into_team"),
                MeetingRow("H5", "team_meeting", "held", date(2026, 3, 1), "take_into_team")]
    plans = [PlanRow("H1", date(2026, 9, 2), ("outreach",)),
             PlanRow("H6", date(2026, 10, 1), ("outreach", "participation")),
             PlanRow("H7", date(2026, 3, 30))]
    ends = [PlanEndRow("closure", date(2026, 12, 1), "goals_met"),
            PlanEndRow("closure", date(2027, 1, 1), "moved_out"),
            PlanEndRow("handover", date(2027, 2, 1)), PlanEndRow("closure", date(2027, 5, 1), "goals_met")]
    refs = [ReferralRow("livelihood", "completed", date(2026, 5, 1)),
            ReferralRow("livelihood", "requested", date(2026, 6, 1)),
            ReferralRow("outreach", "accepted", date(2026, 7, 1)), ReferralRow("child", "rejected", date(2026, 3, 31))]
    f = aggregate(2026, cases, meetings, plans, ends, refs)
    assert f.value(S_CONSULT, "高齢（地域包括）") == 1
    assert f.value(S_CONSULT, "子ども") == 3
    assert f.value(S_CONSULT, "生活困窮") == 0
    assert f.value(S_CONSULT, "合計") == 4
    assert f.value(S_PEOPLE, "子ども") == 2  # p1 twice, p3
    assert f.value(S_PEOPLE, "高齢（地域包括）") == 1
    assert f.value(S_PEOPLE, "合計（分野をまたぐ方は1人）") == 2  # p1 in two fields, p3
    assert f.value(S_CASE_CLOSED, "高齢（地域包括）") == 1
    assert f.value(S_CASE_CLOSED, "障害") == 0
    assert f.value(S_TEAM, TAKEN_IN) == 2  # H1 (meeting and plan, once) and H6
    assert f.value(S_TEAM, PLANS_MADE) == 2
    assert f.value(S_TEAM, "うちアウトリーチ等を通じた継続的支援事業につないだプラン") == 2
    assert f.value(S_TEAM, "うち参加支援事業につないだプラン") == 1
    assert f.value(S_MEETINGS, "支援会議（第106条の6）") == 2
    assert f.value(S_MEETINGS, "重層的支援会議") == 1
    assert f.value(S_MEETINGS, "うち支援会議の対象に指定した件数") == 1
    assert f.value(S_REFERRALS, "自立相談（計）") == 2
    assert f.value(S_REFERRALS, "自立相談：完了") == 1
    assert f.value(S_REFERRALS, "アウトリーチ等を通じた継続的支援事業：受理") == 1
    assert f.value(S_REFERRALS, "こども家庭センター（計）") == 0
    assert f.value(S_REFERRALS, "合計") == 3
    assert f.value(S_PLAN_ENDS, "終結（計）") == 2
    assert f.value(S_PLAN_ENDS, "終結：目標達成") == 1
    assert f.value(S_PLAN_ENDS, "主担当機関への引継ぎ") == 1


def test_referral_status_words_match_the_screens() -> None:
    """The report says 受理 / 不受理 / 対応中 exactly as /referrals does."""
    from hub.workspace.figures import STATUS_LABELS
    from hub.workspace.labels import STATUS as SCREEN

    assert all(SCREEN[k] == v for k, v in STATUS_LABELS.items())


def test_csv_rows_have_a_header_and_one_line_per_figure() -> None:
    """The CSV lists 年度, 区分, 項目, 件数 for every figure, empty year included."""
    f = aggregate(2025, [], [], [], [], [])
    rows = f.csv_rows()
    assert rows[0] == ["年度", "区分", "項目", "件数"]
    assert len(rows) == len(f.rows) + 1
    assert all(r[0] == "令和7年度" for r in rows[1:])
    assert all(r[3] == "0" for r in rows[1:])
