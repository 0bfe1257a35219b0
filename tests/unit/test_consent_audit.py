"""The audit hash chain (consent.audit): entries, hashing and tamper detection."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.audit import FIELDS, GENESIS, AuditInput, chain, entry_hash, verify
from consent.decide import decide
from consent.model import JST, RULE_VERSION, Decision, DecisionInput, Designation
from schemas.codes import Field

AT = datetime(2026, 11, 1, 9, 30, tzinfo=JST)


def rows(n: int) -> list[AuditInput]:
    out = []
    for i in range(n):
        permit = i % 3 != 0
        out.append(AuditInput(event=f"ev{i:04d}", sourcerecord=f"houkatsu:C01-{i:04d}", person=f"P{i % 4}",
                              field=Field.ELDERLY if i % 2 else Field.CHILD, route="team" if permit else None,
                              decision=permit, basis=f"consent:c{i}@2026-01-01T00:00:00+09:00" if permit
                              else "no-consent", at=AT))
    return out


def lines(n: int = 6) -> list[dict[str, Any]]:
    return [e.to_json() for e in chain(GENESIS, rows(n))]


def test_entries_have_exactly_the_audit_jsonl_fields() -> None:
    """Each entry has the outputs.md audit.jsonl fields plus rule_version, and nothing else (no case content)."""
    entry = lines(1)[0]
    assert set(entry) == set(FIELDS) == {"event", "sourcerecord", "person", "field", "route", "decision", "basis",
                                         "at", "rule_version", "prev_hash", "hash"}
    assert entry["decision"] == "deny" and entry["route"] is None and entry["rule_version"] == RULE_VERSION
    assert entry["at"] == "2026-11-01T09:30:00+09:00" and entry["prev_hash"] == GENESIS


def test_hash_is_sha256_of_canonical_json_with_prev_hash() -> None:
    """hash = sha256(canonical JSON: sorted keys, compact, UTF-8, prev_hash in, hash out)."""
    e = lines(2)[1]
    body = {k: v for k, v in e.items() if k != "hash"}
    raw = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    assert e["hash"] == hashlib.sha256(raw).hexdigest() == entry_hash(e["prev_hash"], e)


def test_chain_links_and_verifies() -> None:
    """Each entry's prev_hash is the hash before it and the whole chain verifies."""
    ls = lines(6)
    assert [x["prev_hash"] for x in ls[1:]] == [x["hash"] for x in ls[:-1]]
    assert verify(ls) == verify(ls, expected_head=ls[-1]["hash"])
    assert verify(ls).ok and verify(ls).checked == 6
    assert verify([]).ok and verify([]).checked == 0


def test_chain_continues_from_a_given_head() -> None:
    """Two batches chained onto each other verify as one chain."""
    first = chain(GENESIS, rows(3))
    second = chain(first[-1].hash, rows(2))
    assert verify([e.to_json() for e in first + second]).ok


def test_jsonl_round_trip_verifies() -> None:
    """Lines written as JSON Lines and read back still verify (UTF-8, Japanese kept)."""
    text = "\n".join(e.line() for e in chain(GENESIS, rows(4)))
    assert verify(json.loads(x) for x in text.splitlines()).ok


@pytest.mark.parametrize("k", [1, 3, 6])
def test_removed_line_is_detected_at_that_position(k: int) -> None:
    """Removing line k breaks the chain at the line that now sits at k (the end needs the recorded head)."""
    ls = lines(6)
    head = ls[-1]["hash"]
    del ls[k - 1]
    if k == 6:
        assert verify(ls).ok  # a cut end is invisible without the head …
        result = verify(ls, expected_head=head)  # … and visible with it
    else:
        result = verify(ls)
    assert not result.ok and result.first_broken == k and result.checked == k - 1


@pytest.mark.parametrize(("key", "value"), [("decision", "deny"), ("person", "P9"), ("at", "2026-11-02T00:00:00+09:00"),
                                            ("field", "disability"), ("hash", "f" * 64), ("rule_version", "x")])
def test_edited_field_is_detected_at_that_line(key: str, value: str) -> None:
    """Editing any field of line 3 makes line 3 fail its hash."""
    ls = lines(6)
    ls[2] = {**ls[2], key: value}
    result = verify(ls)
    assert (result.ok, result.first_broken) == (False, 3)


def test_swapped_lines_are_detected_at_the_first_of_them() -> None:
    """Swapping lines 2 and 3 breaks the link at line 2."""
    ls = lines(6)
    ls[1], ls[2] = ls[2], ls[1]
    assert (verify(ls).ok, verify(ls).first_broken) == (False, 2)


