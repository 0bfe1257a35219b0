"""uvicorn in the service's own event loop: no signal handling of its own, a socket bound up front."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

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
