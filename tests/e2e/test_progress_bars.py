"""Progress bars of ``tsunagu run`` (connectors, hub, export) and ``tsunagu bench identity`` (registry build):
drawn on a terminal only; into a pipe, stderr carries nothing but JSON log lines."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from hub.bench.identity import run_identity_bench

ROOT = Path(__file__).resolve().parents[2]


def _env(kafka: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"TSUNAGU_KAFKA_BOOTSTRAP": kafka, "TSUNAGU_PARTITIONS": "2", "TSUNAGU_SESSION_TIMEOUT_MS": "1000",
                "TSUNAGU_HEARTBEAT_INTERVAL_MS": "100", "TSUNAGU_LOG_LEVEL": "INFO", "TERM": "xterm-256color",
                "COLUMNS": "120"})
    for name in ("TSUNAGU_DATABASE_URL", "TSUNAGU_TOPIC_PREFIX"):
        env.pop(name, None)
    return env


def _only_json(stderr: str) -> list[dict[str, object]]:
    lines = [x for x in stderr.splitlines() if x.strip()]
    out = []
    for line in lines:
        doc = json.loads(line)  # a bar, a carriage return or any other text fails here
        assert isinstance(doc, dict) and "event" in doc and "level" in doc, line
        out.append(doc)
    return out


def _on_a_terminal(cmd: list[str], env: dict[str, str], timeout_s: float = 300) -> tuple[int, str]:
    """Run ``cmd`` with stderr on a pseudo-terminal; (exit code, what the terminal received)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    got = bytearray()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                got += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=60)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()
    return code, got.decode("utf-8", "replace")


def test_run_draws_bars_on_a_terminal_and_only_json_into_a_pipe(kafka: str, samples_dir: Path,
                                                                 tmp_path: Path) -> None:
    """Into a pipe: every stderr line is a JSON log line. On a terminal: the connectors, hub and export bars."""
    env = _env(kafka)
    piped = subprocess.run([sys.executable, "-m", "hub.cli.main", "run", "--sources", str(samples_dir), "--once",
                            "--export", str(tmp_path / "piped")], cwd=ROOT, env=env, capture_output=True,
                           timeout=300, check=False, text=True)
    assert piped.returncode == 0, piped.stderr[-2000:]
    logged = _only_json(piped.stderr)
    assert any(d["event"] == "connector pass done" for d in logged)  # the logs are there, the bars are not
    assert "書出" not in piped.stderr and "\r" not in piped.stderr

    code, screen = _on_a_terminal([sys.executable, "-m", "hub.cli.main", "run", "--sources", str(samples_dir),
                                   "--once", "--export", str(tmp_path / "tty")], env)
    assert code == 0, screen[-2000:]
    for label in ("連携読込 connectors reading", "ハブ処理 hub processing", "書出 export"):
        assert label in screen, label
    assert "10/10" in screen  # the export's steps, all done
    assert (tmp_path / "tty" / "summary.json").exists()


def test_bench_identity_bars_only_on_a_terminal(tmp_path: Path) -> None:
    """The registry build draws one bar per size on a terminal, nothing into a pipe (CLI, subprocess)."""

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    run_identity_bench(sizes=(300, 3000), observations=10, db_dir=tmp_path, progress=tty)
    assert "台帳構築 registry build (300)" in tty.getvalue() and "300/300" in tty.getvalue()
    assert "台帳構築 registry build (3,000)" in tty.getvalue() and "3000/3000" in tty.getvalue()

    piped = subprocess.run([sys.executable, "-m", "hub.cli.main", "bench", "identity", "--small", "300", "--large",
                            "3000", "--observations", "10"], cwd=ROOT, env=_env(""), capture_output=True,
                           timeout=300, check=False, text=True)
    assert piped.returncode == 0, piped.stderr[-2000:]
    _only_json(piped.stderr)
    assert "registry build" not in piped.stderr
    assert json.loads(piped.stdout)["sizes"] == [300, 3000]
