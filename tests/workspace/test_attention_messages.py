"""What needs attention, and the notification message that says so without any personal detail."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from hub.workspace.attention import AlertFact, AttentionSettings, Facts, PlanFact, ReferralFact, evaluate
from hub.workspace.messages import build_message, inbox_link

NOW = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)  # 09:30 JST, 1 December
CANARY_HOUSEHOLD = "HH-CANARY-世帯-4711"
CANARY_ALERT = "alert-canary-山田花子"


def _facts() -> Facts:
    upd = NOW - timedelta(hours=3)
    return Facts(
        alerts=(AlertFact(CANARY_ALERT, upd),
                AlertFact("seen", upd, "acknowledged", upd),
                AlertFact("worse", upd, "acknowledged", upd - timedelta(days=1))),
        referrals=(ReferralFact("ref-canary-houkatsu:C01-2025-0042", "requested", NOW - timedelta(days=15)),
                   ReferralFact("young", "requested", NOW - timedelta(days=2)),
                   ReferralFact("taken", "accepted", NOW - timedelta(days=40))),
        plans=(PlanFact("plan-late", "active", date(2026, 11, 30)),
               PlanFact("plan-today", "active", date(2026, 12, 1)),
               PlanFact("plan-evaluated", "evaluated", date(2026, 10, 1))),
    )


def test_rules_pick_new_or_worse_alerts_overdue_referrals_and_passed_monitoring() -> None:
    """Exactly the unseen and worsened alerts, the referral overdue after 14 days, the plan past its day."""
    keys = [a.key for a in evaluate(_facts(), NOW, AttentionSettings(14))]
    upd = (NOW - timedelta(hours=3)).isoformat()
    assert keys == sorted([f"alert:{CANARY_ALERT}:{upd}", f"alert:worse:{upd}",
                           "monitoring:plan-late:2026-11-30", "referral-overdue:ref-canary-houkatsu:C01-2025-0042"])


def test_overdue_days_is_a_setting() -> None:
    """With 1 day allowed, the 2-day-old referral is overdue too."""
    keys = {a.key for a in evaluate(_facts(), NOW, AttentionSettings(1))}
    assert "referral-overdue:young" in keys


def test_monitoring_day_is_read_in_japan_time() -> None:
    """At 23:30 UTC on 30 Nov it is already 1 Dec in Japan, so a 30 Nov monitoring date has passed."""
    late_evening_utc = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    facts = Facts(plans=(PlanFact("p", "active", date(2026, 11, 30)),))
    assert [a.key for a in evaluate(facts, late_evening_utc, AttentionSettings())] == ["monitoring:p:2026-11-30"]
    assert evaluate(facts, datetime(2026, 11, 30, 14, 0, tzinfo=UTC), AttentionSettings()) == []


def test_the_message_carries_no_key_name_record_field_or_household() -> None:
    """Canary ids, record keys and Japanese field words never reach the message; only counts and the link do."""
    items = evaluate(_facts(), NOW, AttentionSettings(14))
    msg = build_message(items, "https://tsunagu.example.lg.jp/ws/")
    blob = f"{msg.subject}\n{msg.text}\n{msg.link}\n{msg.as_json()}"
    for canary in (CANARY_ALERT, CANARY_HOUSEHOLD, "山田", "houkatsu", "C01-2025-0042", "plan-late", "worse",
                   "高齢", "障害", "子ども", "生活困窮", "elderly", "livelihood", "disability", "child"):
        assert canary not in blob
    assert msg.link == "https://tsunagu.example.lg.jp/ws/alerts"
    assert msg.counts == {"alert": 2, "referral_overdue": 1, "monitoring_due": 1}
    assert "2件" in msg.text and "1件" in msg.text


def test_the_link_must_be_an_http_url() -> None:
    """A base URL that is not http(s) is a configuration error, not a broken link in a mail."""
    with pytest.raises(ValueError):
        inbox_link("javascript:alert(1)")
    assert inbox_link("http://127.0.0.1:8080") == "http://127.0.0.1:8080/alerts"
