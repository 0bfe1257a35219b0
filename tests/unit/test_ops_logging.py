"""Logs and progress for IT staff: library records keep message and level, counts are shown, bars only on a TTY."""

from __future__ import annotations

import io
import json
import logging

import structlog

from hub.logging import configure_logging
from hub.progress import Progress


def lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(x) for x in buf.getvalue().splitlines() if x.strip()]


def test_library_records_keep_message_and_level() -> None:
    """A kafka-python error keeps its text and level; a message with Japanese (maybe a name) is withheld."""
    buf = io.StringIO()
    configure_logging("INFO", stream=buf)
    logging.getLogger("kafka.conn").error("Connect attempt to <BrokerConnection node_id=1 host=k:9092> failed")
    logging.getLogger("kafka.conn").error("payload 山田太郎 rejected")
    logging.getLogger("kafka.conn").error("")
    ok, quoted, empty = lines(buf)
    assert ok["event"] == "Connect attempt to <BrokerConnection node_id=1 host=k:9092> failed"
    assert ok["level"] == "error" and ok["logger"] == "kafka.conn"
    assert "山田" not in json.dumps(quoted, ensure_ascii=False) and "withheld" in str(quoted["event"])
    assert empty["event"] == "library log (no message)" and empty["level"] == "error"


def test_pass_counts_are_not_withheld() -> None:
    """The connector pass summary shows read, events and dead letters as numbers."""
    buf = io.StringIO()
    configure_logging("INFO", stream=buf)
    structlog.get_logger("tsunagu.connector").info("connector pass done", connector="houkatsu", read=12, events=10,
                                                     dead_letters=2, published=10, published_dead_letters=2,
                                                     refused=0, lost=0)
    [line] = lines(buf)
    assert (line["read"], line["events"], line["dead_letters"], line["refused"]) == (12, 10, 2, 0)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal() -> None:
    """Into a file or pipe nothing is drawn; on a terminal the phase and its count are shown."""
    pipe = io.StringIO()
    p = Progress(pipe)
    p.show("hub", 3, 10, force=True)
    p.end()
    assert pipe.getvalue() == "" and not p.enabled
    tty = _Tty()
    p = Progress(tty)
    p.show("hub", 10, 10, force=True)
    p.end()
    assert "hub processing" in tty.getvalue() and "10/10" in tty.getvalue()
