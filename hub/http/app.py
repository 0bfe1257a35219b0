"""The service's FastAPI app: the kodomo webhook, the operations view, ``/healthz`` and ``/metrics``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.orm import Session, sessionmaker

from connectors.kodomo import WEBHOOK_PATH, KodomoWebhook, make_router
from connectors.runner import ConnectorState
from hub.http.ops import make_ops_router
from hub.http.webhook import WebhookPublisher
from hub.logging import get_logger
from hub.serve.metrics import Metrics
from hub.topics import Topics

log = get_logger("tsunagu.serve")

#: the service's health: (body of ``/healthz``, whether it answers 200)
Health = Callable[[], tuple[dict[str, Any], bool]]


def make_service_app(webhook: KodomoWebhook, publisher: WebhookPublisher, sessions: sessionmaker[Session],
                     cstate: ConnectorState, topics: Topics, metrics: Metrics, health: Health,
                     ops_router: APIRouter | None = None) -> FastAPI:
    """One app for the service's HTTP server; webhook answers are counted by status code."""
    app = FastAPI(title="tsunagu", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(make_router(webhook, publisher))
    app.include_router(ops_router or make_ops_router(sessions, cstate, topics))  # GET /ops, /ops.json

    @app.middleware("http")
    async def count_webhooks(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if request.url.path == WEBHOOK_PATH:
            metrics.webhook.labels(status_code=str(response.status_code)).inc()
            log.info("webhook delivery", path=WEBHOOK_PATH, status_code=response.status_code)
        return response

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        body, ok = health()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        body = await asyncio.to_thread(generate_latest, metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return app
