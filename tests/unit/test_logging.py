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
