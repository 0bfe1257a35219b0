"""The workspace inside `tsunagu serve` (HubServer, embedded broker): mounted beside the service's own routes, a
consent recorded on /consents reaches the hub, and the periodic round stops with the service."""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from workspace.support import BUNDLED_SAMPLES, PASSWORD, add_users

from hub.http.consent.models import API_SOURCE
from hub.pipeline.tables import HubOutbox, ProcessedEvent
from hub.serve.server import HubServer
from hub.topics import Topics

RESIDENT = "1055433006"


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached")


@pytest.fixture
def served(fast_settings, tmp_path: Path) -> Iterator[tuple[HubServer, str]]:  # type: ignore[no-untyped-def]
    src = tmp_path / "sources"
    (src / "registry").mkdir(parents=True)
    shutil.copy(BUNDLED_SAMPLES / "registry" / "jumin.csv", src / "registry")
    settings = fast_settings.model_copy(update={"kafka_bootstrap": "", "poll_interval_s": 0.2,
                                                "kodomo_webhook_secret": SecretStr("ws-serve-test-secret")})
    server = HubServer(settings, src, host="127.0.0.1", port=0, staff_port=0, poll_interval_s=0.2,
                       state=tmp_path / "state",
                       install_signal_handlers=False, drain_timeout_s=30)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            server.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="serve-workspace", daemon=True)
    thread.start()
    wait_for(lambda: server.ready.is_set() or server.finished.is_set(), 90, "service ready")
    assert not errors and server.ready.is_set()
    assert server.core is not None
    add_users(server.core.sessions)
    try:
        yield server, f"http://127.0.0.1:{server.staff_port}"  # the workspace is on the staff listener
    finally:
        server.request_stop()
        thread.join(timeout=120)
        assert not thread.is_alive() and not errors


def test_workspace_is_served_beside_health_and_metrics(served: tuple[HubServer, str]) -> None:
    """/healthz and /metrics stay public; /ops and the pages need a login; a consent recorded there reaches the hub."""
    server, base = served
    with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as c:
        assert c.get("/healthz").status_code in (200, 503)
        assert c.get("/metrics").status_code == 200
        r = c.get("/ops")
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/ops"
        assert c.get("/ops.json").status_code == 401
        assert c.get(f"/api/persons/{RESIDENT}/consents").status_code == 401
        page = c.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        r = c.post("/login", data={"username": "consent_officer", "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 303 and r.headers["location"] == "/consents"
        page = c.get(f"/consents?resident_no={RESIDENT}")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        r = c.post("/consents", data={"csrf_token": token, "resident_no": RESIDENT, "fields": "elderly",
                                      "grantor": "self", "period_start": "2026-12-01"})
        assert r.status_code == 303, r.text
    assert server.core is not None
    sessions = server.core.sessions

    def applied() -> bool:
        with sessions() as s:
            return bool(s.scalar(select(func.count()).select_from(ProcessedEvent).where(
                ProcessedEvent.source == API_SOURCE)))

    wait_for(applied, 60, "the hub applied the consent recorded on /consents")
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(HubOutbox).where(
            HubOutbox.topic == Topics(server.settings.topic_prefix).intake)) == 0
    assert server.workspace is not None and server.workspace.rounds >= 1


def test_workspace_events_in_the_outbox_are_relayed(served: tuple[HubServer, str]) -> None:
    """A CloudEvent the workspace wrote to the hub outbox (topic <prefix>.workspace.v1) leaves it: the topic exists."""
    from datetime import UTC, datetime

    from hub.workspace.publish import workspace_topic

    server, _base = served
    assert server.core is not None
    sessions = server.core.sessions
    topic = workspace_topic(server.settings.topic_prefix)
    from kafka import KafkaAdminClient

    assert server.workspace is not None and server.workspace.bootstrap
    admin = KafkaAdminClient(bootstrap_servers=server.workspace.bootstrap, client_id="test-admin")
    try:
        assert topic in set(admin.list_topics())  # created at start, not on first use
    finally:
        admin.close()
    with sessions.begin() as s:
        s.add(HubOutbox(topic=topic, key="h-test", value=b'{"specversion":"1.0"}', created_at=datetime.now(UTC)))

    def relayed() -> bool:
        with sessions() as s:
            return not s.scalar(select(func.count()).select_from(HubOutbox).where(HubOutbox.topic == topic))

    wait_for(relayed, 60, "the workspace event relayed")
