"""The workspace's periodic round in a service: tick, relay on the service's loop, expired sessions purged, stop."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from workspace.support import Workspace

from hub.workspace.models import WebSession
from hub.workspace.service import WorkspaceRuntime


def test_round_ticks_relays_purges_and_stops(workspace: Workspace) -> None:
    """Each round relays on the loop, purges sessions past their idle end; tick runs at start; stop() joins."""
    ws = workspace
    ws.ctx.settings = ws.ctx.settings.model_copy(update={"poll_interval_s": 0.05, "notify_interval_s": 3600})
    c = ws.client("coordinator")  # one live session …
    ws.clock.now += timedelta(minutes=31)  # … now idle for too long
    ticks: list[Any] = []
    relays: list[int] = []
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()

    async def relay() -> int:
        relays.append(1)
        return 0

    runtime = WorkspaceRuntime(ws.ctx, relay=relay, loop=loop, tick=lambda sessions, settings: ticks.append(1))
    runtime.start()
    try:
        deadline = time.monotonic() + 30
        while (runtime.rounds < 3 or not relays) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runtime.rounds >= 3 and len(relays) >= 3
        assert ticks == [1]  # at start, then only every notify_interval_s
        with ws.sessions() as s:
            assert s.scalars(select(WebSession)).all() == []
    finally:
        runtime.stop()
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(timeout=10)
    assert runtime._thread is not None and not runtime._thread.is_alive()
    assert c.get("/alerts", follow_redirects=False).status_code == 303


def test_a_failing_step_does_not_stop_the_round(workspace: Workspace) -> None:
    """A tick that raises is logged and the round goes on (relay still runs)."""
    ws = workspace
    ws.ctx.settings = ws.ctx.settings.model_copy(update={"poll_interval_s": 0.05, "notify_interval_s": 0.05})
    calls: list[int] = []

    def bad_tick(sessions: Any, settings: Any) -> None:
        calls.append(1)
        raise RuntimeError("boom")

    runtime = WorkspaceRuntime(ws.ctx, tick=bad_tick).start()
    try:
        deadline = time.monotonic() + 30
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        runtime.stop()
    assert len(calls) >= 3
