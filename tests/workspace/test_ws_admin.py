"""Account administration on the web (/admin/users): only admins; add, disable (sessions end), unlock; audited."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from workspace.support import Workspace, csrf_in, login

from consent.store import iter_audit
from hub.workspace.models import User


def test_admin_adds_disables_and_unlocks_accounts(workspace: Workspace) -> None:
    """An admin adds a user who can then log in; disabling ends that user's session; unlock lifts a lockout."""
    admin = workspace.client("admin")
    page = admin.get("/admin/users")
    assert page.status_code == 200 and "coordinator" in page.text
    r = admin.post("/admin/users", data={"csrf_token": csrf_in(page.text), "username": "yamada", "role": "coordinator",
                                         "agency": "child", "password": "initial-pass-1"}, follow_redirects=False)
    assert r.status_code == 303
    with workspace.sessions() as s:
        user = s.scalars(select(User).where(User.username == "yamada")).one()
        assert user.role == "coordinator" and user.agency == "child" and user.password_hash.startswith("$argon2id$")
    new = login(workspace.client(), "yamada", "initial-pass-1")
    assert new.get("/alerts").status_code == 200
    page = admin.get("/admin/users")
    r = admin.post("/admin/users/yamada/disable", data={"csrf_token": csrf_in(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert new.get("/alerts", follow_redirects=False).status_code == 303  # their session ended
    page = admin.get("/admin/users")
    assert "無効" in page.text
    r = admin.post("/admin/users/admin/disable", data={"csrf_token": csrf_in(page.text)}, follow_redirects=False)
    assert r.status_code == 400  # not oneself
    with workspace.sessions.begin() as s:
        s.scalars(select(User).where(User.username == "ops")).one().locked_until = workspace.clock.now + timedelta(
            minutes=10)
    page = admin.get("/admin/users")
    assert "ロック中" in page.text
    r = admin.post("/admin/users/ops/unlock", data={"csrf_token": csrf_in(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    with workspace.sessions() as s:
        assert s.scalars(select(User).where(User.username == "ops")).one().locked_until is None
        actions = [(e.user, e.action, e.sourcerecord) for e in iter_audit(s) if e.user]
    assert ("admin", "user.add", "user:yamada") in actions and ("admin", "user.disable", "user:yamada") in actions
    assert ("admin", "user.unlock", "user:ops") in actions


def test_bad_account_input_is_refused_with_a_message(workspace: Workspace) -> None:
    """A taken name, a short password or an unknown role is a 400 with a message; nothing is added."""
    admin = workspace.client("admin")
    for form in ({"username": "coordinator", "role": "ops", "password": "long-enough-1"},
                 {"username": "kato", "role": "ops", "password": "short"},
                 {"username": "kato", "role": "chief", "password": "long-enough-1"},
                 {"username": "加藤", "role": "ops", "password": "long-enough-1"}):
        page = admin.get("/admin/users")
        r = admin.post("/admin/users", data={"csrf_token": csrf_in(page.text), "agency": "", **form})
        assert r.status_code == 400 and 'class="error"' in r.text, form
    with workspace.sessions() as s:
        assert len(s.scalars(select(User)).all()) == 5


def test_only_admins_see_the_account_menu(workspace: Workspace) -> None:
    """The アカウント menu entry is shown to admins only, and a coordinator gets 403 at /admin/users."""
    assert 'href="/admin/users"' in workspace.client("admin").get("/alerts").text
    coordinator = workspace.client("coordinator")
    assert 'href="/admin/users"' not in coordinator.get("/alerts").text
    assert coordinator.get("/admin/users").status_code == 403
