"""Notifications: tell the team by webhook and/or mail that something needs attention, at least once, never twice.

Each thing (a new or worse alert, an overdue referral, a passed monitoring date; see
:mod:`hub.workspace.attention`) gets one :class:`Notification` row per channel, keyed
``<thing>#<channel>``. A run records new rows, claims the unsent ones (an optimistic bump of
``attempts`` plus a lease, so two serve instances never both send a row), sends ONE digest per channel that
carries only counts and the inbox link (:mod:`hub.workspace.messages`), and marks the rows sent.
A failed send leaves them pending with an error code and the next run retries; a crash between a
send and its mark re-sends once (at-least-once).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage

import httpx
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hub.logging import get_logger
from hub.pipeline.tables import AlertState
from hub.settings import Settings
from hub.workspace.attention import (
    AlertFact,
    Attention,
    AttentionSettings,
    Facts,
    PlanFact,
    ReferralFact,
    evaluate,
)
from hub.workspace.messages import Message, build_message
from hub.workspace.models import AlertWork, Notification, Plan, Referral
from hub.workspace.referrals import team_may_see

log = get_logger("tsunagu.workspace.notify")

WEBHOOK = "webhook"
MAIL = "mail"
#: a claimed row is someone's to send for this long; after it, a crashed send is tried again
LEASE = timedelta(minutes=5)
CLAIM_PREFIX = "claimed:"


class SendError(Exception):
    """A send failed; ``code`` is short and carries no personal data (``http_500``, ``smtp_550``, ``timeout``)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class NotifyConfig:
    base_url: str
    webhook_url: str = ""
    webhook_secret: str = ""
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: str = ""
    mail_from: str = "tsunagu@localhost"
    mail_to: tuple[str, ...] = ()
    referral_overdue_days: int = 14
    timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> NotifyConfig:
        """From hub Settings (``notify_*``, ``web_base_url``, ``referral_overdue_days``)."""
        return cls(
            base_url=settings.web_base_url,
            webhook_url=settings.notify_webhook_url,
            webhook_secret=settings.notify_webhook_secret.get_secret_value(),
            smtp_host=settings.notify_smtp_host,
            smtp_port=settings.notify_smtp_port,
            smtp_starttls=settings.notify_smtp_starttls,
            smtp_username=settings.notify_smtp_username,
            smtp_password=settings.notify_smtp_password.get_secret_value(),
            mail_from=settings.notify_mail_from or "tsunagu@localhost",
            mail_to=tuple(settings.notify_mail_to),
            referral_overdue_days=settings.referral_overdue_days,
        )

    @property
    def channels(self) -> list[str]:
        out = []
        if self.webhook_url:
            out.append(WEBHOOK)
        if self.smtp_host and self.mail_to:
            out.append(MAIL)
        return out


# --------------------------------------------------------------------------- senders
def send_webhook(config: NotifyConfig, message: Message) -> None:
    """POST the message as JSON; any 2xx is success. Signed with HMAC-SHA256 when a secret is set."""
    body = json.dumps(message.as_json(), ensure_ascii=False, sort_keys=True).encode("utf-8")
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if config.webhook_secret:
        sig = hmac.new(config.webhook_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
        headers["X-Tsunagu-Signature"] = f"sha256={sig}"
    try:
        response = httpx.post(config.webhook_url, content=body, headers=headers, timeout=config.timeout_s)
    except httpx.TimeoutException as exc:
        raise SendError("timeout") from exc
    except httpx.HTTPError as exc:
        raise SendError("connect_error") from exc
    if not 200 <= response.status_code < 300:
        raise SendError(f"http_{response.status_code}")


def send_mail(config: NotifyConfig, message: Message) -> None:
    """Send the message by SMTP (STARTTLS and login when configured)."""
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = config.mail_from
    mail["To"] = ", ".join(config.mail_to)
    mail.set_content(message.text)
    try:
        with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.timeout_s) as smtp:
            if config.smtp_starttls:
                smtp.starttls()
            if config.smtp_username:
                smtp.login(config.smtp_username, config.smtp_password)
            smtp.send_message(mail)
    except smtplib.SMTPResponseException as exc:
        raise SendError(f"smtp_{exc.smtp_code}") from exc
    except smtplib.SMTPRecipientsRefused as exc:
        raise SendError("smtp_recipients_refused") from exc
    except TimeoutError as exc:
        raise SendError("timeout") from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise SendError("connect_error") from exc


Sender = Callable[[NotifyConfig, Message], None]
SENDERS: dict[str, Sender] = {WEBHOOK: send_webhook, MAIL: send_mail}


