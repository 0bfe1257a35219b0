"""Referral sync over the hub's real state after a batch run of the samples, and the service on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from hub.db import make_engine, make_sessionmaker
from hub.migrate import upgrade
from hub.pipeline.tables import CaseEvent, HubOutbox
from hub.settings import Settings
from hub.workspace.models import Notification, Referral, ReferralChange
from hub.workspace.notifications import NotifyConfig, run_notifications
from hub.workspace.periodic import tick
from hub.workspace.referral_rules import REFERRAL_REQUESTED
from hub.workspace.referrals import sync_referrals


def test_every_sample_referral_event_becomes_one_referral_and_a_second_sync_changes_nothing(seeded_db: str) -> None:
    """After `tsunagu run` over the samples, sync imports each referral.requested event once; rerunning is a no-op."""
    sessions = make_sessionmaker(make_engine(seeded_db))
    now = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    with sessions() as s:
        events = s.scalar(select(func.count()).select_from(CaseEvent).where(CaseEvent.type == REFERRAL_REQUESTED))
    assert events and events > 0
    with sessions.begin() as s:
        first = sync_referrals(s, now=now, prefix="t")
    assert first.imported == events and first.skipped == 0  # the samples: 11, none answered yet (all overdue)
    with sessions() as s:
        refs = s.scalars(select(Referral)).all()
        outbox_after_first = s.scalar(select(func.count()).select_from(HubOutbox))
        changes_after_first = s.scalar(select(func.count()).select_from(ReferralChange))
    assert len(refs) == events
    assert all(r.origin == "event" and r.status in ("requested", "accepted", "in-progress", "completed") for r in refs)
    assert changes_after_first == events + first.moved
    with sessions.begin() as s:
        assert sync_referrals(s, now=now + timedelta(minutes=1), prefix="t").imported == 0
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(HubOutbox)) == outbox_after_first
        assert s.scalar(select(func.count()).select_from(ReferralChange)) == changes_after_first
    sessions.kw["bind"].dispose()


def test_tick_syncs_and_records_notifications_once(seeded_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """serve's periodic tick: referrals imported, a digest per channel sent once for the seeded alerts."""
    sessions = make_sessionmaker(make_engine(seeded_db))
    sent: list[object] = []
    settings = Settings(topic_prefix="t", notify_webhook_url="http://127.0.0.1:9/unused")
    now = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    import hub.workspace.notifications as notifications

    monkeypatch.setitem(notifications.SENDERS, "webhook", lambda cfg, msg: sent.append(msg))
    first = tick(sessions, settings, now)
    second = tick(sessions, settings, now + timedelta(minutes=1))
    assert first.referrals.imported > 0 and second.referrals.imported == 0
    assert first.notifications.sent.get("webhook", 0) > 0 and second.notifications.sent == {}
    assert len(sent) == 1
    sessions.kw["bind"].dispose()


def test_referral_sync_and_notification_claims_on_postgresql(pg_database: str) -> None:
    """The same service on PostgreSQL: import, move by case event, and a digest claimed and sent once."""
    from workspace.wc_fixtures import T0, add_event, add_household

    upgrade(pg_database)
    sessions = make_sessionmaker(make_engine(pg_database))
    with sessions.begin() as s:
        add_household(s)
        add_event(s, "r1", REFERRAL_REQUESTED, field="elderly", days=0, team_published=True)
        add_event(s, "c1", "jp.tsunagu.case.opened.v1", field="livelihood", days=1, status="intake")
    with sessions.begin() as s:
        res = sync_referrals(s, now=T0 + timedelta(days=20), prefix="t")
    assert (res.imported, res.moved) == (1, 1)
    with sessions.begin() as s:
        r = s.scalars(select(Referral)).one()
        assert r.status == "accepted"
        r.status = "requested"  # pretend nobody accepted: overdue after 14 days
    sent: list[object] = []
    cfg = NotifyConfig(base_url="http://127.0.0.1:8080", webhook_url="http://unused")
    out = run_notifications(sessions, cfg, T0 + timedelta(days=20), senders={"webhook": lambda c, m: sent.append(m)})
    assert out.sent == {"webhook": 1}
    assert run_notifications(sessions, cfg, T0 + timedelta(days=21),
                             senders={"webhook": lambda c, m: sent.append(m)}).sent == {}
    with sessions() as s:
        assert [n.key for n in s.scalars(select(Notification))] == [f"referral-overdue:{r.id}#webhook"]
    sessions.kw["bind"].dispose()
