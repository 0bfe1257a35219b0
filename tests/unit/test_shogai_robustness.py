"""The shogai connector against broken databases: a dead letter naming the source, never a traceback."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from connectors.contract import Item
from connectors.shogai import ShogaiConnector
from unit.test_shogai import SQLITE_DDL, case, client

STAMP = "2026-01-10 09:00:00"
NAME = "秘密　花子"


def _db(path: Path, ddl: list[str], riyousha: list[tuple[object, ...]], soudan: list[tuple[object, ...]]) -> None:
    con = sqlite3.connect(path)
    for stmt in ddl:
        con.execute(stmt)
    for row in riyousha:
        con.execute(f"INSERT INTO t_riyousha VALUES ({', '.join('?' * len(row))})", row)
    for row in soudan:
        con.execute(f"INSERT INTO t_soudan VALUES ({', '.join('?' * len(row))})", row)
    con.commit()
    con.close()


def _client(rid: object, **over: object) -> tuple[object, ...]:
    return tuple(client(rid, STAMP, **{"shimei": NAME, **over}).values())  # type: ignore[arg-type]


def _case(sid: object, rid: object, **over: object) -> tuple[object, ...]:
    return tuple(case(sid, rid, STAMP, **over).values())  # type: ignore[arg-type]


def good(path: Path) -> None:
    _db(path, SQLITE_DDL, [_client(1), _client(2)], [_case(10, 1), _case(11, 2)])


def empty_file(path: Path) -> None:
    path.write_bytes(b"")


def not_a_database(path: Path) -> None:
    path.write_text(f"{NAME},1980-01-02\n", encoding="utf-8")


def corrupt(path: Path) -> None:
    good(path)
    data = bytearray(path.read_bytes())
    data[100:] = b"\xa5" * (len(data) - 100)  # every page after the header scrambled
    path.write_bytes(bytes(data))


def truncated(path: Path) -> None:
    good(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 7])


def no_riyousha(path: Path) -> None:
    _db(path, SQLITE_DDL[1:], [], [_case(10, 1)])


def no_soudan(path: Path) -> None:
    _db(path, SQLITE_DDL[:1], [_client(1)], [])


def no_timestamp_column(path: Path) -> None:
    ddl = [SQLITE_DDL[0]]
    ddl.append("CREATE TABLE t_soudan (soudan_id INTEGER PRIMARY KEY, riyousha_id INTEGER NOT NULL, soudan_bi TEXT, "
              "soudan_kubun TEXT, kadai TEXT, joukyou TEXT, tsunagi_saki TEXT, shuuketsu_bi TEXT)")
    _db(path, ddl, [_client(1)], [_case(10, 1)[:-1]])


def no_id_column(path: Path) -> None:
    ddl = [SQLITE_DDL[0].replace("riyousha_id INTEGER PRIMARY KEY", "bangou INTEGER PRIMARY KEY"), SQLITE_DDL[1]]
    _db(path, ddl, [_client(1)], [_case(10, 1)])


def text_ids(path: Path) -> None:
    ddl = [SQLITE_DDL[0].replace("riyousha_id INTEGER PRIMARY KEY", "riyousha_id TEXT PRIMARY KEY"), SQLITE_DDL[1]]
    _db(path, ddl, [_client(NAME), _client("R-2")], [_case(10, 1)])


def bad_utf8(path: Path) -> None:
    good(path)
    con = sqlite3.connect(path)
    con.execute("UPDATE t_riyousha SET shimei = CAST(x'e5b1b1ff' AS TEXT) WHERE riyousha_id = 1")
    con.commit()
    con.close()


VARIANTS: dict[str, Callable[[Path], None]] = {
    "empty file": empty_file,
    "not a database": not_a_database,
    "corrupt pages": corrupt,
    "truncated": truncated,
    "no t_riyousha": no_riyousha,
    "no t_soudan": no_soudan,
    "no koushin_nichiji": no_timestamp_column,
    "no riyousha_id": no_id_column,
    "text ids": text_ids,
    "bad UTF-8": bad_utf8,
}


def read(url: str) -> list[Item]:
    connector = ShogaiConnector(url)
    try:
        return list(connector.read({}))
    finally:
        connector.close()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_broken_database_is_a_dead_letter_and_the_run_goes_on(tmp_path: Path, variant: str) -> None:
    """Each broken variant yields at least one dead letter of the shogai feed; nothing raises, nothing leaks."""
    path = tmp_path / "soudan.sqlite"
    VARIANTS[variant](path)
    with capture_logs() as logs:
        items = read(f"sqlite:///{path}")
    letters = [i.dead_letter for i in items if i.dead_letter is not None]
    assert letters, variant
    for letter, item in zip(letters, [i for i in items if i.dead_letter is not None], strict=True):
        assert letter.source == "shogai"
        text = letter.to_json_bytes().decode("utf-8")
        assert NAME not in text and "秘密" not in text and "R-2" not in text
        assert item.checkpoint.scope and item.checkpoint.position
    assert "秘密" not in repr(logs)
    for item in items:
        if item.event is not None:
            item.event.to_json_bytes()


@pytest.mark.parametrize(
    ("variant", "where", "reason"),
    [
        ("empty file", "database", "table t_riyousha missing"),
        ("not a database", "database", "source database unreadable (DatabaseError)"),
        ("no t_riyousha", "database", "table t_riyousha missing"),
        ("no t_soudan", "database", "table t_soudan missing"),
        ("no koushin_nichiji", "database", "column koushin_nichiji missing in t_soudan"),
        ("no riyousha_id", "database", "column riyousha_id missing in t_riyousha"),
        ("text ids", "t_riyousha", "non-integer riyousha_id in t_riyousha; rest of the table not read"),
    ],
)
def test_source_dead_letters_name_the_problem(tmp_path: Path, variant: str, where: str, reason: str) -> None:
    """A source-level dead letter names the table or column and the error type, never a value."""
    path = tmp_path / "soudan.sqlite"
    VARIANTS[variant](path)
    letters = [i.dead_letter for i in read(f"sqlite:///{path}") if i.dead_letter is not None]
    assert (where, reason) in [(d.where, d.reason) for d in letters]


def test_a_table_is_read_when_the_other_is_missing(tmp_path: Path) -> None:
    """Without t_soudan the clients still flow; the missing table is one dead letter."""
    path = tmp_path / "soudan.sqlite"
    no_soudan(path)
    items = read(f"sqlite:///{path}")
    assert [i.event.sourcerecord for i in items if i.event is not None] == ["shogai:1"]
    assert [i.dead_letter.reason for i in items if i.dead_letter is not None] == ["table t_soudan missing"]


def test_bad_utf8_spoils_only_its_row(tmp_path: Path) -> None:
    """A name that is not UTF-8 makes that client (and its case) a dead letter; the others flow."""
    path = tmp_path / "soudan.sqlite"
    bad_utf8(path)
    items = read(f"sqlite:///{path}")
    letters = [(i.dead_letter.where, i.dead_letter.reason) for i in items if i.dead_letter is not None]
    assert letters == [("t_riyousha:1", "undecodable text in shimei"),
                       ("t_soudan:10", "client row invalid: undecodable text in shimei")]
    assert {i.event.sourcerecord for i in items if i.event is not None} == {"shogai:2"}


def test_text_client_id_in_a_case_row_is_a_dead_letter(tmp_path: Path) -> None:
    """A t_soudan row whose riyousha_id is text becomes a dead letter without quoting it."""
    path = tmp_path / "soudan.sqlite"
    _db(path, SQLITE_DDL, [_client(1)], [_case(10, NAME), _case(11, 1)])
    items = read(f"sqlite:///{path}")
    letters = [(i.dead_letter.where, i.dead_letter.record, i.dead_letter.reason)
               for i in items if i.dead_letter is not None]
    assert letters == [("t_soudan:10", None, "non-integer riyousha_id")]
    assert len([i for i in items if i.event is not None]) == 2


def test_control_character_in_a_client_row_is_a_dead_letter(tmp_path: Path) -> None:
    """A NUL inside a name from the database is a dead letter naming the column."""
    path = tmp_path / "soudan.sqlite"
    _db(path, SQLITE_DDL, [_client(1, shimei="試験\x00花子")], [])
    [item] = read(f"sqlite:///{path}")
    assert item.dead_letter is not None and item.dead_letter.reason == "control character in shimei"


def test_missing_file_is_a_dead_letter(tmp_path: Path) -> None:
    """A database path that does not exist is a dead letter, not an error (and nothing is created)."""
    path = tmp_path / "nowhere" / "soudan.sqlite"
    [item] = read(f"sqlite:///{path}")
    assert item.dead_letter is not None and item.dead_letter.where == "database"
    assert not path.exists()


def test_service_mode_reports_a_lasting_problem_once(tmp_path: Path) -> None:
    """A connector polled again on the same broken source does not repeat the dead letter; after a fix it reads."""
    path = tmp_path / "soudan.sqlite"
    not_a_database(path)
    connector = ShogaiConnector(f"sqlite:///{path}")
    try:
        first = list(connector.read({}))
        second = list(connector.read({}))
        assert len(first) == 1 and second == []
        path.unlink()
        good(path)
        third = list(connector.read({}))
        assert len([i for i in third if i.event is not None]) == 4
    finally:
        connector.close()


@pytest.mark.postgres
def test_postgresql_source_missing_a_table_or_unreachable(pg_database: str) -> None:
    """On PostgreSQL too: a missing table, then an unreachable server, are dead letters naming the source."""
    import sqlalchemy as sa

    engine = sa.create_engine(pg_database)
    with engine.begin() as c:
        c.execute(sa.text("CREATE TABLE t_riyousha (riyousha_id integer PRIMARY KEY, shimei text NOT NULL, "
                          "koushin_nichiji timestamp NOT NULL)"))
        c.execute(sa.text("INSERT INTO t_riyousha VALUES (1, '試験　花子', '2026-01-10 09:00:00')"))
    engine.dispose()
    items = read(pg_database)
    assert [i.event.sourcerecord for i in items if i.event is not None] == ["shogai:1"]
    assert [(i.dead_letter.where, i.dead_letter.reason) for i in items if i.dead_letter is not None] == [
        ("database", "table t_soudan missing")]
    unreachable = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    [item] = read(unreachable)
    assert item.dead_letter is not None
    assert item.dead_letter.reason == "source database unreadable (OperationalError)"
    assert "nobody" not in item.dead_letter.model_dump_json()
