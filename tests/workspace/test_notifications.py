"""Notifications over a real local HTTP server and a real local SMTP sink: one digest, no personal data,
at least once, never twice for the same thing."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import socketserver
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from hub.db import make_engine, make_sessionmaker
from hub.pipeline.tables import AlertState
from hub.workspace.attention import Attention
from hub.workspace.models import AlertWork, Notification, Plan, Referral
from hub.workspace.notifications import LEASE, NotifyConfig, _claim, _record, run_notifications

NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
CANARIES = ("HH-CANARY-4711", "alert-canary-0042", "ref-canary-0099", "plan-canary-0007", "houkatsu:C01-2025-0042",
            "山田", "elderly", "livelihood", "高齢", "生活困窮", "8050")

Sessions = sessionmaker[Session]


# --------------------------------------------------------------------------- local servers
class Webhook:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.status = 204
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.bodies.append(body)
                outer.headers.append(dict(self.headers))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """A minimal SMTP server (RFC 5321 subset: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) keeping messages."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write((line + "\r\n").encode())

            def handle(self) -> None:
                self.reply("220 sink ESMTP")
                sender, rcpts = "", list[str]()
                while True:
                    raw = self.rfile.readline()
                    if not raw:
                        return
                    cmd = raw.decode().strip()
                    verb = cmd.split(" ")[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 sink")
                    elif verb == "MAIL":
                        sender, rcpts = cmd.split(":", 1)[1].strip(), []
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        rcpts.append(cmd.split(":", 1)[1].strip())
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 go on")
                        lines = []
                        while (line := self.rfile.readline()) not in (b".\r\n", b""):
                            lines.append(line[1:] if line.startswith(b"..") else line)
                        outer.messages.append((sender, rcpts, b"".join(lines)))
                        self.reply("250 queued")
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 OK")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    w = Webhook()
    yield w
    w.close()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    yield sink
    sink.close()


@pytest.fixture
def sessions(blank_db: str) -> Iterator[sessionmaker[Session]]:
    sm = make_sessionmaker(make_engine(blank_db))
    with sm.begin() as s:
        s.add(AlertState(alert_id="alert-canary-0042", household_id="HH-CANARY-4711", kind="8050",
                         fields=["elderly", "livelihood"], records=["houkatsu:C01-2025-0042"], status="open",
                         raised_at=NOW - timedelta(hours=2), updated_at=NOW - timedelta(hours=2),
                         acknowledged_by=None))
        s.add(Referral(id="ref-canary-0099", origin="coordinator", source_event_id=None, household_id="HH-CANARY-4711",
                       person_id=None, record="houkatsu:C01-2025-0042", from_agency="elderly", target="livelihood",
                       status="requested", reason=None, requested_at=NOW - timedelta(days=20), updated_at=NOW,
                       updated_by="event:1"))
        s.add(Plan(id="plan-canary-0007", household_id="HH-CANARY-4711", state="active", lead_agency="livelihood",
                   roles={"livelihood": "山田さんの家計"}, goals=["山田さんの就労"], programmes=[],
                   next_monitoring_on=date(2026, 11, 20), evaluation=None, closed_reason=None, created_by="c",
                   created_at=NOW, updated_at=NOW, version=1))
    yield sm
    sm.kw["bind"].dispose()


def _config(**kw: object) -> NotifyConfig:
    return NotifyConfig(base_url="https://tsunagu.example.lg.jp", **kw)  # type: ignore[arg-type]


def _assert_no_canary(blob: str) -> None:
    for canary in CANARIES:
        assert canary not in blob, canary


def test_webhook_gets_one_signed_digest_without_personal_data_never_twice(sessions: Sessions, webhook: Webhook) -> None:
    """Alert, overdue referral and passed monitoring → one POST with counts and the link; a rerun sends nothing."""
    cfg = _config(webhook_url=webhook.url, webhook_secret="s3cret")
    res = run_notifications(sessions, cfg, NOW)
    assert res.sent == {"webhook": 3} and res.recorded == 3
    assert len(webhook.bodies) == 1
    body = webhook.bodies[0]
    _assert_no_canary(body.decode("utf-8"))
    doc = json.loads(body)
    assert doc["link"] == "https://tsunagu.example.lg.jp/alerts"
    assert doc["counts"] == {"alert": 1, "referral_overdue": 1, "monitoring_due": 1}
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert webhook.headers[0]["X-Tsunagu-Signature"] == expected
    assert run_notifications(sessions, cfg, NOW + timedelta(minutes=1)).sent == {}
    assert len(webhook.bodies) == 1


def test_a_worse_alert_is_a_new_thing_and_an_acted_on_alert_is_not(sessions: Sessions, webhook: Webhook) -> None:
    """The same alert updated later is sent again once; after the team acted on that update, nothing more."""
    cfg = _config(webhook_url=webhook.url)
    run_notifications(sessions, cfg, NOW)
    later = NOW + timedelta(hours=1)
    with sessions.begin() as s:
        s.execute(update(AlertState).values(updated_at=later))
    assert run_notifications(sessions, cfg, later).sent == {"webhook": 1}
    assert json.loads(webhook.bodies[-1])["counts"] == {"alert": 1}
    with sessions.begin() as s:
        s.execute(update(AlertState).values(updated_at=later + timedelta(hours=1)))
        s.add(AlertWork(alert_id="alert-canary-0042", state="acknowledged", assignee=None, closed_reason=None,
                        closed_at=None, reopened=False, reopen_count=0, last_seen_update=later + timedelta(hours=1),
                        updated_at=later, updated_by="coordinator"))
    assert run_notifications(sessions, cfg, later + timedelta(hours=2)).sent == {}
    assert len(webhook.bodies) == 2


def test_a_failed_send_stays_pending_and_is_sent_once_later(sessions: Sessions, webhook: Webhook) -> None:
    """HTTP 500 → rows unsent with http_500 and no personal data; the next run delivers them once."""
    cfg = _config(webhook_url=webhook.url)
    webhook.status = 500
    res = run_notifications(sessions, cfg, NOW)
    assert res.failed == {"webhook": "http_500"} and res.sent == {}
    with sessions() as s:
        rows = s.scalars(select(Notification)).all()
        assert {(r.sent_at, r.last_error_code, r.attempts) for r in rows} == {(None, "http_500", 1)}
    webhook.status = 200
    assert run_notifications(sessions, cfg, NOW + timedelta(minutes=1)).sent == {"webhook": 3}
    assert run_notifications(sessions, cfg, NOW + timedelta(minutes=2)).sent == {}
    assert len(webhook.bodies) == 2
    with sessions() as s:
        assert all(r.sent_at is not None and r.last_error_code is None for r in s.scalars(select(Notification)))


def test_an_unreachable_webhook_is_a_connect_error(sessions: Sessions) -> None:
    """Nothing listening: the rows stay pending with connect_error."""
    res = run_notifications(sessions, _config(webhook_url="http://127.0.0.1:9/none", timeout_s=2.0), NOW)
    assert res.failed == {"webhook": "connect_error"}


def test_mail_goes_through_smtp_without_personal_data(sessions: Sessions, smtp: SmtpSink) -> None:
    """The SMTP sink receives one Japanese mail to the configured recipients with counts and the link only."""
    cfg = _config(smtp_host="127.0.0.1", smtp_port=smtp.port, mail_from="tsunagu@city.example.lg.jp",
                  mail_to=("team@city.example.lg.jp", "lead@city.example.lg.jp"))
    res = run_notifications(sessions, cfg, NOW)
    assert res.sent == {"mail": 3}
    assert len(smtp.messages) == 1
    sender, rcpts, raw = smtp.messages[0]
    assert sender == "<tsunagu@city.example.lg.jp>"
    assert rcpts == ["<team@city.example.lg.jp>", "<lead@city.example.lg.jp>"]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    text = msg.get_content()
    assert "確認が必要な項目" in msg["Subject"] and "https://tsunagu.example.lg.jp/alerts" in text
    _assert_no_canary(raw.decode("ascii", "replace") + text + str(msg["Subject"]))
    assert run_notifications(sessions, cfg, NOW + timedelta(minutes=1)).sent == {}


def test_both_channels_are_independent(sessions: Sessions, webhook: Webhook, smtp: SmtpSink) -> None:
    """A mail failure does not re-send the webhook: each channel keeps its own rows."""
    cfg = _config(webhook_url=webhook.url, smtp_host="127.0.0.1", smtp_port=smtp.port, mail_to=("t@example.jp",))
    smtp.close()
    res = run_notifications(sessions, cfg, NOW)
    assert res.sent == {"webhook": 3} and res.failed == {"mail": "connect_error"}
    sink = SmtpSink()
    try:
        cfg2 = _config(webhook_url=webhook.url, smtp_host="127.0.0.1", smtp_port=sink.port, mail_to=("t@example.jp",))
        res = run_notifications(sessions, cfg2, NOW + timedelta(minutes=1))
        assert res.sent == {"mail": 3} and len(webhook.bodies) == 1 and len(sink.messages) == 1
    finally:
        sink.close()


def test_a_claimed_row_is_not_claimed_again_while_its_lease_runs(sessions: Sessions) -> None:
    """Two runs: the second finds the rows claimed and sends nothing; after the lease (a crash), they come back."""
    run_at = NOW + timedelta(hours=1)
    _record(sessions, [Attention("alert:x:1", "alert")], ["webhook"], run_at)
    first = _claim(sessions, "webhook", run_at, LEASE)
    assert [k for k, _ in first] == ["alert:x:1#webhook"]
    assert _claim(sessions, "webhook", run_at + timedelta(minutes=1), LEASE) == []
    assert [k for k, _ in _claim(sessions, "webhook", run_at + LEASE + timedelta(seconds=1), LEASE)] == [
        "alert:x:1#webhook"]


def test_no_channel_configured_records_nothing(sessions: Sessions) -> None:
    """Without a webhook URL or SMTP host and recipients, a run does nothing at all."""
    assert run_notifications(sessions, _config(smtp_host="127.0.0.1"), NOW).recorded == 0
    with sessions() as s:
        assert s.scalars(select(Notification)).all() == []


def test_config_comes_from_the_settings_and_channels_need_their_parts() -> None:
    """TSUNAGU_NOTIFY_* settings fill the config; mail needs a host and recipients, the webhook a URL."""
    from pydantic import SecretStr

    from hub.settings import Settings

    cfg = NotifyConfig.from_settings(Settings(web_base_url="https://ws.example.lg.jp", referral_overdue_days=7,
                                              notify_smtp_host="mail.example", notify_smtp_starttls=True,
                                              notify_smtp_password=SecretStr("pw"), notify_mail_to=["a@example"],
                                              notify_webhook_secret=SecretStr("k")))
    assert (cfg.base_url, cfg.referral_overdue_days, cfg.smtp_starttls, cfg.smtp_password, cfg.webhook_secret) == (
        "https://ws.example.lg.jp", 7, True, "pw", "k")
    assert cfg.channels == ["mail"]
    assert NotifyConfig.from_settings(Settings(notify_smtp_host="mail.example")).channels == []
    assert NotifyConfig.from_settings(Settings(notify_webhook_url="http://x")).channels == ["webhook"]
