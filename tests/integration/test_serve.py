"""Service mode (``hub.serve.server``) on the embedded broker: webhook → outbox → Kafka → hub, feeds, clean stop."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from workspace.support import PASSWORD, add_users, csrf_in

from connectors.houkatsu import HoukatsuConnector
from connectors.kodomo import KodomoWebhook, sign_delivery
from connectors.runner import ConnectorState
from hub.kafka.broker import free_port
from hub.pipeline.stages import HOUSEHOLD, INTAKE
from hub.pipeline.tables import ProcessedEvent
from hub.serve.server import HubServer

SECRET = "serve-test-secret"
METRICS_TOKEN = "serve-metrics-token"
OPS_TOKEN = "ops-token-for-status-0001"
OFFICER_TOKEN = "officer-token-for-api-0001"
ROOT = Path(__file__).resolve().parents[2]


def kodomo_body(kiroku_id: str = "K2026-9001") -> bytes:
    record = {
        "kiroku_id": kiroku_id,
        "setai_no": "5039900001",
        "koushin": "2026-04-01T10:00:00+09:00",
        "uketsuke_bi": "2026-04-01",
        "joukyou": "受付",
        "soudan_naiyou": ["養育相談"],
        "kodomo": [{"taishosha_no": "T990001", "atena_no": None, "shimei": "試験　一郎",
                    "kana": "シケン　イチロウ", "seinengappi": "2014-03-28", "seibetsu": "男"}],
        "hogosha": [{"taishosha_no": "T990002", "atena_no": None, "shimei": "試験　花子",
                     "kana": "シケン　ハナコ", "seinengappi": "1985-08-11", "zokugara": "母"}],
        "shuuketsu_bi": None,
    }
    return json.dumps({"event": "record.created", "record": record}, ensure_ascii=False).encode("utf-8")


def headers(body: bytes, delivery: str, secret: str = SECRET) -> dict[str, str]:
    """The current signing scheme: over delivery id, timestamp (now) and body."""
    stamp = str(int(time.time()))
    return {"X-Delivery-Id": delivery, "X-Timestamp": stamp, "X-Signature": sign_delivery(secret.encode(), delivery,
            stamp, body), "Content-Type": "application/json"}


def wait_for(check: Callable[[], bool], timeout_s: float = 45.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached")


def houkatsu_ids(folder: Path) -> set[tuple[str, str]]:
    return {i.event.dedupe_key for i in HoukatsuConnector(folder).read({}) if i.event is not None}


@dataclass
class Running:
    server: HubServer
    thread: threading.Thread
    base: str
    errors: list[BaseException] = field(default_factory=list)

    def finished(self) -> set[tuple[str, str]]:
        """(source, id) of every event the hub finished: household stage, or dead-lettered at intake."""
        assert self.server.core is not None
        with self.server.core.sessions() as s:
            rows = s.execute(
                select(ProcessedEvent.source, ProcessedEvent.event_id).where(
                    (ProcessedEvent.stage == HOUSEHOLD)
                    | ((ProcessedEvent.stage == INTAKE) & (ProcessedEvent.outcome == "dead"))
                )
            )
            return {(r.source, r.event_id) for r in rows}


@pytest.fixture
def sources(tmp_path: Path, samples_dir: Path) -> Path:
    src = tmp_path / "sources"
    (src / "registry").mkdir(parents=True)
    (src / "houkatsu").mkdir()
    shutil.copy(samples_dir / "registry" / "jumin.csv", src / "registry")
    for f in sorted((samples_dir / "houkatsu").glob("C01_*.csv"))[:2]:
        shutil.copy(f, src / "houkatsu")
    return src


@pytest.fixture
def running(fast_settings, sources: Path, tmp_path: Path) -> Iterator[Running]:
    settings = fast_settings.model_copy(update={"kafka_bootstrap": "", "kodomo_webhook_secret": SecretStr(SECRET),
                                                "metrics_token": SecretStr(METRICS_TOKEN),
                                                "api_tokens": {OPS_TOKEN: "ops", OFFICER_TOKEN: "consent_officer"}})
    server = HubServer(settings, sources, host="127.0.0.1", port=0, staff_port=0, poll_interval_s=0.2,
                       state=tmp_path / "state", install_signal_handlers=False, drain_timeout_s=30)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            server.run()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=target, name="serve-under-test", daemon=True)
    thread.start()
    wait_for(lambda: server.ready.is_set() or server.finished.is_set(), 60, "service ready")
    assert not errors and server.ready.is_set()
    run = Running(server, thread, f"http://127.0.0.1:{server.port}", errors)
    try:
        yield run
    finally:
        server.request_stop()
        thread.join(timeout=120)


def test_webhook_reaches_the_hub_and_the_service_stops_clean(running: Running, sources: Path,
                                                             samples_dir: Path, tmp_path: Path) -> None:
    """A signed delivery is acknowledged (202) only once on Kafka and reaches the hub; a forged one is 401."""
    body = kodomo_body()
    expected = {e.dedupe_key for e in KodomoWebhook(SECRET.encode()).handle(headers(body, "d-serve-1"), body).events}
    assert len(expected) == 1
    with httpx.Client(base_url=running.base, timeout=30) as client:
        assert client.get("/healthz").status_code == 200
        ok = client.post("/webhooks/kodomo", content=body, headers=headers(body, "d-serve-1"))
        assert ok.status_code == 202
        forged = client.post("/webhooks/kodomo", content=body, headers=headers(body, "d-serve-2", "wrong-secret"))
        assert forged.status_code == 401
        again = client.post("/webhooks/kodomo", content=body, headers=headers(body, "d-serve-1"))
        assert again.status_code == 200 and again.json()["status"] == "duplicate"

        wait_for(lambda: expected <= running.finished(), what="kodomo event handled by the hub")
        first_files = houkatsu_ids(sources / "houkatsu")
        wait_for(lambda: first_files <= running.finished(), what="houkatsu files handled by the hub")

        # a file dropped into the folder while the service runs is picked up by the next scan
        later = sorted((samples_dir / "houkatsu").glob("C01_*.csv"))[2]
        staging = tmp_path / "staging"
        staging.mkdir()
        shutil.copy(later, staging)
        shutil.copy(later, sources / "houkatsu")
        new_ids = houkatsu_ids(staging) - first_files
        assert new_ids
        wait_for(lambda: new_ids <= running.finished(), what="a new houkatsu file handled by the hub")

        assert client.get("/metrics").status_code == 404  # the public listener has only the webhook and health
        assert client.get("/ops").status_code == 404
        staff = f"http://127.0.0.1:{running.server.staff_port}"
        assert httpx.get(f"{staff}/metrics", timeout=30).status_code == 401
        assert httpx.get(f"{staff}/metrics", headers={"Authorization": "Bearer wrong"}, timeout=30).status_code == 401
        metrics = httpx.get(f"{staff}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30).text
        assert 'tsunagu_events_published_total{feed="kodomo"} 1.0' in metrics
        # the forged delivery is counted by reason, not written to the dead-letter topic
        assert 'tsunagu_webhook_refused_total{reason="bad signature"} 1.0' in metrics
        assert not [line for line in metrics.splitlines()
                    if line.startswith("tsunagu_dead_letters_total{") and 'stage="webhook"' in line]
        assert 'tsunagu_webhook_deliveries_total{status_code="401"} 1.0' in metrics
    # /ops.json is the workspace's on the staff listener, behind login with the ops role: refused without a
    # session ...
    with httpx.Client(base_url=f"http://127.0.0.1:{running.server.staff_port}", timeout=30) as staff_client:
        assert staff_client.get("/ops.json").status_code == 401
        assert running.server.workspace is not None
        add_users(running.server.workspace.ctx.sessions, {"ops-serve": ("ops", None)})
        page = staff_client.get("/login")
        logged_in = staff_client.post("/login", data={"username": "ops-serve", "password": PASSWORD,
                                                      "csrf_token": csrf_in(page.text)}, follow_redirects=False)
        assert logged_in.status_code == 303
        # ... and an ops user reads it: the forged delivery is no dead letter (counted as refused instead)
        ops = staff_client.get("/ops.json").json()
    # a machine (``tsunagu status --url``) reads it with an API token of role ops; other roles' tokens are refused
    staff = f"http://127.0.0.1:{running.server.staff_port}"
    assert httpx.get(f"{staff}/ops.json", headers={"Authorization": "Bearer wrong-token-000000000000"},
                     timeout=30).status_code == 401
    assert httpx.get(f"{staff}/ops.json", headers={"Authorization": f"Bearer {OFFICER_TOKEN}"},
                     timeout=30).status_code == 403
    by_token = httpx.get(f"{staff}/ops.json", headers={"Authorization": f"Bearer {OPS_TOKEN}"}, timeout=30)
    assert by_token.status_code == 200 and by_token.json()["dead_letters_total"] == ops["dead_letters_total"]
    with httpx.Client(base_url=staff, timeout=30):
        assert ops["dead_letters_total"] == 0 and ops["dead_letters_by_reason"] == []
        assert ops["consumer_lag"] is not None and {x["group"] for x in ops["consumer_lag"]} >= {
            running.server.settings.hub_group}
        assert 'tsunagu_hub_processed_total{stage="household"}' in metrics
        assert "試験" not in metrics and "T990001" not in metrics

    state_dir = running.server.state_dir
    assert state_dir is not None
    running.server.request_stop()
    running.thread.join(timeout=120)
    assert not running.thread.is_alive()
    assert running.errors == []
    cstate = ConnectorState.in_dir(state_dir)
    try:
        assert cstate.pending() == 0
    finally:
        cstate.dispose()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{running.base}/healthz", timeout=2)


def test_sigterm_stops_the_process_clean(tmp_path: Path, sources: Path) -> None:
    """SIGTERM to a serving process ends it with exit code 0 and an empty outbox."""
    port = free_port()
    state = tmp_path / "state"
    env = {**os.environ, "TSUNAGU_KAFKA_BOOTSTRAP": "", "TSUNAGU_DATABASE_URL": "",
           "TSUNAGU_SESSION_TIMEOUT_MS": "1000", "TSUNAGU_HEARTBEAT_INTERVAL_MS": "100",
           "TSUNAGU_PARTITIONS": "2", "TSUNAGU_POLL_INTERVAL_S": "0.2",
           "TSUNAGU_KODOMO_WEBHOOK_SECRET": SECRET, "TSUNAGU_STAFF_PORT": str(free_port())}
    code = (
        "import sys; from pathlib import Path; from hub.logging import configure_logging; "
        "from hub.serve.server import serve; from hub.settings import Settings; configure_logging('WARNING'); "
        f"serve(Settings(), Path(sys.argv[1]), host='127.0.0.1', port={port}, state=Path(sys.argv[2]))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(sources), str(state)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def healthy() -> bool:
            assert proc.poll() is None, "the service exited early"
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, 60, "healthz")
        body = kodomo_body("K2026-9002")
        r = httpx.post(f"http://127.0.0.1:{port}/webhooks/kodomo", content=body,
                       headers=headers(body, "d-serve-sig"), timeout=30)
        assert r.status_code == 202
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode("utf-8", "replace")[-2000:]
    cstate = ConnectorState.in_dir(state)
    try:
        assert cstate.pending() == 0
    finally:
        cstate.dispose()


def test_connector_run_once_publishes_one_feed(sources: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``tsunagu connector run houkatsu --once`` reads its folder to the end, publishes it and empties the outbox."""
    import typer
    from typer.testing import CliRunner

    from hub.cli.ops import connector_app

    app = typer.Typer()
    app.add_typer(connector_app, name="connector")
    monkeypatch.setenv("TSUNAGU_KAFKA_BOOTSTRAP", "")
    monkeypatch.setenv("TSUNAGU_PARTITIONS", "2")
    state = tmp_path / "cstate"
    result = CliRunner().invoke(app, ["connector", "run", "houkatsu", "--sources", str(sources), "--state", str(state),
                                      "--once"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert counts["connector"] == "houkatsu" and counts["pending"] == 0
    assert counts["published"] == len(houkatsu_ids(sources / "houkatsu")) > 0
    missing = CliRunner().invoke(app, ["connector", "run", "shogai", "--sources", str(sources), "--once"])
    assert missing.exit_code == 2


@pytest.mark.parametrize("secret", ["", "kodomo-sample-secret"])
def test_serve_refuses_to_start_without_a_webhook_secret(fast_settings, sources: Path, tmp_path: Path,
                                                         secret: str) -> None:
    """Without TSUNAGU_KODOMO_WEBHOOK_SECRET (or with the public sample one) serve stops with a one-line error
    before anything starts; the demo may use the sample secret."""
    from hub.run.state import RunError

    settings = fast_settings.model_copy(update={"kodomo_webhook_secret": SecretStr(secret)})
    server = HubServer(settings, sources, port=0, staff_port=0, state=tmp_path / "state")
    with pytest.raises(RunError, match="TSUNAGU_KODOMO_WEBHOOK_SECRET"):
        server.run()
    assert not (tmp_path / "state").exists()
    assert HubServer(settings, sources, demo=True)._webhook_secret() == b"kodomo-sample-secret"


def test_serve_refuses_one_port_for_both_listeners(fast_settings, sources: Path, tmp_path: Path) -> None:
    """The public webhook listener and the staff listener cannot share a port."""
    from hub.run.state import RunError

    settings = fast_settings.model_copy(update={"kodomo_webhook_secret": SecretStr(SECRET)})
    with pytest.raises(RunError, match="different ports"):
        HubServer(settings, sources, port=9555, staff_port=9555, state=tmp_path / "state").run()
