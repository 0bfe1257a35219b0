"""Anchors of the audit chain: its head, appended now and then to a file the database writer cannot rewrite.

Each anchor is one JSON line ``{"at": ISO time, "entries": n, "head": hash after n entries, "mac": …}``,
appended (``O_APPEND``, fsync) to a file outside the database, e.g. on a volume mounted append-only
or made append-only with ``chattr +a``. ``mac`` is HMAC-SHA256 over the canonical JSON of the other
keys with the audit key (empty without one). ``tsunagu audit verify --anchor FILE`` checks the chain
against every anchor: a chain whose lines were dropped, emptied, re-hashed or rewritten together with
its head in the database no longer reaches the anchored heads.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from consent.audit import DuplicateKeyError, canonical, no_duplicate_keys


class AnchorError(ValueError):
    """An anchor file that cannot be trusted (not JSON, a bad MAC, heads going backwards): one line, no data."""


@dataclass(frozen=True, slots=True)
class Anchor:
    """The audit chain's head after ``entries`` entries, recorded at ``at``."""

    at: str
    entries: int
    head: str

    def body(self) -> dict[str, object]:
        return {"at": self.at, "entries": self.entries, "head": self.head}


def _mac(key: bytes | None, body: dict[str, object]) -> str:
    return hmac.new(key, canonical(body), hashlib.sha256).hexdigest() if key else ""


def append_anchor(path: Path, entries: int, head: str, at: datetime, key: bytes | None = None) -> Anchor:
    """Append one anchor line (one ``write`` on an ``O_APPEND`` descriptor, then fsync)."""
    anchor = Anchor(at.isoformat(), entries, head)
    line = json.dumps({**anchor.body(), "mac": _mac(key, anchor.body())}, separators=(",", ":")) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return anchor


def last_anchor(path: Path) -> Anchor | None:
    """The most recent anchor of a file (None when there is none)."""
    found: Anchor | None = None
    for found in read_anchors(path, None, check_mac=False):  # noqa: B007 - the last one
        pass
    return found


def read_anchors(path: Path, key: bytes | None, *, check_mac: bool = True) -> Iterator[Anchor]:
    """Every anchor in order; a line that is not a well-formed anchor, has a bad MAC (with a key) or
    goes backwards is an AnchorError naming its line number. A torn last line (a crash mid-append) is skipped."""
    with path.open("rb") as f:
        raw_lines = f.read().split(b"\n")
    last_entries = -1
    for n, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            doc = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicate_keys)
            anchor = Anchor(str(doc["at"]), int(doc["entries"]), str(doc["head"]))
            mac = str(doc.get("mac", ""))
            if set(doc) != {"at", "entries", "head", "mac"} or isinstance(doc["entries"], bool):
                raise ValueError("unexpected keys")
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, DuplicateKeyError):
            if n == len(raw_lines):
                return  # the last line has no newline: torn by a crash while it was appended
            raise AnchorError(f"anchor line {n} is not a valid anchor") from None
        if check_mac and key and not hmac.compare_digest(mac, _mac(key, anchor.body())):
            raise AnchorError(f"anchor line {n} is not signed with the audit key")
        if anchor.entries < last_entries:
            raise AnchorError(f"anchor line {n} goes back to fewer entries")
        last_entries = anchor.entries
        yield anchor
