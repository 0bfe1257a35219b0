"""Who is asking: password hashing, server-side sessions with a timeout, lockout, CSRF, and the role checks.

* Passwords: argon2id (argon2-cffi), re-hashed on login when the parameters changed.
* Sessions: the cookie ``tsunagu_session`` holds a random token (HttpOnly, SameSite=Strict, Path=/,
  Secure over https or when ``web_secure_cookies`` says so); the table keeps only its SHA-256. A
  session ends after ``web_session_idle_minutes`` without a request, after ``web_session_max_hours``
  in any case, and at logout (the row is deleted).
* Lockout: ``web_lockout_failures`` failed logins in a row lock the account for
  ``web_lockout_minutes``; while locked even the right password is refused. An unknown user costs
  the same argon2 verification as a known one and gets the same answer.
* CSRF: each session has its own token; every POST carries it as the form field ``csrf_token`` (or
  the ``X-CSRF-Token`` header) and is refused (403) without it. The login form, before any session
  exists, gets a token bound to a short-lived signed cookie ``tsunagu_login_csrf``.
* Roles: ``coordinator``, ``consent_officer``, ``ops``, ``admin``. ``require_roles`` always lets
  ``admin`` through; ``ops`` passes only where ops is named (the /ops view).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from fastapi import Depends, HTTPException, Request, status
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hub.settings import Settings
from hub.workspace.models import ROLES, User, WebSession

if TYPE_CHECKING:
    from hub.workspace.app import WorkspaceContext

SESSION_COOKIE = "tsunagu_session"
LOGIN_CSRF_COOKIE = "tsunagu_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
#: how long the login form's token is good for
LOGIN_CSRF_MAX_AGE_S = 2 * 60 * 60

COORDINATOR = "coordinator"
CONSENT_OFFICER = "consent_officer"
OPS = "ops"
ADMIN = "admin"

_hasher = PasswordHasher()
#: verified against when the username is unknown, so both cases cost the same
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


# --------------------------------------------------------------------------- passwords
def hash_password(password: str) -> str:
    """An argon2id hash (with its own salt and parameters) of the password."""
    if not password:
        raise ValueError("empty password")
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when the password matches the stored hash; never raises for a wrong or malformed hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


# --------------------------------------------------------------------------- who
@dataclass(frozen=True, slots=True)
class Principal:
    """The logged-in user as the routes see them: a username, a role, and the agency (field code) if any."""

    username: str
    role: str
    agency: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    def may(self, *roles: str) -> bool:
        """Whether this user passes ``require_roles(*roles)`` (admin passes everywhere)."""
        return self.role == ADMIN or self.role in roles


# --------------------------------------------------------------------------- users
class LoginRefused(Exception):
    """Wrong username or password, locked or disabled account; the message is the same fixed text."""


def create_user(s: Session, username: str, password: str, role: str, agency: str | None, now: datetime) -> User:
    """Add a user (caller commits); raises ValueError on a bad role/agency or a taken name."""
    from schemas.codes import Field

    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if agency is not None and agency not in {f.value for f in Field}:
        raise ValueError(f"agency must be one of {', '.join(f.value for f in Field)}")
    if not username or len(username) > 64 or not username.isascii() or not username.replace("_", "").replace(
            "-", "").replace(".", "").isalnum():
        raise ValueError("username: 1-64 characters a-z, 0-9, '.', '_' or '-'")
    if len(password) < 8:
        raise ValueError("password: at least 8 characters")
    if s.scalar(select(User.id).where(User.username == username)) is not None:
        raise ValueError("a user with this name exists")
    user = User(username=username, password_hash=hash_password(password), role=role, agency=agency,
                failed_logins=0, locked_until=None, disabled=False, created_at=now)
    s.add(user)
    s.flush()
    return user


def authenticate(s: Session, username: str, password: str, now: datetime, settings: Settings) -> User:
    """The user when the password is right and the account usable; counts failures and locks. Caller commits."""
    user = s.scalar(select(User).where(User.username == username)) if username else None
    if user is None:
        verify_password(_DUMMY_HASH, password)
        raise LoginRefused()
    if user.locked_until is not None and user.locked_until > now:
        verify_password(_DUMMY_HASH, password)
        raise LoginRefused()
    if not verify_password(user.password_hash, password):
        user.failed_logins = (user.failed_logins or 0) + 1
        if user.failed_logins >= settings.web_lockout_failures:
            user.locked_until = now + timedelta(minutes=settings.web_lockout_minutes)
            user.failed_logins = 0
        raise LoginRefused()
    if user.disabled:
        raise LoginRefused()
    user.failed_logins = 0
    user.locked_until = None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


# --------------------------------------------------------------------------- sessions
def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(s: Session, user: User, now: datetime, settings: Settings) -> tuple[str, WebSession]:
    """A new session for the user: (cookie token, row). Caller commits."""
    token = secrets.token_urlsafe(32)
    row = WebSession(id_hash=token_hash(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32),
                     created_at=now, last_seen=now,
                     expires_at=now + timedelta(minutes=settings.web_session_idle_minutes))
    s.add(row)
    s.flush()
    return token, row


def load_session(s: Session, token: str, now: datetime, settings: Settings) -> tuple[WebSession, User] | None:
    """The live session of this cookie token (its idle timer restarted), or None; an expired one is deleted."""
    row = s.get(WebSession, token_hash(token))
    if row is None:
        return None
    user = s.get(User, row.user_id)
    hard_end = row.created_at + timedelta(hours=settings.web_session_max_hours)
    if user is None or user.disabled or row.expires_at <= now or hard_end <= now:
        s.delete(row)
        return None
    row.last_seen = now
    row.expires_at = min(now + timedelta(minutes=settings.web_session_idle_minutes), hard_end)
    return row, user


def end_session(s: Session, token: str) -> None:
    s.execute(delete(WebSession).where(WebSession.id_hash == token_hash(token)))


def purge_sessions(s: Session, now: datetime) -> int:
    """Delete expired sessions; returns how many."""
    result: Any = s.execute(delete(WebSession).where(WebSession.expires_at <= now))
    return int(result.rowcount or 0)


def secure_cookies(request: Request, settings: Settings) -> bool:
    """Secure flag: the setting when given, else whether this request came over https."""
    if settings.web_secure_cookies is not None:
        return settings.web_secure_cookies
    return request.url.scheme == "https"


def cookie_options(request: Request, settings: Settings) -> dict[str, Any]:
    return {"httponly": True, "samesite": "strict", "secure": secure_cookies(request, settings), "path": "/"}


# --------------------------------------------------------------------------- login-form CSRF (no session yet)
def _sign(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def new_login_csrf(key: bytes, now_s: float | None = None) -> tuple[str, str]:
    """(token for the form, value for the signed cookie)."""
    token = secrets.token_urlsafe(24)
    issued = str(int(now_s if now_s is not None else time.time()))
    body = f"{token}.{issued}"
    return token, f"{body}.{_sign(key, body)}"


def check_login_csrf(key: bytes, cookie: str | None, form_token: str | None, now_s: float | None = None) -> bool:
    """The form's token matches the signed, unexpired cookie."""
    if not cookie or not form_token:
        return False
    parts = cookie.split(".")
    if len(parts) != 3:
        return False
    token, issued, sig = parts
    if not hmac.compare_digest(_sign(key, f"{token}.{issued}"), sig):
        return False
    try:
        age = (now_s if now_s is not None else time.time()) - int(issued)
    except ValueError:
        return False
    return 0 <= age <= LOGIN_CSRF_MAX_AGE_S and hmac.compare_digest(token, form_token)


