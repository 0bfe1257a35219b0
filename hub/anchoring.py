"""Anchors the audit chain's head from the hub's database to the append-only anchor file (when it moved)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from consent.anchor import Anchor, append_anchor, last_anchor
from consent.store import HEAD_ID, AuditHeadRow
from hub.logging import get_logger
from hub.settings import Settings

log = get_logger("tsunagu.audit")


def anchor_path(settings: Settings, state_dir: Path) -> Path:
    """Where the anchors go: the configured file, else ``audit.anchor`` in the state folder."""
    return settings.audit_anchor_path or state_dir / "audit.anchor"


def audit_key_of(settings: Settings) -> bytes | None:
    """The audit HMAC key of the settings (None when unset)."""
    return settings.audit_hmac_key.get_secret_value().encode("utf-8") or None


def anchor_head(sessions: sessionmaker[Session], path: Path, key: bytes | None) -> Anchor | None:
    """Append the stored head to ``path`` unless the last anchor already has it; returns the new anchor."""
    with sessions() as s:
        head = s.get(AuditHeadRow, HEAD_ID)
        if head is None or head.entries == 0:
            return None
        entries, digest = head.entries, head.hash
    try:
        previous = last_anchor(path) if path.exists() else None
    except (OSError, ValueError):
        previous = None  # verification reports a damaged anchor file; keep anchoring
    if previous is not None and previous.entries == entries and previous.head == digest:
        return None
    anchor = append_anchor(path, entries, digest, datetime.now(UTC), key)
    log.info("audit head anchored", count=entries, path=str(path))
    return anchor
