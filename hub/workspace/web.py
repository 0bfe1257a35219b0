"""Rendering for the workspace: Jinja2 templates with Japanese labels and JST times, and the DB session dependency."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from hub.workspace.auth import ADMIN, CONSENT_OFFICER, COORDINATOR, OPS, Principal, workspace_context
from hub.workspace.labels import ALERT_KIND as KIND_LABELS
from hub.workspace.labels import FIELD as FIELD_LABELS
from hub.workspace.labels import STATUS as STATUS_LABELS
from schemas.wareki import JST

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

ROLE_LABELS: dict[str, str] = {
    COORDINATOR: "相談支援包括化推進員 (多機関協働)",
    CONSENT_OFFICER: "同意担当",
    OPS: "運用担当",
    ADMIN: "管理者",
}
#: flash codes a redirect may carry in ``?flash=`` (only these texts are ever shown; helpers may add theirs)
FLASH_MESSAGES: dict[str, str] = {
    "logged_out": "ログアウトしました。",
    "saved": "保存しました。",
    "recorded": "記録しました。",
    "withdrawn": "撤回を記録しました。",
}


def jst(value: datetime | date | None, with_time: bool = True) -> str:
    """``2026年12月1日 10:05`` (JST) for a datetime, ``2026年12月1日`` for a date, ``—`` for None."""
    if value is None:
        return "—"
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        t = aware.astimezone(JST)
        text = f"{t.year}年{t.month}月{t.day}日"
        return f"{text} {t.hour:02d}:{t.minute:02d}" if with_time else text
    return f"{value.year}年{value.month}月{value.day}日"


def iso_jst(value: str | None) -> str:
    """An ISO 8601 text (as the ops snapshot carries) in JST words; ``–`` when empty, as-is when unreadable."""
    if not value:
        return "–"
    try:
        return jst(datetime.fromisoformat(value))
    except ValueError:
        return value


def kind_label(kind: str | None) -> str:
    return KIND_LABELS.get(kind or "", kind or "—")


def field_label(field: str | None) -> str:
    return FIELD_LABELS.get(field or "", field or "—")


def status_label(value: str | None) -> str:
    return STATUS_LABELS.get(value or "", value or "—")


def role_label(role: str | None) -> str:
    return ROLE_LABELS.get(role or "", role or "—")


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.filters["jst"] = jst
templates.env.filters["jst_date"] = lambda v: jst(v, with_time=False)
templates.env.filters["iso_jst"] = iso_jst
templates.env.filters["kind_label"] = kind_label
templates.env.filters["field_label"] = field_label
templates.env.filters["status_label"] = status_label
templates.env.filters["role_label"] = role_label


@dataclass(frozen=True, slots=True)
class NavItem:
    href: str
    label: str


def nav_for(principal: Principal | None) -> list[NavItem]:
    """The menu a role sees: only screens it may open."""
    if principal is None:
        return []
    items: list[NavItem] = []
    if principal.may(COORDINATOR):
        items += [NavItem("/alerts", "アラート"), NavItem("/meetings", "会議"), NavItem("/referrals", "つなぎ"),
                  NavItem("/plans", "プラン"), NavItem("/reports", "実績")]
    if principal.may(CONSENT_OFFICER, COORDINATOR):
        items.append(NavItem("/consents", "同意"))
    if principal.may(OPS):
        items.append(NavItem("/ops", "運用"))
    if principal.role == ADMIN:
        items.append(NavItem("/admin/users", "アカウント"))
    return items


def render(request: Request, name: str, ctx: Mapping[str, Any] | None = None, principal: Principal | None = None,
           *, status_code: int = 200, flash: str | None = None, error: str | None = None) -> HTMLResponse:
    """Render a template with the user, the menu, the CSRF token and flash messages; never cached."""
    context: dict[str, Any] = dict(ctx or {})
    context.setdefault("user", principal)
    context.setdefault("nav", nav_for(principal))
    context.setdefault("csrf_token", getattr(request.state, "csrf_token", ""))
    flash_code = request.query_params.get("flash", "")
    context.setdefault("flash", flash if flash is not None else FLASH_MESSAGES.get(flash_code))
    context.setdefault("error", error)
    context.setdefault("current_path", request.url.path)
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def get_session(request: Request) -> Iterator[Session]:
    """A SQLAlchemy session from the app's sessionmaker (the route commits what it changes)."""
    ctx = workspace_context(request)
    with ctx.sessions() as s:
        yield s
