"""uvicorn without signal handling of its own, on a socket bound up front: in the service's loop or on a thread."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn

# -- the HTTP server --------------------------------------------------------------------------------


class QuietUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the service installs its own and shuts down in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listen_socket(host: str, port: int) -> socket.socket:
    """Bind before starting so a taken port is an error here, not a ``sys.exit`` inside uvicorn."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class ThreadedServer:
    """An ASGI app served by uvicorn on a thread with its own event loop, for commands that have no loop of
    their own (``tsunagu connector run --metrics-port``). ``port`` is the bound port (``0`` resolved)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        self._sock = listen_socket(host, port)
        self.port = int(self._sock.getsockname()[1])
        self._server = QuietUvicorn(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                                   timeout_graceful_shutdown=5))
        self._thread = threading.Thread(target=self._run, name=f"http-{self.port}", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        finally:
            self._sock.close()

    def start(self) -> ThreadedServer:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=timeout_s)
