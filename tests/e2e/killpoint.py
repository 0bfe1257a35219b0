"""Runs ``tsunagu`` in this process and SIGKILLs it at a chosen point: ``python killpoint.py KIND N -- ARGS``.

KIND is where the N-th occurrence kills the process before that step completes:
``ddl`` (a CREATE/ALTER of a migration), ``commit`` (a commit of the hub's database), ``relay`` (a record
handed to the connectors' producer during the outbox relay), ``hubrelay`` (the hub's outbox rows sent but
not yet deleted), ``time`` (N tenths of a second after start), ``count`` (never: prints the counts at exit).
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import threading
from collections import Counter
from typing import Any

KIND, N = sys.argv[1], int(sys.argv[2])
ARGS = sys.argv[sys.argv.index("--") + 1:]
counts: Counter[str] = Counter()
lock = threading.Lock()


def hit(kind: str) -> None:
    with lock:
        counts[kind] += 1
        if kind == KIND and counts[kind] == N:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    from kafka import KafkaProducer
    from sqlalchemy import event

    import hub.bootstrap
    import hub.db
    from hub.pipeline.stages import HubCore

    real_make_engine = hub.db.make_engine

    def make_engine(url: str) -> Any:
        engine = real_make_engine(url)

        @event.listens_for(engine, "before_cursor_execute")
        def _ddl(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.lstrip().upper().startswith(("CREATE", "ALTER")):
                hit("ddl")

        @event.listens_for(engine, "commit")
        def _commit(conn: Any) -> None:
            hit("commit")

        return engine

    hub.db.make_engine = make_engine  # type: ignore[assignment]
    hub.bootstrap.make_engine = make_engine  # type: ignore[attr-defined]

    real_send = KafkaProducer.send

    def send(self: Any, *a: Any, **k: Any) -> Any:
        hit("relay")
        return real_send(self, *a, **k)

    KafkaProducer.send = send  # type: ignore[method-assign]

    real_done = HubCore.outbox_done

    def outbox_done(self: Any, seqs: Any) -> None:
        hit("hubrelay")
        real_done(self, seqs)

    HubCore.outbox_done = outbox_done  # type: ignore[method-assign]

    if KIND == "time":
        threading.Timer(N / 10, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
    if KIND == "count":
        atexit.register(lambda: print(json.dumps(dict(counts)), file=sys.stderr))

    from hub.cli.main import app

    sys.argv = ["tsunagu", *ARGS]
    app()


if __name__ == "__main__":
    main()
