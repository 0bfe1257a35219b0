"""`tsunagu demo --serve` as a newcomer runs it: samples through, accounts printed, login works, Ctrl-C ends it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


def test_demo_serve_prints_accounts_serves_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """The demo prints the four role accounts with TSUNAGU_DEMO_PASSWORD; coordinator logs in; SIGINT exits 0."""
    env = {**os.environ, "TSUNAGU_DEMO_PASSWORD": "demo-password-1", "TMPDIR": str(tmp_path)}
    env.pop("TSUNAGU_DATABASE_URL", None)
    env.pop("TSUNAGU_KAFKA_BOOTSTRAP", None)
    proc = subprocess.Popen([sys.executable, "-m", "hub.cli.main", "demo", "--serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert found.wait(420), "the demo did not start serving:\n" + "".join(lines[-20:])
        text = "".join(lines)
        url = re.search(r"(http://127\.0\.0\.1:\d+)/login", text)
        assert url, text
        for role in ("coordinator", "consent_officer", "ops", "admin"):
            assert re.search(rf"^\s+{role}\s+demo-password-1$", text, re.M), role
        base = url.group(1)
        with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as c:
            page = c.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token
            r = c.post("/login", data={"username": "coordinator", "password": "demo-password-1",
                                       "csrf_token": token.group(1)})
            assert r.status_code == 303 and r.headers["location"] == "/alerts"
            inbox = c.get("/alerts")
            assert inbox.status_code == 200 and "支援会議候補" in inbox.text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=180) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    deadline = time.monotonic() + 5
    while reader.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
