"""The audit trail as a hash chain: every sharing decision, permit or deny, one entry each.

An entry holds exactly the ``audit.jsonl`` fields of ../shared/domain/outputs.md plus
``rule_version``: ids, record key, field, route, decision, basis, time, never case content.
``hash`` is SHA-256 over the entry's canonical JSON (sorted keys, no whitespace, UTF-8, the
``hash`` key left out, ``prev_hash`` included), so editing, removing, inserting or reordering an
entry breaks the chain at that line. The first entry's ``prev_hash`` is ``GENESIS``.
A chain cut short at its end is only visible against a known head (``verify(expected_head=…)``;
the store keeps one in ``audit_head``) or against an anchor (``consent.anchor``).

Signed chains: with a key (``TSUNAGU_AUDIT_HMAC_KEY``, held outside the database) ``hash`` is
HMAC-SHA256 over the same canonical bytes, so nobody without the key can re-hash an edited or
forged chain. ``verify(key=…)`` accepts an unkeyed prefix (entries written before the key was
set) and reports how many entries are unkeyed; an unkeyed entry after a signed one is a break.

Optional keys (``OPTIONAL``: the workspace's ``user`` and ``action``) are hashed only when set:
the hash is always over the canonical JSON of whatever keys the entry has.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from consent.model import RULE_VERSION, Decision, DecisionInput, Route, require_aware
from schemas.codes import Field

GENESIS = "0" * 64
FIELDS = ("event", "sourcerecord", "person", "field", "route", "decision", "basis", "at", "rule_version",
          "prev_hash", "hash")
#: keys an entry carries (and hashes) only when they are set
OPTIONAL_FIELDS = ("user", "action")
_HASHED = frozenset(FIELDS) - {"hash"}
#: keys an entry may carry in addition to FIELDS (hashed when present)
OPTIONAL = frozenset({"user", "action"})


class DuplicateKeyError(ValueError):
    """A JSON object with the same key twice: which value counts depends on the reader, so it is refused."""


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads`` that refuses a repeated key."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise DuplicateKeyError("duplicate key in a JSON object")
        out[k] = v
    return out


@dataclass(frozen=True, slots=True)
class AuditInput:
    """One decision to record: what was decided about which event, and when (``at``, aware)."""

    event: str
    sourcerecord: str
    person: str | None
    field: Field | None
    route: Route | None
    decision: bool
    basis: str
    at: datetime
    rule_version: str = RULE_VERSION
    user: str | None = None
    action: str | None = None

    def __post_init__(self) -> None:
        require_aware(self.at, "at")

    @classmethod
    def of(cls, event: DecisionInput, decision: Decision, at: datetime | None = None) -> AuditInput:
        """From the decision's input and outcome; ``at`` defaults to the decision's own ``at``."""
        when = at if at is not None else decision.at
        if when is None:
            raise ValueError("an audit entry needs the time of the decision")
        return cls(event=event.event_id, sourcerecord=event.record, person=event.person, field=event.field,
                   route=decision.route, decision=decision.permit, basis=decision.basis, at=when,
                   rule_version=decision.rule_version)

    def fields(self) -> dict[str, Any]:
        """The entry's JSON fields except the two hashes (``user`` / ``action`` only when set)."""
        out: dict[str, Any] = {
            "event": self.event,
            "sourcerecord": self.sourcerecord,
            "person": self.person,
            "field": self.field.value if self.field is not None else None,
            "route": self.route,
            "decision": "permit" if self.decision else "deny",
            "basis": self.basis,
            "at": self.at.isoformat(),
            "rule_version": self.rule_version,
        }
        if self.user is not None:
            out["user"] = self.user
        if self.action is not None:
            out["action"] = self.action
        return out


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of ``audit.jsonl``, exactly its fields."""

    event: str
    sourcerecord: str
    person: str | None
    field: str | None
    route: str | None
    decision: str
    basis: str
    at: str
    rule_version: str
    prev_hash: str
    hash: str
    user: str | None = None
    action: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The line's fields; ``user`` and ``action`` only when set (older lines have neither)."""
        out = asdict(self)
        for key in OPTIONAL_FIELDS:
            if out[key] is None:
                del out[key]
        return out

    def line(self) -> str:
        """The JSON Lines form (UTF-8 text, no newline)."""
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":"))


