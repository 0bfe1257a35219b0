"""Account administration for admins (/admin/users): list, add, disable, enable, unlock (as `tsunagu users`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import delete, select

from hub.workspace.audit import audit_access
from hub.workspace.auth import ADMIN, Principal, create_user, csrf_protect, require_roles, workspace_context
from hub.workspace.models import ROLES, User, WebSession
from hub.workspace.web import render
from schemas.codes import Field

router = APIRouter()

AGENCIES = [f.value for f in Field]
BAD_INPUT = "入力に誤りがあります（ユーザー名は半角英数字と . _ -、役割と所属を選択）。"


def _require_admin(principal: Principal) -> None:
    if principal.role != ADMIN:
        raise HTTPException(403, "この画面を見る権限がありません。")


def _page(request: Request, principal: Principal, *, error: str | None = None, flash: str | None = None,
          status_code: int = 200, form: dict[str, str] | None = None) -> Response:
    ctx = workspace_context(request)
    now = ctx.clock()
    with ctx.sessions() as s:
        users = s.scalars(select(User).order_by(User.username)).all()
    rows = [{"username": u.username, "role": u.role, "agency": u.agency,
             "status": "disabled" if u.disabled else ("locked" if u.locked_until and u.locked_until > now
                                                      else "active")} for u in users]
    return render(request, "users.html", {"rows": rows, "roles": ROLES, "agencies": AGENCIES, "form": form or {}},
                  principal, error=error, flash=flash, status_code=status_code)


@router.get("/admin/users")
def users_page(request: Request, principal: Principal = Depends(require_roles(ADMIN))) -> Response:
    return _page(request, principal)


@router.post("/admin/users")
def add_user(request: Request, username: str = Form(""), role: str = Form(""), agency: str = Form(""),
             password: str = Form(""), principal: Principal = Depends(csrf_protect)) -> Response:
    _require_admin(principal)
    ctx = workspace_context(request)
    try:
        with ctx.sessions.begin() as s:
            create_user(s, username.strip(), password, role, agency or None, ctx.clock())
            audit_access(s, principal, "user.add", object_id=f"user:{username.strip()}", at=ctx.clock())
    except ValueError as exc:
        messages = {"a user with this name exists": "このユーザー名はすでに使われています。",
                    "password: at least 8 characters": "パスワードは8文字以上にしてください。"}
        return _page(request, principal, status_code=400, form={"username": username, "role": role, "agency": agency},
                     error=messages.get(str(exc), BAD_INPUT))
    return RedirectResponse("/admin/users?flash=saved", status_code=303)


@router.post("/admin/users/{username}/{action}")
def change_user(request: Request, username: str, action: str,
                principal: Principal = Depends(csrf_protect)) -> Response:
    _require_admin(principal)
    if action not in ("disable", "enable", "unlock"):
        raise HTTPException(404, "見つかりません。")
    if action == "disable" and username == principal.username:
        return _page(request, principal, status_code=400, error="自分自身のアカウントは無効にできません。")
    ctx = workspace_context(request)
    with ctx.sessions.begin() as s:
        user = s.scalar(select(User).where(User.username == username))
        if user is None:
            raise HTTPException(404, "見つかりません。")
        if action == "disable":
            user.disabled = True
            s.execute(delete(WebSession).where(WebSession.user_id == user.id))  # their sessions end at once
        elif action == "enable":
            user.disabled = False
        else:
            user.locked_until = None
            user.failed_logins = 0
        audit_access(s, principal, f"user.{action}", object_id=f"user:{username}", at=ctx.clock())
    return RedirectResponse("/admin/users?flash=saved", status_code=303)
