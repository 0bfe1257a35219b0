"""Checks that untrusted input is safe to carry on: text, JSON trees and file names, judged without quoting them.

Every function here answers with a fixed phrase (or ``None`` when all is well), never with the
offending value, so its answer may go straight into a dead-letter reason.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: C0 controls other than tab, LF and CR, DEL, and the C1 controls; NUL is the one seen in practice
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
#: how deep a JSON document may nest (FHIR Consent resources and kodomo deliveries need < 15)
MAX_JSON_DEPTH = 64


class UnsafeInput(ValueError):
    """Input that must not travel further; the message is a fixed phrase without any input."""


def text_problem(text: str) -> str | None:
    """``"control character"`` / ``"lone surrogate"`` when the text holds one, else None."""
    if _CONTROL.search(text):
        return "control character"
    if _SURROGATE.search(text):
        return "lone surrogate"
    return None


def json_problem(doc: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """The first problem of a parsed JSON tree (too deep, bad text in a key or string), else None.

    Iterative, so a hostile depth costs no recursion.
    """
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > max_depth:
                return f"JSON nested deeper than {max_depth} levels"
            if isinstance(node, dict):
                for key, value in node.items():
                    problem = text_problem(key) if isinstance(key, str) else None
                    if problem:
                        return f"{problem} in a JSON key"
                    stack.append((value, depth + 1))
            else:
                stack.extend((value, depth + 1) for value in node)
        elif isinstance(node, str):
            problem = text_problem(node)
            if problem:
                return f"{problem} in a JSON string"
    return None


def load_json(data: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON that must be safe to carry; raises UnsafeInput with a fixed phrase otherwise."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise UnsafeInput("not UTF-8") from None
    try:
        doc = json.loads(text)
    except RecursionError:
        raise UnsafeInput(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise UnsafeInput(f"malformed JSON ({type(exc).__name__})") from None
    problem = json_problem(doc, max_depth)
    if problem:
        raise UnsafeInput(problem)
    return doc


def display_name(name: str) -> str:
    """A file name as it may be shown and stored: bytes that are not UTF-8 become ``\\xNN``.

    Linux hands Python such names with surrogate escapes; they cannot be encoded as UTF-8, so
    a checkpoint scope or a dead letter's ``where`` holding one could not be written anywhere.
    """
    if not _SURROGATE.search(name):
        return name
    raw = name.encode("utf-8", "surrogateescape") if _escapable(name) else name.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "backslashreplace")


def _escapable(name: str) -> bool:
    return all(not ("\ud800" <= ch <= "\udfff") or "\udc80" <= ch <= "\udcff" for ch in name)