def canonical(fields: Mapping[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the bytes that are hashed."""
    return json.dumps(dict(fields), ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def entry_hash(prev_hash: str, fields: Mapping[str, Any], key: bytes | None = None) -> str:
    """SHA-256 (hex) of the entry's canonical JSON with ``prev_hash`` in and any ``hash`` key out;
    HMAC-SHA256 with ``key`` when one is given."""
    body = {k: v for k, v in fields.items() if k != "hash" and not (k in OPTIONAL and v is None)}
    body["prev_hash"] = prev_hash
    if key:
        return hmac.new(key, canonical(body), hashlib.sha256).hexdigest()
    return hashlib.sha256(canonical(body)).hexdigest()


def chain(prev_hash: str, decision_rows: Iterable[AuditInput], key: bytes | None = None) -> list[AuditEntry]:
    """Entries for the rows in order, the first linked to ``prev_hash`` (signed with ``key`` when given)."""
    out: list[AuditEntry] = []
    prev = prev_hash
    for row in decision_rows:
        body = row.fields()
        digest = entry_hash(prev, body, key)
        out.append(AuditEntry(**body, prev_hash=prev, hash=digest))
        prev = digest
    return out


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """``first_broken`` is the 1-based line where the chain first fails; ``problem`` says how (no data)."""

    ok: bool
    checked: int
    first_broken: int | None = None
    problem: str | None = None
    #: entries whose hash is a plain SHA-256 (not signed): all of them without a key
    unkeyed: int = 0
    #: how many anchors (entries count → head) the chain was checked against
    anchored: int = 0


def verify(lines: Iterable[Mapping[str, Any] | None], *, start: str = GENESIS,
           expected_head: str | None = None, key: bytes | None = None,
           anchors: Mapping[int, str] | None = None) -> VerifyResult:
    """Check a chain from its first line: fields, link to the previous line, and each line's own hash.

    A removed, inserted or swapped line fails at the first line whose ``prev_hash`` no longer
    links; an edited line fails at itself. ``expected_head`` (the store's last hash) also
    catches lines cut from the end. With ``key``, each hash must be the HMAC; plain SHA-256
    entries are accepted only before the first signed one (and counted in ``unkeyed``).
    ``anchors`` (entry count → the head after that many entries, from ``consent.anchor``) catch a
    re-hashed chain, a chain cut short or emptied, and a store whose log and head were changed together.
    """
    anchors = dict(anchors or {})
    prev = start
    n = 0
    unkeyed = 0
    signed_seen = False
    for n, line in enumerate(lines, start=1):
        if not isinstance(line, Mapping):
            return VerifyResult(False, n - 1, n, "not a JSON object (or a key appears twice)", unkeyed)
        if not set(FIELDS) <= set(line) or not set(line) <= set(FIELDS) | OPTIONAL \
                or any(line[k] is None for k in set(line) & OPTIONAL):
            return VerifyResult(False, n - 1, n, "unexpected or missing fields", unkeyed)
        if line["prev_hash"] != prev:
            return VerifyResult(False, n - 1, n, "prev_hash does not link to the line before", unkeyed)
        body = {k: v for k, v in line.items() if k != "hash"}
        if key and hmac.compare_digest(entry_hash(prev, body, key), str(line["hash"])):
            signed_seen = True
        elif entry_hash(prev, body) == line["hash"]:
            if key and signed_seen:
                return VerifyResult(False, n - 1, n, "an unsigned entry after signed ones", unkeyed)
            unkeyed += 1
        else:
            return VerifyResult(False, n - 1, n, "hash does not match the line's content", unkeyed)
        prev = str(line["hash"])
        if n in anchors and anchors[n] != prev:
            return VerifyResult(False, n - 1, n, "differs from the anchored head (chain rewritten)", unkeyed)
    if anchors and max(anchors) > n:
        return VerifyResult(False, n, n + 1, f"chain ends before the last anchor ({max(anchors)} entries)", unkeyed)
    if expected_head is not None and prev != expected_head:
        return VerifyResult(False, n, n + 1, "chain ends before the recorded head", unkeyed)
    return VerifyResult(True, n, unkeyed=unkeyed, anchored=len(anchors))
