"""What ``tsunagu serve`` runs every ``notify_interval_s``: referral sync, then notifications."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from hub.logging import get_logger
from hub.settings import Settings
from hub.workspace.notifications import NotifyConfig, NotifyResult, run_notifications
from hub.workspace.referrals import SyncResult, sync_referrals

log = get_logger("tsunagu.workspace.periodic")


@dataclass(frozen=True)
class TickResult:
    referrals: SyncResult
    notifications: NotifyResult


def tick(sessions: sessionmaker[Session], settings: Settings, now: datetime | None = None) -> TickResult:
    """Import and move referrals from the hub's events, then send what needs attention (blocking: run in a thread)."""
    at = now or datetime.now(UTC)
    with sessions.begin() as s:
        synced = sync_referrals(s, now=at, prefix=settings.topic_prefix)
    if synced.imported or synced.moved or synced.skipped:
        log.info("referrals synced", imported=synced.imported, moved=synced.moved, skipped=synced.skipped)
    sent = run_notifications(sessions, NotifyConfig.from_settings(settings), at)
    return TickResult(synced, sent)
