"""Helpers for the workspace tests: users of every role, logging in through the real form, a settable clock."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from hub.db import make_engine, make_sessionmaker
from hub.settings import Settings
from hub.workspace.app import WorkspaceContext, create_workspace_app
from hub.workspace.auth import create_user

ROOT = Path(__file__).resolve().parents[2]
BUNDLED_SAMPLES = ROOT / "hub" / "samples"
PASSWORD = "test-password-1"
#: username → (role, agency); one per role, plus a coordinator who works for the elderly agency
USERS: dict[str, tuple[str, str | None]] = {
    "coordinator": ("coordinator", None),
    "consent_officer": ("consent_officer", None),
    "ops": ("ops", None),
    "admin": ("admin", None),
    "houkatsu": ("coordinator", "elderly"),
}
ROLES = ("coordinator", "consent_officer", "ops", "admin")
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_in(html: str) -> str:
    """The CSRF token of the first form on a page."""
    m = CSRF_RE.search(html)
    assert m, "page has no csrf_token field"
    return m.group(1)


_HASHES: dict[str, str] = {}


def add_users(sessions: sessionmaker[Session], users: dict[str, tuple[str, str | None]] | None = None) -> None:
    """One user per entry, all with ``PASSWORD`` (hashed once per test session: argon2 is slow on purpose)."""
    from hub.workspace.models import User

    with sessions.begin() as s:
        for name, (role, agency) in (users or USERS).items():
            if PASSWORD not in _HASHES:
                _HASHES[PASSWORD] = create_user(s, name, PASSWORD, role, agency, datetime.now(UTC)).password_hash
                continue
            s.add(User(username=name, password_hash=_HASHES[PASSWORD], role=role, agency=agency, failed_logins=0,
                       locked_until=None, disabled=False, created_at=datetime.now(UTC)))


def login(client: TestClient, username: str, password: str = PASSWORD) -> TestClient:
    """Log the client in through the real form (login CSRF included); fails the test when refused."""
    page = client.get("/login")
    r = client.post("/login", data={"username": username, "password": password, "csrf_token": csrf_in(page.text)},
                    follow_redirects=False)
    assert r.status_code == 303, f"login of {username} refused ({r.status_code})"
    return client


class Clock:
    """A settable clock (aware UTC) for session timeout and lockout tests."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Workspace:
    """A workspace app over one database, with a client factory that logs in as a given user."""

    url: str
    sessions: sessionmaker[Session]
    ctx: WorkspaceContext
    app: FastAPI
    clock: Clock
    clients: list[TestClient] = field(default_factory=list)

    def client(self, username: str | None = None) -> TestClient:
        """A fresh client (own cookies), logged in as ``username`` unless None (anonymous)."""
        c = TestClient(self.app, base_url="http://testserver")
        self.clients.append(c)
        return login(c, username) if username else c


def make_workspace(url: str, settings: Settings | None = None) -> Workspace:
    sessions = make_sessionmaker(make_engine(url))
    clock = Clock()
    ctx = WorkspaceContext(sessions=sessions, settings=settings or Settings(topic_prefix="wstest"), clock=clock)
    return Workspace(url=url, sessions=sessions, ctx=ctx, app=create_workspace_app(ctx), clock=clock)


