"""/ops in the workspace: the operations view (hub.http.ops: counts and codes only) in the workspace layout.

Only ``ops`` and ``admin`` reach it; ``/ops.json`` is hub.http.ops's own JSON route, mounted by app.py behind
the same roles.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from hub.http.ops import REFRESH_S, collect
from hub.workspace.auth import OPS, Principal, require_roles, workspace_context
from hub.workspace.web import render

router = APIRouter()


@router.get("/ops")
async def ops_page(request: Request, principal: Principal = Depends(require_roles(OPS))) -> Response:
    ctx = workspace_context(request)
    assert ctx.topics is not None
    topics = ctx.topics
    snapshot = await run_in_threadpool(lambda: collect(ctx.sessions, ctx.connector_state, topics,
                                                       settings=ctx.settings, lags=ctx.lags, health=ctx.health))
    return render(request, "ops.html", {"ops": snapshot, "refresh_s": REFRESH_S}, principal)
