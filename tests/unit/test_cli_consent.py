"""`tsunagu audit verify`: the hash chain of an exported audit.jsonl and of the hub database."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from consent.audit import GENESIS, AuditInput, chain
from consent.model import JST
from hub.cli.consent import audit_app, consent_app
from schemas.codes import Field

# the registration hub/cli.py is to carry
app = typer.Typer()
app.add_typer(audit_app, name="audit")
app.add_typer(consent_app, name="consent")
runner = CliRunner()


def decisions(n: int) -> list[AuditInput]:
    t0 = datetime(2026, 5, 1, 9, 0, tzinfo=JST)
    return [
        AuditInput(event=f"ev-{i}", sourcerecord=f"houkatsu:C01-2026-{i:04d}", person=f"p-{i % 3}",
                   field=Field.ELDERLY, route="team" if i % 2 else None, decision=bool(i % 2),
                   basis="consent:c-1@2026-04-01T00:00:00+09:00" if i % 2 else "no-consent",
                   at=t0 + timedelta(minutes=i))
        for i in range(n)
    ]


def export(tmp_path: Path, n: int = 6) -> Path:
    path = tmp_path / "audit.jsonl"
    path.write_text("".join(e.line() + "\n" for e in chain(GENESIS, decisions(n))), encoding="utf-8")
    return path


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def verify_file(path: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["audit", "verify", "--file", str(path), *extra])
    return result.exit_code, result.output


def test_intact_export_is_ok(tmp_path: Path) -> None:
    """An untouched export verifies: `ok N entries`, exit 0."""
    code, out = verify_file(export(tmp_path))
    assert code == 0 and out.startswith("ok 6 entries (unsigned")


def test_removed_line_is_found_at_the_line_after_it(tmp_path: Path) -> None:
    """Removing line 3 breaks the link of the line that now stands there; exit 1 names line 3."""
    path = export(tmp_path)
    kept = lines(path)
    del kept[2]
    path.write_text("".join(kept), encoding="utf-8")
    code, out = verify_file(path)
    assert code == 1
    assert "line 3" in out and "prev_hash" in out


def test_edited_line_is_found_at_itself(tmp_path: Path) -> None:
    """Turning a deny into a permit on line 5 breaks that line's own hash; exit 1 names line 5."""
    path = export(tmp_path)
    rows = lines(path)
    entry = json.loads(rows[4])
    assert entry["decision"] == "deny"
    entry.update(decision="permit", route="team")
    rows[4] = json.dumps(entry, ensure_ascii=False) + "\n"
    path.write_text("".join(rows), encoding="utf-8")
    code, out = verify_file(path)
    assert code == 1
    assert "line 5" in out and "hash does not match" in out


def test_a_line_that_is_not_json_is_broken(tmp_path: Path) -> None:
    """A garbled line is reported by its line number, not as a crash."""
    path = export(tmp_path)
    rows = lines(path)
    rows[1] = rows[1][:20] + "\n"
    path.write_text("".join(rows), encoding="utf-8")
    code, out = verify_file(path)
    assert code == 1 and "line 2" in out


def test_cut_tail_is_found_only_against_a_known_head(tmp_path: Path) -> None:
    """Dropping the last line still links; with --expected-head the cut shows."""
    path = export(tmp_path)
    rows = lines(path)
    head = json.loads(rows[-1])["hash"]
    path.write_text("".join(rows[:-1]), encoding="utf-8")
    assert verify_file(path)[0] == 0
    code, out = verify_file(path, "--expected-head", head)
    assert code == 1 and "before the recorded head" in out


def test_empty_export_is_ok(tmp_path: Path) -> None:
    """An empty audit.jsonl is a valid (empty) chain."""
    path = tmp_path / "audit.jsonl"
    path.write_text("", encoding="utf-8")
    code, out = verify_file(path)
    assert code == 0 and out.startswith("ok 0 entries")


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    """A file that cannot be read exits 2 with a one-line message."""
    code, _ = verify_file(tmp_path / "nope.jsonl")
    assert code == 2


@pytest.fixture
def audited_db(tmp_path: Path) -> str:
    from sqlalchemy.orm import Session

    from consent.store import append_audit
    from hub.db import make_engine
    from hub.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        append_audit(s, decisions(3))
        append_audit(s, decisions(7)[3:])
    engine.dispose()
    return url


def test_database_chain_and_head(audited_db: str, tmp_path: Path) -> None:
    """The stored chain verifies against its head; an edited row or a deleted last row is found."""
    from sqlalchemy import text

    from hub.db import make_engine

    ok = runner.invoke(app, ["audit", "verify", "--database", audited_db])
    assert ok.exit_code == 0 and ok.output.startswith("ok 7 entries")
    by_state = runner.invoke(app, ["audit", "verify", "--state", str(tmp_path)])
    assert by_state.exit_code == 0 and by_state.output.startswith("ok 7 entries")

    engine = make_engine(audited_db)
    with engine.begin() as c:
        c.execute(text("DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)"))
    cut = runner.invoke(app, ["audit", "verify", "--database", audited_db])
    assert cut.exit_code == 1 and "before the recorded head" in cut.output
    with engine.begin() as c:
        c.execute(text("UPDATE audit_log SET basis = 'emergency:life-or-body' WHERE seq = 2"))
    engine.dispose()
    edited = runner.invoke(app, ["audit", "verify", "--database", audited_db])
    assert edited.exit_code == 1 and "entry 2" in edited.output
