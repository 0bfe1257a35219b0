"""JSON logs with structlog, and a processor that lets only allow-listed keys through.

Personal data (names, birth dates, addresses, case text, disability types) must never
reach a log line. A blocklist misses the next new key; an allowlist cannot, so every key
that is not listed here is replaced by ``"[withheld]"`` and string values of allowed keys
are bounded. Event *messages* are fixed strings in our code, never formatted with data.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

ALLOWED_KEYS = frozenset(
    {
        "event", "level", "timestamp", "logger", "exc_info", "exception",
        "feed", "connector", "topic", "partition", "offset", "group", "stage",
        "event_id", "event_type", "source", "record", "record_key", "person", "household",
        "field", "route", "decision", "basis", "where", "reason", "count", "published",
        "processed", "dead_letters", "pending", "elapsed_s", "rate", "bootstrap", "port",
        "pid", "database", "dialect", "state_dir", "sources", "export", "scope", "position",
        "status", "attempt", "error_type", "kind", "alert", "outcome", "score", "review",
        "instance", "files", "url_scheme", "delivery", "path", "method", "status_code",
        # counts of a connector pass (RunStats) and of operations (health rules, dead-letter access)
        "read", "events", "published_dead_letters", "refused", "lost", "rule", "subject", "value",
        "threshold", "health_message", "dead_letter", "actor", "action",
    }
)
_MAX_VALUE = 300
WITHHELD = "[withheld]"


def allowlist_processor(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Replace the value of every key not in ALLOWED_KEYS; truncate long strings."""
    for key in list(event_dict):
        if key not in ALLOWED_KEYS:
            event_dict[key] = WITHHELD
            continue
        value = event_dict[key]
        if isinstance(value, str) and len(value) > _MAX_VALUE:
            event_dict[key] = value[:_MAX_VALUE] + "…"
    return event_dict


def _scrub_exception(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Exceptions are logged by type only: their messages may quote input data."""
    exc = event_dict.pop("exc_info", None)
    if exc:
        if exc is True:
            exc = sys.exc_info()
        if isinstance(exc, BaseException):
            event_dict["error_type"] = type(exc).__name__
        elif isinstance(exc, tuple) and exc[0] is not None:
            event_dict["error_type"] = exc[0].__name__
    return event_dict


PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    _scrub_exception,
    allowlist_processor,
]


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap and close it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """JSON lines on stderr (or ``stream``); third-party stdlib logging goes through the same filter."""
    out = stream or _CurrentStderr()
    structlog.configure(
        processors=[*PROCESSORS, structlog.processors.JSONRenderer(ensure_ascii=False)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=out),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    # Libraries (aiokafka, kafka-python, faststream, uvicorn) log through stdlib logging;
    # route them through the same allowlist so their messages can't carry payloads either.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                _library_message_guard,
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *PROCESSORS[1:],
                structlog.processors.JSONRenderer(ensure_ascii=False),
            ],
            pass_foreign_args=True,  # only to tell a template from a plain message (the arguments are dropped)
        )
    )
    handler.addFilter(LibraryRateLimit())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for noisy in ("kafka", "aiokafka", "faststream", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


#: a library message is kept only when it is plain ASCII without quotes (host names, error names, numbers);
#: anything else may quote a payload (Japanese names, record text) and is withheld
_SAFE_LIBRARY_MESSAGE = re.compile(r"^[A-Za-z0-9 _.,:;=()\[\]<>/@%+#*-]{1,300}$")


def _library_message_guard(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Library records keep their level; their message only when it cannot quote a payload: a message that
    passes the safe-message pattern, else the message *template* of a known library (a fixed string in
    the library's code, e.g. ``Unable to connect to node %s``), never its arguments."""
    record = event_dict.get("_record")
    if not event_dict.get("_from_structlog"):
        name = str(getattr(record, "name", ""))
        template = getattr(record, "msg", "")
        has_args = bool(event_dict.pop("positional_args", None))
        try:
            message = record.getMessage().strip() if record is not None else ""
        except Exception:  # a library's bad format string
            message = ""
        if name.split(".")[0] in TEMPLATE_LOGGERS and isinstance(template, str) and has_args:
            # a %-style template with its arguments apart: the fixed text is safe to keep
            event_dict["event"] = "library: " + "".join(c if c.isprintable() else " " for c in template)[:200]
        elif message and _SAFE_LIBRARY_MESSAGE.match(message):
            event_dict["event"] = message
        elif message:
            event_dict["event"] = f"library log (message withheld: {len(message)} characters)"
        else:
            event_dict["event"] = "library log (no message)"
        event_dict["logger"] = name or None
        if record is not None:
            event_dict["level"] = record.levelname.lower()
        suppressed = getattr(record, "tsunagu_suppressed", 0)
        if suppressed:
            event_dict["count"] = suppressed
    return event_dict


#: libraries whose log calls are %-style templates with separate arguments (kafka-python, aiokafka):
#: their template text is kept (never the arguments), so an outage says what is happening
TEMPLATE_LOGGERS = frozenset({"kafka", "aiokafka"})


class LibraryRateLimit(logging.Filter):
    """At most one line per library logger and message template every ``interval_s``; the next line that
    passes carries how many were suppressed (``count``). Our own structlog lines are never limited."""

    def __init__(self, interval_s: float = 10.0, clock: Any = None) -> None:
        super().__init__()
        import time

        self.interval_s = interval_s
        self.clock = clock or time.monotonic
        self._last: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict):  # structlog's own lines
            return True
        key = (record.name, str(record.msg)[:200])
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[key] = now
        record.tsunagu_suppressed = self._suppressed.pop(key, 0)
        return True


def get_logger(name: str = "tsunagu") -> Any:
    return structlog.get_logger(name)
