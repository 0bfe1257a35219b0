"""The service's two FastAPI apps: the public webhook listener and the staff listener (metrics, health; the
workspace, /ops included behind its login, is mounted onto the staff app)."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors.kodomo import WEBHOOK_PATH, KodomoWebhook, make_router
from connectors.ratelimit import TokenBucket
from hub.http.webhook import WebhookPublisher
from hub.logging import get_logger
from hub.serve.metrics import Metrics

log = get_logger("tsunagu.serve")

#: the service's health: (body of ``/healthz``, whether it answers 200)
Health = Callable[[], tuple[dict[str, Any], bool]]


def _add_healthz(app: FastAPI, health: Health) -> None:
    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        body, ok = health()
        return JSONResponse(body, status_code=200 if ok else 503)


def make_webhook_app(webhook: KodomoWebhook, publisher: WebhookPublisher, metrics: Metrics, health: Health, *,
                     limiter: TokenBucket | None = None) -> FastAPI:
    """The public listener: ``POST /webhooks/kodomo`` (answers counted by status code) and ``GET /healthz``.

    Unauthenticated failures are counted in ``tsunagu_webhook_refused_total{reason}`` (and, with a
    ``limiter``, rate-limited per client address) instead of each becoming a dead letter.
    """
    app = FastAPI(title="tsunagu webhook", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(make_router(webhook, publisher, limiter=limiter,
                                   on_refused=lambda reason: metrics.webhook_refused.labels(reason=reason).inc()))

    @app.middleware("http")
    async def count_webhooks(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if request.url.path == WEBHOOK_PATH:
            metrics.webhook.labels(status_code=str(response.status_code)).inc()
            log.info("webhook delivery", path=WEBHOOK_PATH, status_code=response.status_code)
        return response

    _add_healthz(app, health)
    return app


def make_staff_app(metrics: Metrics, health: Health, *, metrics_token: str = "") -> FastAPI:
    """The internal listener: ``/metrics`` (bearer ``metrics_token``) and ``/healthz``.

    The workspace (its pages, the consent API and ``/ops``, ``/ops.json`` behind the ops/admin roles) is
    mounted onto this app by whoever serves it (``hub.workspace.service.attach_workspace``).
    """
    app = FastAPI(title="tsunagu staff", docs_url=None, redoc_url=None, openapi_url=None)
    expected = f"Bearer {metrics_token}".encode() if metrics_token else b""

    @app.get("/metrics")
    async def prometheus(request: Request) -> Response:
        if expected:
            given = request.headers.get("authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(given, expected):
                return JSONResponse({"status": "unauthorized"}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
        body = await asyncio.to_thread(generate_latest, metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    _add_healthz(app, health)
    return app
