"""Log lines carry only allow-listed keys: personal data cannot reach them."""

from __future__ import annotations

import io
import json
import logging

from hub.logging import WITHHELD, configure_logging, get_logger


def _lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_unknown_keys_are_withheld() -> None:
    """A key not on the allowlist (say, a name) is replaced, whatever its value."""
    buf = io.StringIO()
    configure_logging("INFO", stream=buf)
    get_logger().info("resolved", name="山田　太郎", birth_date="1944-05-03", feed="houkatsu")
    (line,) = _lines(buf)
    assert line["name"] == WITHHELD and line["birth_date"] == WITHHELD
    assert line["feed"] == "houkatsu"
    assert "山田" not in buf.getvalue() and "1944" not in buf.getvalue()


def test_exceptions_are_logged_by_type_only() -> None:
    """An exception's message may quote input, so only its type is logged."""
    buf = io.StringIO()
    configure_logging("INFO", stream=buf)
    try:
        raise ValueError("山田　太郎 was born 1944-05-03")
    except ValueError:
        get_logger().exception("failed")
    (line,) = _lines(buf)
    assert line["error_type"] == "ValueError"
    assert "山田" not in buf.getvalue()


def test_library_messages_are_not_passed_through() -> None:
    """A third-party message that may quote a payload (not plain ASCII) is withheld; its logger and level remain."""
    buf = io.StringIO()
    configure_logging("INFO", stream=buf)
    logging.getLogger("some.library").error("payload: 山田　太郎")
    (line,) = _lines(buf)
    assert str(line["event"]).startswith("library log") and line["logger"] == "some.library"
    assert line["level"] == "error"
    assert "山田" not in buf.getvalue()


def test_kafka_library_templates_are_kept_without_arguments_and_rate_limited() -> None:
    """During an outage kafka-python's %-style lines keep their template (never the arguments) and repeat at most
    once per interval per template, the next one counting what was suppressed."""
    from hub.logging import LibraryRateLimit

    buf = io.StringIO()
    configure_logging("INFO", stream=buf)
    now = [0.0]
    handler = logging.getLogger().handlers[0]
    handler.filters[:] = [LibraryRateLimit(interval_s=10, clock=lambda: now[0])]
    log = logging.getLogger("kafka.conn")
    for _ in range(150):
        log.error("Unable to connect to %s: %s", "山田　太郎", "refused")
    now[0] = 11.0
    log.error("Unable to connect to %s: %s", "node-1", "refused")
    lines = _lines(buf)
    assert [x["event"] for x in lines] == ["library: Unable to connect to %s: %s"] * 2
    assert lines[1]["count"] == 149 and lines[0]["logger"] == "kafka.conn"
    assert "山田" not in buf.getvalue() and "node-1" not in buf.getvalue()
