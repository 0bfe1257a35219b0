"""Logging in and out (/login, /logout) and / (each role's home screen)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from hub.logging import get_logger
from hub.workspace.auth import (
    CONSENT_OFFICER,
    COORDINATOR,
    LOGIN_CSRF_COOKIE,
    OPS,
    SESSION_COOKIE,
    LoginRefused,
    Principal,
    authenticate,
    check_login_csrf,
    cookie_options,
    csrf_protect,
    current_user,
    end_session,
    new_login_csrf,
    start_session,
    workspace_context,
)
from hub.workspace.web import render

router = APIRouter()
log = get_logger("tsunagu.workspace.auth")

REFUSED = "ユーザー名またはパスワードが違うか、アカウントが一時的にロックされています。"
EXPIRED_FORM = "ログイン画面の有効期限が切れました。もう一度入力してください。"


def home_of(principal: Principal) -> str:
    """Where a role starts: the inbox for the team, consents for consent officers, /ops for ops."""
    if principal.may(COORDINATOR):
        return "/alerts"
    if principal.role == CONSENT_OFFICER:
        return "/consents"
    if principal.role == OPS:
        return "/ops"
    return "/login"


def safe_next(value: str | None) -> str | None:
    """Only a path on this site (no scheme, no host, no ``//``) may follow a login."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    return value


def _login_page(request: Request, *, next_path: str | None, error: str | None, status_code: int,
                username: str = "") -> Response:
    ctx = workspace_context(request)
    token, cookie = new_login_csrf(ctx.login_key)
    request.state.csrf_token = token
    response = render(request, "login.html", {"next": next_path or "", "username": username}, None,
                      status_code=status_code, error=error)
    opts = cookie_options(request, ctx.settings)
    response.set_cookie(LOGIN_CSRF_COOKIE, cookie, max_age=2 * 60 * 60, **opts)
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, next_path=safe_next(next), error=None, status_code=200)


@router.post("/login")
def login(request: Request, username: str = Form(""), password: str = Form(""), csrf_token: str = Form(""),
          next: str = Form("")) -> Response:
    ctx = workspace_context(request)
    nxt = safe_next(next)
    if not check_login_csrf(ctx.login_key, request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        return _login_page(request, next_path=nxt, error=EXPIRED_FORM, status_code=403, username=username[:64])
    now = ctx.clock()
    with ctx.sessions.begin() as s:
        try:
            user = authenticate(s, username[:64], password, now, ctx.settings)
        except LoginRefused:
            user = None
        if user is None:
            token = None
        else:
            previous = request.cookies.get(SESSION_COOKIE)
            if previous:  # a login always gets a fresh session; the one the browser had ends
                end_session(s, previous)
            token, _row = start_session(s, user, now, ctx.settings)
            principal = Principal(user.username, user.role, user.agency)
    if token is None:
        log.info("login refused")
        return _login_page(request, next_path=nxt, error=REFUSED, status_code=401, username=username[:64])
    log.info("login", role=principal.role)
    response = RedirectResponse(nxt or home_of(principal), status_code=303)
    opts = cookie_options(request, ctx.settings)
    response.set_cookie(SESSION_COOKIE, token, **opts)  # a session cookie: gone when the browser closes
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
def logout(request: Request, principal: Principal = Depends(csrf_protect)) -> Response:
    ctx = workspace_context(request)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        with ctx.sessions.begin() as s:
            end_session(s, token)
    response = RedirectResponse("/login?flash=logged_out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=cookie_options(request, ctx.settings)["secure"])
    return response


@router.get("/")
def home(principal: Principal = Depends(current_user)) -> Response:
    return RedirectResponse(home_of(principal), status_code=303)
