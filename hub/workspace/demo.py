"""`tsunagu demo --serve`: after the sample run, a demo account per role and the service on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from hub.settings import Settings
from hub.workspace.models import User

#: the demo accounts: each named after its role
DEMO_ROLES: tuple[str, ...] = ("coordinator", "consent_officer", "ops", "admin")
PASSWORD_ENV = "TSUNAGU_DEMO_PASSWORD"


def demo_passwords(env: dict[str, str] | None = None) -> dict[str, str]:
    """All equal to ``TSUNAGU_DEMO_PASSWORD`` when set, else a fresh random one per account."""
    given = (env if env is not None else dict(os.environ)).get(PASSWORD_ENV, "")
    if given:
        if len(given) < 8:
            raise ValueError(f"{PASSWORD_ENV} must have at least 8 characters")
        return dict.fromkeys(DEMO_ROLES, given)
    return {role: secrets.token_urlsafe(9) for role in DEMO_ROLES}


def seed_demo_users(url: str, passwords: dict[str, str]) -> None:
    """Create (or reset the password of) the demo accounts in the hub database at ``url``."""
    from hub.db import make_engine, make_sessionmaker
    from hub.migrate import upgrade
    from hub.workspace.auth import create_user, hash_password

    upgrade(url)
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine).begin() as s:
            for role, password in passwords.items():
                user = s.scalar(select(User).where(User.username == role))
                if user is None:
                    create_user(s, role, password, role, None, datetime.now(UTC))
                else:
                    user.password_hash = hash_password(password)
                    user.role, user.disabled, user.failed_logins, user.locked_until = role, False, 0, None
    finally:
        engine.dispose()


def accounts_text(passwords: dict[str, str], url: str) -> str:
    lines = ["", f"ワークスペース workspace: {url}/login", "デモ用アカウント demo accounts (user / password):"]
    for role in DEMO_ROLES:
        lines.append(f"  {role:<16} {passwords[role]}")
    lines.append("Ctrl-C で終了 stop with Ctrl-C")
    return "\n".join(lines)


def serve_demo(settings: Settings, sources: Path, state: Path, port: int, passwords: dict[str, str],
               echo: Callable[[str], None]) -> None:
    """``tsunagu serve`` over the demo's state folder on 127.0.0.1:``port``; prints the accounts once it listens."""
    from hub.migrate import database_url_for
    from hub.serve.server import HubServer

    seed_demo_users(database_url_for(settings, state), passwords)
    # the workspace is on the staff listener (``port``); the webhook listener takes any free port
    server = HubServer(settings, sources, host="127.0.0.1", port=0, staff_host="127.0.0.1", staff_port=port,
                       state=state, demo=True)

    def announce() -> None:
        while not server.ready.wait(0.5):
            if server.finished.is_set():
                return
        echo(accounts_text(passwords, f"http://127.0.0.1:{server.staff_port}"))

    threading.Thread(target=announce, name="demo-announce", daemon=True).start()
    server.run()