# --------------------------------------------------------------------------- the run
def gather_facts(s: Session, now: datetime) -> Facts:
    """Alerts with the team's work on them, referrals still requested that the team may see, active plans."""
    work = {w.alert_id: w for w in s.scalars(select(AlertWork))}
    alerts = [
        AlertFact(a.alert_id, a.updated_at, work[a.alert_id].state if a.alert_id in work else None,
                  work[a.alert_id].last_seen_update if a.alert_id in work else None)
        for a in s.scalars(select(AlertState))
    ]
    referrals = [ReferralFact(r.id, r.status, r.requested_at)
                 for r in s.scalars(select(Referral).where(Referral.status == "requested"))
                 if team_may_see(s, r, now)]
    plans = [PlanFact(p.id, p.state, p.next_monitoring_on)
             for p in s.scalars(select(Plan).where(Plan.state == "active"))]
    return Facts(tuple(alerts), tuple(referrals), tuple(plans))


@dataclass
class NotifyResult:
    recorded: int = 0
    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def _record(sessions: sessionmaker[Session], items: Sequence[Attention], channels: Sequence[str],
            now: datetime) -> int:
    wanted = {f"{a.key}#{ch}": a.kind for a in items for ch in channels}
    if not wanted:
        return 0
    try:
        with sessions.begin() as s:
            known = set(s.scalars(select(Notification.key).where(Notification.key.in_(list(wanted)))))
            new = [k for k in wanted if k not in known]
            for key in new:
                s.add(Notification(key=key, kind=wanted[key], created_at=now, sent_at=None, attempts=0,
                                   last_error_code=None))
        return len(new)
    except IntegrityError:  # another instance recorded them at the same moment: its rows serve
        return 0


def _leased(code: str | None, now: datetime, lease: timedelta) -> bool:
    """Another run claimed the row and may still be sending it (its lease has not run out)."""
    if not code or not code.startswith(CLAIM_PREFIX):
        return False
    try:
        at = datetime.fromisoformat(code.removeprefix(CLAIM_PREFIX))
    except ValueError:
        return False
    return at > now - lease


def _claim(sessions: sessionmaker[Session], channel: str, now: datetime, lease: timedelta) -> list[tuple[str, str]]:
    """Claim the unsent rows of a channel for one send.

    A claim bumps ``attempts`` and writes a lease (``claimed:<time>``) into ``last_error_code``,
    only where nobody changed the row since we read it: two runs never both claim a row, and a
    row being sent stays claimed until the send is marked done or failed (or the lease runs out,
    after a crash: then it is sent again — at least once).
    """
    claimed: list[tuple[str, str]] = []
    with sessions.begin() as s:
        pending = s.execute(select(Notification.key, Notification.kind, Notification.attempts,
                                   Notification.last_error_code)
                            .where(Notification.sent_at.is_(None), Notification.key.like(f"%#{channel}"))
                            .order_by(Notification.key)).all()
        for key, kind, attempts, code in pending:
            if _leased(code, now, lease):
                continue
            same_code = Notification.last_error_code.is_(None) if code is None else Notification.last_error_code == code
            res = s.execute(update(Notification)
                            .where(Notification.key == key, Notification.sent_at.is_(None),
                                   Notification.attempts == attempts, same_code)
                            .values(attempts=attempts + 1, last_error_code=f"{CLAIM_PREFIX}{now.isoformat()}"))
            if getattr(res, "rowcount", 0) == 1:
                claimed.append((key, kind))
    return claimed


def _finish(sessions: sessionmaker[Session], keys: Sequence[str], now: datetime, error: str | None) -> None:
    with sessions.begin() as s:
        s.execute(update(Notification).where(Notification.key.in_(list(keys)), Notification.sent_at.is_(None))
                  .values(sent_at=now if error is None else None, last_error_code=error))


def run_notifications(sessions: sessionmaker[Session], config: NotifyConfig, now: datetime, *,
                      senders: dict[str, Sender] | None = None) -> NotifyResult:
    """One pass: record what needs attention, then per channel send one digest of everything unsent."""
    result = NotifyResult()
    channels = config.channels
    if not channels:
        return result
    use = senders or SENDERS
    with sessions() as s:
        items = evaluate(gather_facts(s, now), now, AttentionSettings(config.referral_overdue_days))
    result.recorded = _record(sessions, items, channels, now)
    for channel in channels:
        claimed = _claim(sessions, channel, now, LEASE)
        if not claimed:
            continue
        kinds = [Attention(key.rpartition("#")[0], kind) for key, kind in claimed]  # type: ignore[arg-type]
        message = build_message(kinds, config.base_url)
        keys = [k for k, _ in claimed]
        try:
            use[channel](config, message)
        except SendError as exc:
            _finish(sessions, keys, now, exc.code)
            result.failed[channel] = exc.code
            log.warning("notification not sent", channel=channel, items=len(keys), error=exc.code)
            continue
        _finish(sessions, keys, now, None)
        result.sent[channel] = len(keys)
        log.info("notification sent", channel=channel, items=len(keys))
    return result
