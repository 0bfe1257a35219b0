"""`tsunagu users` (add with the password from stdin, list, disable, unlock) and the demo accounts of `demo --serve`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from hub.cli.main import app
from hub.db import make_engine, make_sessionmaker
from hub.workspace.auth import verify_password
from hub.workspace.demo import DEMO_ROLES, accounts_text, demo_passwords, seed_demo_users
from hub.workspace.models import User

runner = CliRunner()


def _users(state: Path) -> dict[str, User]:
    engine = make_engine(f"sqlite:///{state / 'hub.sqlite'}")
    try:
        with make_sessionmaker(engine)() as s:
            return {u.username: u for u in s.scalars(select(User))}
    finally:
        engine.dispose()


def test_users_add_reads_the_password_from_stdin_and_stores_only_a_hash(tmp_path: Path) -> None:
    """`users add` creates the database if needed and keeps an argon2 hash of the stdin password, never the password."""
    state = tmp_path / "state"
    r = runner.invoke(app, ["users", "add", "tanaka", "--role", "coordinator", "--agency", "elderly",
                            "--state", str(state)], input="a-long-password\n")
    assert r.exit_code == 0, r.output
    user = _users(state)["tanaka"]
    assert user.role == "coordinator" and user.agency == "elderly"
    assert user.password_hash.startswith("$argon2id$") and "a-long-password" not in user.password_hash
    assert verify_password(user.password_hash, "a-long-password")
    r = runner.invoke(app, ["users", "list", "--state", str(state)])
    assert r.exit_code == 0 and "tanaka" in r.output and "coordinator" in r.output and "argon2" not in r.output


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["--role", "boss"], "a-long-password\n", "--role must be one of"),
    (["--role", "ops", "--agency", "police"], "a-long-password\n", "agency must be one of"),
    (["--role", "ops"], "short\n", "at least 8 characters"),
])
def test_users_add_refuses_bad_input_with_a_clear_error(tmp_path: Path, args: list[str], stdin: str,
                                                        message: str) -> None:
    """An unknown role or agency, or a short password, is a one-line error (exit 2) and adds nobody."""
    state = tmp_path / "state"
    r = runner.invoke(app, ["users", "add", "sato", *args, "--state", str(state)], input=stdin)
    assert r.exit_code == 2 and message in r.output
    assert not (state / "hub.sqlite").exists() or "sato" not in _users(state)


def test_users_add_twice_is_refused(tmp_path: Path) -> None:
    """A taken user name is refused and the first account is unchanged."""
    state = tmp_path / "state"
    for _ in range(2):
        r = runner.invoke(app, ["users", "add", "kimura", "--role", "ops", "--state", str(state)],
                          input="a-long-password\n")
    assert r.exit_code == 2 and "exists" in r.output
    assert len(_users(state)) == 1


def test_disable_and_unlock(tmp_path: Path) -> None:
    """`users disable` / `enable` flip the account; `users unlock` lifts a lockout."""
    state = tmp_path / "state"
    runner.invoke(app, ["users", "add", "mori", "--role", "admin", "--state", str(state)], input="a-long-password\n")
    assert runner.invoke(app, ["users", "disable", "mori", "--state", str(state)]).exit_code == 0
    assert _users(state)["mori"].disabled
    assert "disabled" in runner.invoke(app, ["users", "list", "--state", str(state)]).output
    assert runner.invoke(app, ["users", "enable", "mori", "--state", str(state)]).exit_code == 0
    engine = make_engine(f"sqlite:///{state / 'hub.sqlite'}")
    with make_sessionmaker(engine).begin() as s:
        s.scalars(select(User)).one().locked_until = datetime.now(UTC) + timedelta(minutes=10)
    engine.dispose()
    assert "locked" in runner.invoke(app, ["users", "list", "--state", str(state)]).output
    assert runner.invoke(app, ["users", "unlock", "mori", "--state", str(state)]).exit_code == 0
    assert _users(state)["mori"].locked_until is None and not _users(state)["mori"].disabled
    assert runner.invoke(app, ["users", "unlock", "nobody", "--state", str(state)]).exit_code == 2


def test_demo_accounts_one_per_role_with_the_env_password_or_random(tmp_path: Path) -> None:
    """Demo accounts are named after their roles; all share TSUNAGU_DEMO_PASSWORD when set, else random ones."""
    same = demo_passwords({"TSUNAGU_DEMO_PASSWORD": "demo-password"})
    assert set(same) == set(DEMO_ROLES) and set(same.values()) == {"demo-password"}
    rnd = demo_passwords({})
    assert len(set(rnd.values())) == len(DEMO_ROLES) and all(len(p) >= 12 for p in rnd.values())
    with pytest.raises(ValueError):
        demo_passwords({"TSUNAGU_DEMO_PASSWORD": "short"})
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    seed_demo_users(url, rnd)
    seed_demo_users(url, same)  # a second run resets the passwords rather than failing
    users = _users(tmp_path)
    assert {u: users[u].role for u in users} == {r: r for r in DEMO_ROLES}
    assert all(verify_password(users[r].password_hash, "demo-password") for r in DEMO_ROLES)
    text = accounts_text(same, "http://127.0.0.1:8080")
    assert "http://127.0.0.1:8080/login" in text and all(r in text for r in DEMO_ROLES)