# --------------------------------------------------------------------------- FastAPI dependencies
class LoginRequired(Exception):
    """Raised by ``current_user`` for a page request without a live session (→ 303 to /login)."""

    def __init__(self, next_path: str) -> None:
        super().__init__("login required")
        self.next_path = next_path


def workspace_context(request: Request) -> WorkspaceContext:
    ctx: WorkspaceContext = request.app.state.workspace
    return ctx


def wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path.endswith(".json") or (
        "application/json" in request.headers.get("accept", "") and "text/html" not in request.headers.get(
            "accept", ""))


def current_user(request: Request) -> Principal:
    """The logged-in principal; pages without a session redirect to /login, JSON answers 401."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    ctx = workspace_context(request)
    token = request.cookies.get(SESSION_COOKIE)
    found = None
    if token:
        with ctx.sessions.begin() as s:
            loaded = load_session(s, token, ctx.clock(), ctx.settings)
            if loaded is not None:
                row, user = loaded
                found = (Principal(user.username, user.role, user.agency), row.csrf_token)
    if found is None:
        if wants_json(request):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "login required")
        nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(nxt)
    principal, csrf = found
    request.state.principal = principal
    request.state.csrf_token = csrf
    return principal


def ops_reader(request: Request) -> Principal:
    """``/ops.json`` for a logged-in ops/admin user, or for a machine (``tsunagu status --url``) sending
    ``Authorization: Bearer <token>`` of an API token whose role is ops or admin (``TSUNAGU_API_TOKENS``)."""
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() != "bearer ":
        principal = current_user(request)
        if not principal.may(OPS):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "この画面を見る権限がありません。")
        return principal
    given = auth[7:].strip().encode("utf-8")
    role = None
    for token, value in workspace_context(request).settings.api_tokens.items():  # every token, constant time each
        if hmac.compare_digest(token.encode("utf-8"), given):
            role = value.split(":", 1)[0]
    if role not in (OPS, ADMIN):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED if role is None else status.HTTP_403_FORBIDDEN,
                            "an API token of role ops or admin is required")
    return Principal(f"token:{role}", role, None)


def require_roles(*roles: str) -> Callable[..., Principal]:
    """A dependency: the principal when their role is one of ``roles`` (or admin), else 403."""
    allowed = frozenset(roles)
    unknown = allowed - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    def check(principal: Principal = Depends(current_user)) -> Principal:
        if not principal.may(*allowed):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "この画面を見る権限がありません。")
        return principal

    return check


async def csrf_protect(request: Request, principal: Principal = Depends(current_user)) -> Principal:
    """For every POST: the session's CSRF token must come back as form field ``csrf_token`` or header; else 403."""
    expected = getattr(request.state, "csrf_token", None)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    if not expected or not sent or not hmac.compare_digest(str(expected), sent):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "フォームの有効期限が切れました。画面を開き直してください。")
    return principal


#: role groups the routes use
TEAM = (COORDINATOR,)
CONSENT = (CONSENT_OFFICER, COORDINATOR)
OPS_VIEW = (OPS,)
