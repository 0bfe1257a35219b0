"""The audit chain against an insider: HMAC-signed entries, an append-only anchor, duplicate keys refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from consent.anchor import AnchorError, append_anchor, read_anchors
from consent.audit import GENESIS, chain, entry_hash, verify
from hub.bootstrap import Database
from hub.cli.main import app
from hub.migrate import upgrade
from unit.test_cli_consent import decisions

KEY = b"audit-key-held-by-the-municipality"
runner = CliRunner()


def _write(path: Path, entries: list[dict]) -> None:
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), encoding="utf-8")


def _signed(tmp_path: Path, n: int = 6) -> tuple[Path, Path, list[dict]]:
    """A signed export and an anchor file holding its head after 3 and after n entries."""
    entries = [e.to_json() for e in chain(GENESIS, decisions(n), KEY)]
    path, anchors = tmp_path / "audit.jsonl", tmp_path / "audit.anchor"
    _write(path, entries)
    now = datetime(2026, 5, 1, tzinfo=UTC)
    append_anchor(anchors, 3, entries[2]["hash"], now, KEY)
    append_anchor(anchors, n, entries[-1]["hash"], now, KEY)
    return path, anchors, entries


def _verify(path: Path, anchors: Path | None, monkeypatch: pytest.MonkeyPatch,
            key: bytes | None = KEY) -> tuple[int, str]:
    if key:
        monkeypatch.setenv("TSUNAGU_AUDIT_HMAC_KEY", key.decode())
    else:
        monkeypatch.delenv("TSUNAGU_AUDIT_HMAC_KEY", raising=False)
    extra = ["--anchor", str(anchors)] if anchors is not None else []
    result = runner.invoke(app, ["audit", "verify", "--file", str(path), *extra])
    return result.exit_code, result.output


def test_intact_signed_chain_with_anchors_is_ok(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A signed export checked with the key and its anchors verifies and says it is signed and anchored."""
    path, anchors, _ = _signed(tmp_path)
    code, out = _verify(path, anchors, monkeypatch)
    assert code == 0 and out.startswith("ok 6 entries (signed; 2 anchors)"), out


def test_dropped_tail_lines_are_found_by_the_anchor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dropping the last two lines is found: the chain ends before the last anchor."""
    path, anchors, entries = _signed(tmp_path)
    _write(path, entries[:-2])
    code, out = _verify(path, anchors, monkeypatch)
    assert code == 1 and "before the last anchor" in out


def test_emptied_file_is_found_by_the_anchor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An emptied audit.jsonl no longer verifies as an empty chain once anchors exist."""
    path, anchors, _ = _signed(tmp_path)
    path.write_text("", encoding="utf-8")
    code, out = _verify(path, anchors, monkeypatch)
    assert code == 1 and "before the last anchor" in out


def test_forged_well_linked_entry_fails_without_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An appended entry linked with a plain SHA-256 (the forger has no key) is an unsigned entry after signed ones."""
    path, anchors, entries = _signed(tmp_path)
    forged = dict(entries[-1], event="ev-forged", decision="permit", prev_hash=entries[-1]["hash"])
    forged["hash"] = entry_hash(forged["prev_hash"], forged)
    _write(path, [*entries, forged])
    code, out = _verify(path, anchors, monkeypatch)
    assert code == 1 and "line 7" in out and "unsigned entry after signed ones" in out
    wrong_key = dict(forged, hash=entry_hash(forged["prev_hash"], forged, b"guessed-key"))
    _write(path, [*entries, wrong_key])
    code, out = _verify(path, anchors, monkeypatch)
    assert code == 1 and "line 7" in out and "hash does not match" in out


def test_full_rehash_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Editing a decision and re-hashing the whole file without the key is found against the first anchor it
    passes; without anchors the key still flags every entry as unsigned."""
    path, anchors, _entries = _signed(tmp_path)
    inputs = decisions(6)
    inputs[1] = type(inputs[1])(**{**{k: getattr(inputs[1], k) for k in inputs[1].__slots__}, "decision": False,
                                   "route": None, "basis": "no-consent"})
    rehashed = [e.to_json() for e in chain(GENESIS, inputs)]
    _write(path, rehashed)
    code, out = _verify(path, anchors, monkeypatch)
    assert code == 1 and "line 3" in out and "anchored head" in out
    code, out = _verify(path, anchors, monkeypatch, key=None)
    assert code == 1 and "line 3" in out and "anchored head" in out
    code, out = _verify(path, None, monkeypatch)
    assert code == 0 and "the first 6 entries are unsigned" in out and "no anchor file" in out


