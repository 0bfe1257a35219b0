"""Accounts and sessions of the workspace: argon2 passwords, login CSRF, lockout, timeout, logout, cookie flags."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select
from workspace.support import PASSWORD, Workspace, add_users, csrf_in, make_workspace

from hub.settings import Settings
from hub.workspace.auth import (
    check_login_csrf,
    hash_password,
    new_login_csrf,
    verify_password,
)
from hub.workspace.models import User, WebSession


def _login_post(client, username: str, password: str, token: str | None = None):  # type: ignore[no-untyped-def]
    page = client.get("/login")
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token if token is not None else csrf_in(page.text)},
                       follow_redirects=False)


def test_passwords_are_argon2_and_verify() -> None:
    """A stored hash is argon2id with its own salt; the right password verifies, a wrong one does not."""
    h1, h2 = hash_password("secret-pass"), hash_password("secret-pass")
    assert h1.startswith("$argon2id$") and h1 != h2
    assert verify_password(h1, "secret-pass")
    assert not verify_password(h1, "secret-pasS")
    assert not verify_password("not-a-hash", "secret-pass")


def test_login_form_has_csrf_and_is_refused_without_it(workspace: Workspace) -> None:
    """The login form carries a csrf_token field; a POST without the token (or with another one) is refused."""
    c = workspace.client()
    page = c.get("/login")
    assert 'name="csrf_token"' in page.text and 'name="username"' in page.text and 'name="password"' in page.text
    r = c.post("/login", data={"username": "coordinator", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403 and "tsunagu_session" not in r.headers.get("set-cookie", "")
    r = c.post("/login", data={"username": "coordinator", "password": PASSWORD, "csrf_token": "forged"},
               follow_redirects=False)
    assert r.status_code == 403
    other = workspace.client()  # a token from another browser's form does not match this browser's cookie
    token = csrf_in(other.get("/login").text)
    c.cookies.clear()
    r = c.post("/login", data={"username": "coordinator", "password": PASSWORD, "csrf_token": token},
               follow_redirects=False)
    assert r.status_code == 403


def test_login_csrf_cookie_is_signed_and_expires() -> None:
    """The pre-session token only matches its own signed cookie, and not after two hours."""
    key = b"k" * 32
    token, cookie = new_login_csrf(key, now_s=1000.0)
    assert check_login_csrf(key, cookie, token, now_s=1001.0)
    assert not check_login_csrf(b"x" * 32, cookie, token, now_s=1001.0)
    assert not check_login_csrf(key, cookie, token + "x", now_s=1001.0)
    assert not check_login_csrf(key, cookie, token, now_s=1000.0 + 3 * 3600)
    tampered = cookie.replace(".1000.", ".999999.")
    assert not check_login_csrf(key, tampered, token, now_s=1001.0)


def test_login_sets_secure_session_cookie_and_logout_ends_it(workspace: Workspace) -> None:
    """Login sets an HttpOnly SameSite=Strict session cookie; logout (with CSRF) deletes the server-side session."""
    c = workspace.client()
    r = _login_post(c, "coordinator", PASSWORD)
    assert r.status_code == 303 and r.headers["location"] == "/alerts"
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("tsunagu_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http in this test and no setting: see the next test
    with workspace.sessions() as s:
        assert len(s.scalars(select(WebSession)).all()) == 1
        stored = s.scalars(select(WebSession)).one().id_hash
    token = cookie.split(";")[0].split("=", 1)[1]
    assert token not in stored  # only the hash is kept
    assert c.get("/consents").status_code == 200
    r = c.post("/logout", data={}, follow_redirects=False)
    assert r.status_code == 403  # no CSRF token
    page = c.get("/consents")
    r = c.post("/logout", data={"csrf_token": csrf_in(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    with workspace.sessions() as s:
        assert s.scalars(select(WebSession)).all() == []
    c.cookies.set("tsunagu_session", token)  # replaying the old cookie gets nothing
    r = c.get("/consents", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_secure_flag_over_https_or_by_setting(blank_db: str) -> None:
    """The session cookie is Secure when the request came over https, and always when the setting says so."""
    ws = make_workspace(blank_db)
    add_users(ws.sessions)
    c = ws.client()
    c.base_url = c.base_url.copy_with(scheme="https")  # type: ignore[attr-defined]
    r = _login_post(c, "coordinator", PASSWORD)
    assert "Secure" in next(h for h in r.headers.get_list("set-cookie") if h.startswith("tsunagu_session="))
    assert "strict-transport-security" in r.headers
    forced = make_workspace(blank_db, Settings(topic_prefix="wstest", web_secure_cookies=True))
    r = forced.client().get("/login")  # behind a TLS-terminating proxy the app itself sees http
    assert "Secure" in r.headers["set-cookie"] and r.headers["set-cookie"].startswith("tsunagu_login_csrf=")
    assert "strict-transport-security" in r.headers
    assert "strict-transport-security" not in ws.client().get("/login").headers  # plain http, no setting


def test_lockout_after_five_failures_even_with_the_right_password(workspace: Workspace) -> None:
    """Five wrong passwords lock the account for 15 minutes (the right one is refused too), then it opens again."""
    c = workspace.client()
    for _ in range(4):
        assert _login_post(c, "coordinator", "wrong-password").status_code == 401
    assert _login_post(c, "coordinator", PASSWORD).status_code == 303  # a success resets the count
    for _ in range(5):
        assert _login_post(c, "coordinator", "wrong-password").status_code == 401
    r = _login_post(c, "coordinator", PASSWORD)
    assert r.status_code == 401 and "tsunagu_session" not in r.headers.get("set-cookie", "")
    unknown = _login_post(c, "nobody", PASSWORD)
    assert unknown.status_code == 401
    assert re.sub(r'value="[^"]*"', "", unknown.text) == re.sub(r'value="[^"]*"', "", r.text).replace(
        "coordinator", "nobody")  # the same answer as for an unknown user
    workspace.clock.now += timedelta(minutes=14)
    assert _login_post(c, "coordinator", PASSWORD).status_code == 401
    workspace.clock.now += timedelta(minutes=2)
    assert _login_post(c, "coordinator", PASSWORD).status_code == 303
    with workspace.sessions() as s:
        user = s.scalars(select(User).where(User.username == "coordinator")).one()
        assert user.failed_logins == 0 and user.locked_until is None


def test_session_times_out_when_idle_and_slides_while_used(workspace: Workspace) -> None:
    """A session ends after 30 idle minutes; each request restarts the timer; 12 hours end it in any case."""
    c = workspace.client("coordinator")
    workspace.clock.now += timedelta(minutes=29)
    assert c.get("/consents").status_code == 200
    workspace.clock.now += timedelta(minutes=29)
    assert c.get("/consents").status_code == 200
    workspace.clock.now += timedelta(minutes=31)
    r = c.get("/consents", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/consents"
    with workspace.sessions() as s:
        assert s.scalars(select(WebSession)).all() == []  # the expired row is gone
    c = workspace.client("coordinator")
    for _ in range(12 * 2 + 1):
        workspace.clock.now += timedelta(minutes=29)
        last = c.get("/consents", follow_redirects=False)
    assert last.status_code == 303  # past the 12-hour cap though never idle


def test_disabled_user_cannot_log_in_and_loses_the_session(workspace: Workspace) -> None:
    """Disabling a user refuses their login and ends the session they have."""
    c = workspace.client("coordinator")
    with workspace.sessions.begin() as s:
        s.scalars(select(User).where(User.username == "coordinator")).one().disabled = True
    assert c.get("/consents", follow_redirects=False).status_code == 303
    assert _login_post(workspace.client(), "coordinator", PASSWORD).status_code == 401


def test_login_next_is_kept_but_only_on_this_site(workspace: Workspace) -> None:
    """After login the user goes where they were headed; an outside address (open redirect) is ignored."""
    c = workspace.client()
    r = c.get("/consents?resident_no=1055433006", follow_redirects=False)
    assert r.headers["location"] == "/login?next=/consents%3Fresident_no%3D1055433006"
    for nxt, expected in (("/consents?resident_no=1055433006", "/consents?resident_no=1055433006"),
                          ("//evil.example/x", "/alerts"), ("https://evil.example/", "/alerts")):
        c.cookies.clear()
        page = c.get("/login")
        r = c.post("/login", data={"username": "coordinator", "password": PASSWORD, "next": nxt,
                                   "csrf_token": csrf_in(page.text)}, follow_redirects=False)
        assert r.headers["location"] == expected


def test_pages_carry_security_headers(workspace: Workspace) -> None:
    """Every page forbids framing and sniffing and is not cached."""
    r = workspace.client().get("/login")
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"


def test_a_login_replaces_the_session_the_browser_had(workspace: Workspace) -> None:
    """Logging in again (even as someone else) ends the previous session: its token no longer works anywhere."""
    c = workspace.client("consent_officer")
    old = c.cookies.get("tsunagu_session")
    page = c.get("/login")
    r = c.post("/login", data={"username": "coordinator", "password": PASSWORD, "csrf_token": csrf_in(page.text)},
               follow_redirects=False)
    assert r.status_code == 303 and c.cookies.get("tsunagu_session") != old
    with workspace.sessions() as s:
        assert len(s.scalars(select(WebSession)).all()) == 1
    replay = workspace.client()
    replay.cookies.set("tsunagu_session", old or "")
    assert replay.get("/consents", follow_redirects=False).status_code == 303


def test_login_lockout_timeout_and_audit_on_postgresql(pg_database: str) -> None:
    """On PostgreSQL too: sessions (aware times), lockout and the audit chain with the user."""
    from consent.audit import verify
    from consent.store import audit_head, iter_audit
    from hub.migrate import upgrade

    upgrade(pg_database)
    ws = make_workspace(pg_database)
    add_users(ws.sessions)
    try:
        c = ws.client()
        for _ in range(5):
            assert _login_post(c, "consent_officer", "wrong-password").status_code == 401
        assert _login_post(c, "consent_officer", PASSWORD).status_code == 401
        ws.clock.now += timedelta(minutes=16)
        assert _login_post(c, "consent_officer", PASSWORD).status_code == 303
        assert c.get("/consents?resident_no=1055433006").status_code == 200
        ws.clock.now += timedelta(minutes=31)
        assert c.get("/consents", follow_redirects=False).status_code == 303
        with ws.sessions() as s:
            entries = [e.to_json() for e in iter_audit(s)]
            head = audit_head(s)
        assert entries and entries[-1]["user"] == "consent_officer" and entries[-1]["action"] == "consent.view"
        assert verify(entries, expected_head=head).ok
    finally:
        for cl in ws.clients:
            cl.close()
        ws.sessions.kw["bind"].dispose()
