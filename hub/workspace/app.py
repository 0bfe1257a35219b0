"""The workspace as one FastAPI app: every page router, the consent officers' JSON API under /api/, /ops for ops."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from connectors.runner import ConnectorState
from hub.http.consent.models import PublishEvent
from hub.http.consent.publishers import OutboxEventPublisher
from hub.http.consent.router import make_consent_router
from hub.http.ops import make_ops_router
from hub.ops.health import HealthAlert
from hub.ops.readings import Lag
from hub.settings import Settings
from hub.topics import Topics
from hub.workspace import (
    routes_alerts,
    routes_auth,
    routes_consents,
    routes_households,
    routes_meetings,
    routes_ops,
    routes_plans,
    routes_referrals,
    routes_reports,
    routes_users,
)
from hub.workspace.auth import LoginRequired, ops_reader, secure_cookies, wants_json
from hub.workspace.web import STATIC_DIR, render
from schemas.envelope import CloudEvent

#: publish a CloudEvent on a topic named by key (e.g. ``workspace``); WC's services write the hub outbox instead
Publish = Callable[[str, CloudEvent], Awaitable[None]]

SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class WorkspaceContext:
    """What the workspace's routes need from their host (``tsunagu serve``, ``tsunagu demo --serve``, tests)."""

    sessions: sessionmaker[Session]
    settings: Settings
    #: consent recorded / withdrawn → the hub's intake topic; None → the hub outbox (relayed by the hub)
    publish_consent: PublishEvent | None = None
    publish: Publish | None = None
    clock: Callable[[], datetime] = _utcnow
    #: for the /ops view
    connector_state: ConnectorState | None = None
    topics: Topics | None = None
    #: for the /ops view: consumer lags and the health loop's open alerts (``tsunagu serve``; None elsewhere)
    lags: Callable[[], list[Lag]] | None = None
    health: Callable[[], list[tuple[HealthAlert, datetime]]] | None = None
    #: key signing the login form's CSRF cookie (from settings, else random per process)
    login_key: bytes = field(default=b"")

    def __post_init__(self) -> None:
        if self.topics is None:
            self.topics = Topics(self.settings.topic_prefix)
        if not self.login_key:
            configured = self.settings.web_secret_key.get_secret_value()
            import secrets

            self.login_key = configured.encode("utf-8") if configured else secrets.token_bytes(32)
        if self.publish_consent is None:
            self.publish_consent = OutboxEventPublisher(self.sessions, self.topics.intake)


def create_workspace_app(ctx: WorkspaceContext) -> FastAPI:
    """The workspace app; mount it at ``/`` in the service app (its own routes first)."""
    app = FastAPI(title="tsunagu workspace", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.workspace = ctx

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if secure_cookies(request, ctx.settings):  # served over https (or behind a proxy that terminates it)
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        from urllib.parse import quote

        return RedirectResponse(f"/login?next={quote(exc.next_path, safe='/')}", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if wants_json(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)
        principal = getattr(request.state, "principal", None)
        message = exc.detail if isinstance(exc.detail, str) and not exc.detail.isascii() else {
            401: "ログインしてください。", 403: "この画面を見る権限がありません。", 404: "見つかりません。",
            405: "この操作はできません。"}.get(exc.status_code, "エラーが発生しました。")
        response = render(request, "error.html", {"status": exc.status_code, "message": message}, principal,
                          status_code=exc.status_code)
        for k, v in headers.items():
            response.headers[k] = v
        return response

    @app.exception_handler(RequestValidationError)
    async def bad_input(request: Request, exc: RequestValidationError) -> Response:
        if wants_json(request):  # the JSON API keeps FastAPI's 422 with the field list
            return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)
        principal = getattr(request.state, "principal", None)
        fields = sorted({str(e["loc"][-1]) for e in exc.errors() if e.get("loc")})
        named = f"（{', '.join(fields)}）" if fields else ""
        message = f"入力に誤りがあります{named}。画面に戻って確かめてください。"
        return render(request, "error.html", {"status": 400, "message": message}, principal, status_code=400)

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.include_router(routes_auth.router)
    for module in (routes_alerts, routes_households, routes_meetings, routes_referrals, routes_plans,
                   routes_reports, routes_consents):
        app.include_router(module.router)
    assert ctx.publish_consent is not None and ctx.topics is not None
    app.include_router(make_consent_router(ctx.sessions, ctx.publish_consent, tokens=dict(ctx.settings.api_tokens),
                                           municipality_code=ctx.settings.municipality_code,
                                           now=None), prefix="/api")
    app.include_router(routes_users.router)  # /admin/users (admin)
    app.include_router(routes_ops.router)  # GET /ops in the workspace layout (before hub.http.ops's own /ops)
    app.include_router(make_ops_router(ctx.sessions, ctx.connector_state, ctx.topics, settings=ctx.settings,
                                       lags=ctx.lags, health=ctx.health, static=False),  # /static: above
                       dependencies=[Depends(ops_reader)])  # GET /ops.json: ops/admin login or API token
    return app