def test_inserted_lines_are_detected() -> None:
    """A forged line fails at itself, or, if its own hash is consistent, at the line after it."""
    ls = lines(6)
    crude = {**ls[2], "event": "forged"}
    assert verify([*ls[:3], crude, *ls[3:]]).first_broken == 4
    body = {**rows(1)[0].fields(), "event": "forged"}
    forged = {**body, "prev_hash": ls[2]["hash"], "hash": entry_hash(ls[2]["hash"], body)}
    result = verify([*ls[:3], forged, *ls[3:]])
    assert (result.ok, result.first_broken) == (False, 5)


def test_extra_or_missing_fields_are_detected() -> None:
    """A line with a field added (say, case content) or removed fails."""
    ls = lines(3)
    assert verify([ls[0], {**ls[1], "summary": "x"}, ls[2]]).first_broken == 2
    short = dict(ls[1])
    del short["basis"]
    assert verify([ls[0], short]).first_broken == 2


def test_audit_input_from_a_decision() -> None:
    """AuditInput.of takes ids from the event and outcome and time from the decision."""
    e = DecisionInput(event_id="e9", event_type="jp.tsunagu.case.opened.v1", field=Field.ELDERLY, person="P1",
                      household="H1", time=datetime(2026, 2, 1, tzinfo=JST), record="houkatsu:C01-0009")
    d = decide(e, [], [Designation("d1", "H1", (Field.ELDERLY,), datetime(2026, 1, 1).date())], AT)
    entry = chain(GENESIS, [AuditInput.of(e, d)])[0]
    assert (entry.event, entry.sourcerecord, entry.person, entry.field, entry.route, entry.decision, entry.basis) == (
        "e9", "houkatsu:C01-0009", "P1", "elderly", "support_meeting", "permit", "designation:d1")
    with pytest.raises(ValueError):
        AuditInput.of(e, Decision(None, False, "no-consent"))


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 12), st.data())
def test_property_any_single_tampering_is_found_at_the_right_line(n: int, data: st.DataObject) -> None:
    """Whichever line is edited, removed (not last) or swapped with its successor, verify names that line."""
    ls = lines(n)
    k = data.draw(st.integers(1, n - 1))
    kind = data.draw(st.sampled_from(["edit", "remove", "swap"]))
    if kind == "edit":
        key = data.draw(st.sampled_from([f for f in FIELDS if f not in ("prev_hash",)]))
        ls[k - 1] = {**ls[k - 1], key: "tampered"}
    elif kind == "remove":
        del ls[k - 1]
    else:
        ls[k - 1], ls[k] = ls[k], ls[k - 1]
    result = verify(ls)
    assert not result.ok and result.first_broken == k and result.problem


# -- the workspace's optional keys: who did what (issue 8) ---------------------------------------------


def _with_user(n: int) -> list[AuditInput]:
    from dataclasses import replace

    return [replace(r, user="coordinator", action="household.view") if i % 2 else r for i, r in enumerate(rows(n))]


def test_old_chain_hashes_are_unchanged_by_the_optional_keys() -> None:
    """An entry without user/action hashes exactly as before they existed (old chains still verify)."""
    entry = lines(1)[0]
    legacy = {k: entry[k] for k in FIELDS if k not in ("hash", "prev_hash")}
    expected = hashlib.sha256(json.dumps({**legacy, "prev_hash": GENESIS}, ensure_ascii=False, sort_keys=True,
                                         separators=(",", ":")).encode("utf-8")).hexdigest()
    assert entry["hash"] == expected and "user" not in entry and "action" not in entry


def test_user_and_action_are_recorded_hashed_and_verified() -> None:
    """Entries with user and action carry them, mixed chains verify, and editing either breaks the chain there."""
    out = [e.to_json() for e in chain(GENESIS, _with_user(4))]
    assert out[1]["user"] == "coordinator" and out[1]["action"] == "household.view"
    assert "user" not in out[0]
    assert verify(out).ok
    for key, value in (("user", "admin"), ("action", "household.fhir")):
        tampered = [dict(x) for x in out]
        tampered[1][key] = value
        result = verify(tampered)
        assert not result.ok and result.first_broken == 2
    dropped = [dict(x) for x in out]
    del dropped[1]["user"]  # removing the user from an entry is tampering too
    assert verify(dropped).first_broken == 2
    added = [dict(x) for x in out]
    added[0]["user"] = "someone"  # adding one to an old entry as well
    assert verify(added).first_broken == 1
    nulled = [dict(x) for x in out]
    nulled[1]["user"] = None
    assert not verify(nulled).ok