def test_old_unkeyed_chain_still_verifies_and_is_flagged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chain written before the key was set verifies with the key, flagged as unsigned; a signed tail after
    an unsigned prefix verifies and says how many entries are unsigned."""
    old = [e.to_json() for e in chain(GENESIS, decisions(3))]
    newer = [e.to_json() for e in chain(old[-1]["hash"], decisions(5)[3:], KEY)]
    path = tmp_path / "audit.jsonl"
    _write(path, old)
    code, out = _verify(path, None, monkeypatch)
    assert code == 0 and "the first 3 entries are unsigned" in out
    _write(path, [*old, *newer])
    code, out = _verify(path, None, monkeypatch)
    assert code == 0 and out.startswith("ok 5 entries (signed; the first 3 entries are unsigned")
    code, out = _verify(path, None, monkeypatch, key=None)
    assert code == 1  # without the key the signed entries cannot be checked: they do not match a plain hash


def test_duplicate_decision_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A line whose JSON has `decision` twice is broken at that line, whichever value would win."""
    path, anchors, _entries = _signed(tmp_path)
    rows = path.read_text(encoding="utf-8").splitlines(keepends=True)
    rows[1] = rows[1].replace('"decision": "', '"decision": "permit", "decision": "', 1)
    path.write_text("".join(rows), encoding="utf-8")
    code, out = _verify(path, anchors, monkeypatch)
    assert code == 1 and "line 2" in out


def test_optional_keys_are_hashed_only_when_set() -> None:
    """An entry with the workspace's `user`/`action` keys verifies (they are hashed); null ones change nothing."""
    [e] = [x.to_json() for x in chain(GENESIS, decisions(1), KEY)]
    assert entry_hash(GENESIS, {**e, "user": None}, KEY) == e["hash"]
    with_user = {**e, "user": "op-1", "action": "view"}
    with_user["hash"] = entry_hash(GENESIS, with_user, KEY)
    assert with_user["hash"] != e["hash"]
    assert verify([with_user], key=KEY).ok
    assert not verify([{**with_user, "user": "op-2"}], key=KEY).ok


def test_anchor_file_rejects_forged_and_backward_lines(tmp_path: Path) -> None:
    """An anchor line without the key's MAC, or one going back to fewer entries, is an AnchorError; a torn last
    line (a crash mid-append) is skipped."""
    anchors = tmp_path / "a"
    now = datetime(2026, 5, 1, tzinfo=UTC)
    append_anchor(anchors, 5, "a" * 64, now, KEY)
    append_anchor(anchors, 3, "b" * 64, now, KEY)
    with pytest.raises(AnchorError, match="line 2 goes back"):
        list(read_anchors(anchors, KEY))
    forged = tmp_path / "f"
    append_anchor(forged, 5, "a" * 64, now, b"other")
    with pytest.raises(AnchorError, match="not signed"):
        list(read_anchors(forged, KEY))
    torn = tmp_path / "t"
    append_anchor(torn, 5, "a" * 64, now, KEY)
    with torn.open("ab") as f:
        f.write(b'{"at": "2026-')
    assert [a.entries for a in read_anchors(torn, KEY)] == [5]


def test_database_log_and_head_changed_together_are_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deleting the last audit_log rows and setting audit_head to match passes the stored-head check but not the
    anchor written by the hub before."""
    from consent.store import append_audit
    from hub.anchoring import anchor_head

    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    upgrade(url)
    db = Database.open(url, migrate=False, audit_key=KEY)
    with db.sessions.begin() as s:
        append_audit(s, decisions(5))
    anchors = tmp_path / "audit.anchor"
    assert anchor_head(db.sessions, anchors, KEY) is not None
    assert anchor_head(db.sessions, anchors, KEY) is None  # unchanged head: no new line
    monkeypatch.setenv("TSUNAGU_AUDIT_HMAC_KEY", KEY.decode())
    ok = runner.invoke(app, ["audit", "verify", "--state", str(tmp_path)])
    assert ok.exit_code == 0 and ok.output.startswith("ok 5 entries (signed; 1 anchors)"), ok.output
    with db.engine.begin() as c:
        prev = c.execute(text("SELECT hash FROM audit_log ORDER BY seq LIMIT 1 OFFSET 2")).scalar_one()
        c.execute(text("DELETE FROM audit_log WHERE seq > (SELECT min(seq) + 2 FROM audit_log)"))
        c.execute(text("UPDATE audit_head SET hash = :h, entries = 3"), {"h": prev})
    db.close()
    cut = runner.invoke(app, ["audit", "verify", "--state", str(tmp_path)])
    assert cut.exit_code == 1 and "before the last anchor" in cut.output, cut.output
