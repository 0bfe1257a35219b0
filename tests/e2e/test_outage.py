"""Broker outages of 60 s through a TCP proxy, mid batch run and mid service run: nothing lost, nothing duplicated."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from e2e.test_run_modes import ROOT, _essence
from e2e.truth_checks import load_export
from hub.run.batch import batch_run
from hub.settings import Settings
from integration.test_outbox_proxy import CutProxy, proxied_embedded_broker

OUTAGE_S = 60


@pytest.fixture(scope="module")
def proxied_broker() -> Iterator[tuple[CutProxy, str]]:
    """An embedded broker that advertises a proxy's port (every client connection goes through the proxy)."""
    with proxied_embedded_broker() as pair:
        yield pair


def _wait_published(db: Path, proc: subprocess.Popen[bytes], timeout_s: float = 300) -> None:
    """Until the run's connectors have had something acknowledged by the broker (their persisted counters)."""
    import sqlite3

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as c:
                    n = c.execute("SELECT coalesce(sum(value), 0) FROM connector_counters "
                                  "WHERE name = 'published'").fetchone()[0]
                if n:
                    return
            except sqlite3.Error:
                pass
        time.sleep(0.2)
    raise AssertionError("the run published nothing before the cut")


def _env(bootstrap: str, prefix: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"TSUNAGU_KAFKA_BOOTSTRAP": bootstrap, "TSUNAGU_PARTITIONS": "3", "TSUNAGU_SESSION_TIMEOUT_MS": "1000",
                "TSUNAGU_HEARTBEAT_INTERVAL_MS": "100", "TSUNAGU_LOG_LEVEL": "WARNING",
                "TSUNAGU_TOPIC_PREFIX": prefix, "TSUNAGU_HUB_GROUP": f"{prefix}-hub"})
    env.pop("TSUNAGU_DATABASE_URL", None)
    return env


def test_batch_run_rides_out_a_60_second_cut(proxied_broker: tuple[CutProxy, str], samples_dir: Path,
                                             truth: dict[str, Any], tmp_path: Path) -> None:
    """`tsunagu run` whose broker connection is cut for 60 s a few seconds in finishes on its own (exit 0) with
    the same export as an uncut run: nothing lost, nothing duplicated."""
    proxy, bootstrap = proxied_broker
    rid = uuid.uuid4().hex[:8]
    base_out = tmp_path / "base"
    batch_run(samples_dir, base_out, progress=None,
              settings=Settings(kafka_bootstrap=bootstrap, topic_prefix=f"ob{rid}", hub_group=f"ob-{rid}",
                                partitions=3, session_timeout_ms=1000, heartbeat_interval_ms=100))
    baseline = _essence(load_export(base_out), truth)

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "hub.cli.main", "run", "--sources", str(samples_dir), "--once", "--export",
           str(out), "--state", str(tmp_path / "state"), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(bootstrap, f"oc{rid}"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        _wait_published(tmp_path / "state" / "connectors.sqlite", proc)  # mid run: the registry is on Kafka
        assert proc.poll() is None, "the run ended before the cut"
        proxy.cut()
        time.sleep(OUTAGE_S)
        assert proc.poll() is None, proc.communicate()[1][-2000:]  # it waited through the outage
        proxy.start()
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode("utf-8", "replace")[-3000:]
    assert _essence(load_export(out), truth) == baseline
    team = load_export(out)["team"]
    assert len({(e["source"], e["id"]) for e in team}) == len(team)  # no duplicate in the export


def test_service_rides_out_a_60_second_cut(proxied_broker: tuple[CutProxy, str], samples_dir: Path,
                                           tmp_path: Path, fast_settings: Settings) -> None:
    """`tsunagu serve` cut off from its broker for 60 s: a webhook delivery during the cut gets 503 and /healthz
    reports not ready; once restored, the sender's retry is accepted, /healthz is ready again, and every delivery
    reaches the hub (which dedupes redeliveries) — without a restart."""
    import shutil

    from connectors.kodomo import KodomoWebhook
    from hub.serve.server import HubServer
    from integration.test_serve import SECRET, Running, headers, kodomo_body, wait_for

    proxy, bootstrap = proxied_broker
    src = tmp_path / "sources"
    (src / "registry").mkdir(parents=True)
    shutil.copy(samples_dir / "registry" / "jumin.csv", src / "registry")
    settings = fast_settings.model_copy(update={"kafka_bootstrap": bootstrap,
                                                "kodomo_webhook_secret": SecretStr(SECRET)})
    server = HubServer(settings, src, host="127.0.0.1", port=0, staff_port=0, poll_interval_s=0.5,
                       state=tmp_path / "state", install_signal_handlers=False)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            server.run()
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    running = Running(server, thread, f"http://127.0.0.1:{server.port}", errors)
    try:
        wait_for(lambda: server.ready.is_set() or server.finished.is_set(), 120, "service ready")
        assert not errors
        web, staff = f"http://127.0.0.1:{server.port}", f"http://127.0.0.1:{server.staff_port}"
        first, second = kodomo_body("K2026-9101"), kodomo_body("K2026-9102")
        expected = {e.dedupe_key for body, d in ((first, "d-out-1"), (second, "d-out-2"))
                    for e in KodomoWebhook(SECRET.encode()).handle(headers(body, d), body).events}
        assert httpx.post(f"{web}/webhooks/kodomo", content=first, headers=headers(first, "d-out-1"),
                          timeout=60).status_code == 202

        proxy.cut()
        cut_at = time.monotonic()
        during = httpx.post(f"{web}/webhooks/kodomo", content=second, headers=headers(second, "d-out-2"),
                            timeout=120)
        assert during.status_code == 503
        ready = httpx.get(f"{staff}/healthz", timeout=10)
        assert ready.status_code == 503 and ready.json()["publishing"]["kodomo"] is False
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - cut_at)))
        proxy.start()

        def accepted() -> bool:
            r = httpx.post(f"{web}/webhooks/kodomo", content=second, headers=headers(second, "d-out-2"), timeout=120)
            return r.status_code in (200, 202)

        wait_for(accepted, 180, "the retried delivery accepted")
        wait_for(lambda: httpx.get(f"{staff}/healthz", timeout=10).status_code == 200, 120, "ready again")
        wait_for(lambda: expected <= running.finished(), 180, "both deliveries handled by the hub")
        assert thread.is_alive() and not errors  # no restart was needed
    finally:
        server.request_stop()
        thread.join(timeout=120)
    assert not errors
