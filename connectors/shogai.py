"""障害者相談支援 相談支援システム: poll the read-only ``t_riyousha`` / ``t_soudan`` tables.

Each table is read with a compound watermark ``(koushin_nichiji, id)``: the checkpoint of
scope ``t_riyousha`` / ``t_soudan`` is ``"{koushin_nichiji}|{id:012d}"`` and the next poll
asks for ``koushin_nichiji > t OR (koushin_nichiji = t AND id > id)`` ordered by both, so
rows sharing one timestamp are neither skipped nor repeated, and a row changed in place
(``koushin_nichiji`` moves forward on every change) comes back once more.

The same code reads the SQLite sample file (timestamps stored as text) and the PostgreSQL
production tables (``timestamp`` / ``date`` columns): the watermark is bound as the
column's own type, found by reflecting the tables. Nothing is ever written to the source.

Events: a ``t_riyousha`` row → ``jp.tsunagu.person.observed.v1``; a ``t_soudan`` row →
``jp.tsunagu.case.{opened,updated,closed}.v1`` (and ``jp.tsunagu.referral.requested.v1``
while ``tsunagi_saki`` is set). A row that cannot be read becomes a dead letter whose
reason names columns and problems only, never values (text that is not UTF-8 or holds a
control character included: SQLite text is decoded leniently so that only its row suffers).

A source that cannot be read at all — no file, not a database, corrupt pages, a missing table
or column, ids that are not integers (keyset paging would be unsafe) — is a dead letter naming
the table or column and the error type (``where`` = ``database`` or the table, checkpoint scope
``database``) and the run goes on; what could be read before the problem has been yielded. A
connector polled again (service mode) reports the same lasting problem once, until a read
succeeds.
"""

from __future__ import annotations

import heapq
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import MetaData, Table, and_, create_engine, event, or_, select
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from connectors.contract import Checkpoint, Connector, Item
from connectors.safety import text_problem
from schemas.codes import (
    DISABILITY_LABELS,
    FEED_FIELD,
    REFERRAL_LABELS,
    SHOGAI_STATUS,
    SHOGAI_TOPICS,
    CaseStatus,
    DisabilityType,
    Feed,
    Sex,
    UnknownCode,
    lookup,
    lookup_many,
)
from schemas.deadletter import DeadLetter
from schemas.digits import to_ascii_digits
from schemas.envelope import CloudEvent, content_hash, stable_event_id
from schemas.events import CASE_TYPES, CaseV1, PersonObservedV1, PersonRecord, ReferralRequestedV1, Sensitive
from schemas.normalize import split_name
from schemas.wareki import JST, InvalidDate, parse_date, parse_jst_datetime

FEED = Feed.SHOGAI
SOURCE = f"urn:tsunagu:connector:{FEED.value}"
FIELD = FEED_FIELD[FEED]

PERSON_OBSERVED = "jp.tsunagu.person.observed.v1"
REFERRAL_REQUESTED = "jp.tsunagu.referral.requested.v1"

T_RIYOUSHA = "t_riyousha"
T_SOUDAN = "t_soudan"
_ID_COLUMN = {T_RIYOUSHA: "riyousha_id", T_SOUDAN: "soudan_id"}
#: columns without which a table cannot be read at all (the others may be absent: read as NULL)
_REQUIRED_COLUMNS = {
    T_RIYOUSHA: ("riyousha_id", "shimei", "koushin_nichiji"),
    T_SOUDAN: ("soudan_id", "riyousha_id", "soudan_bi", "joukyou", "koushin_nichiji"),
}
SOURCE_SCOPE = "database"
#: t_riyousha rows sort before t_soudan rows of the same instant: a client before their case
_TABLE_RANK = {T_RIYOUSHA: 0, T_SOUDAN: 1}

SEX_CODES: dict[int, Sex] = {1: Sex.MALE, 2: Sex.FEMALE, 9: Sex.UNKNOWN}
SOUDAN_KUBUN = frozenset({"基本相談", "計画相談", "地域移行", "地域定着"})

_RESIDENT_NO = re.compile(r"^[0-9]{10}$")


def record_key(riyousha_id: int) -> str:
    """Record key of a shogai client (README: ``shogai:{riyousha_id}``)."""
    return f"{FEED.value}:{riyousha_id}"


def case_key(soudan_id: int) -> str:
    return f"{FEED.value}:case:{soudan_id}"


def format_position(stamp: str, row_id: int) -> str:
    """Checkpoint position of a row: its normalized timestamp and zero-padded id (orders as text)."""
    return f"{stamp}|{row_id:012d}"


def parse_position(position: str) -> tuple[str, int] | None:
    """Inverse of ``format_position``; None for a missing or foreign position (read from the start)."""
    stamp, sep, raw_id = position.rpartition("|")
    if not sep or not raw_id.isdigit():
        return None
    return stamp, int(raw_id)


class RowError(ValueError):
    """A row that cannot become an event; ``problems`` name columns, never values."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


class SourceProblem(Exception):
    """The source (or one table of it) cannot be read on; ``reason`` names tables and columns only."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(reason)
        self.where = where
        self.reason = reason


def _int_id(value: Any) -> int | None:
    """An id as stored: only a real integer is one (text ids would make keyset paging unsafe)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text_problems(row: Mapping[str, Any]) -> list[str]:
    """'undecodable text in {column}' / 'control character in {column}' for each text column holding one."""
    out = []
    for column, value in row.items():
        if isinstance(value, str):
            problem = text_problem(value)
            if problem == "lone surrogate":
                out.append(f"undecodable text in {column}")
            elif problem is not None:
                out.append(f"{problem} in {column}")
    return out


# -- value readers (SQLite text or PostgreSQL native types) ------------------------------------


def _stamp_of(value: Any) -> tuple[str, datetime]:
    """A koushin_nichiji value → (normalized text, aware JST datetime); ValueError if unreadable."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        moment = parse_jst_datetime(value)
    else:
        raise ValueError("koushin_nichiji")
    moment = moment.replace(tzinfo=JST) if moment.tzinfo is None else moment.astimezone(JST)
    naive = moment.replace(tzinfo=None)
    text = naive.isoformat(sep=" ", timespec="microseconds" if naive.microsecond else "seconds")
    return text, moment


def _raw_stamp(value: Any) -> str:
    """A row's timestamp as the watermark keeps it: text exactly as stored (SQLite), else normalized.

    Text is kept verbatim so that binding it back compares equal to the stored value.
    """
    if isinstance(value, str):
        return value
    try:
        return _stamp_of(value)[0]
    except ValueError:
        return str(value)


def _date_of(value: Any, column: str, problems: list[str], *, required: bool = False) -> date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.append(f"missing {column}")
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return parse_date(str(value))
    except (InvalidDate, ValueError):
        problems.append(f"impossible date in {column}")
        return None


def _split(name: str) -> tuple[str | None, str | None]:
    """(family, given) when the source separated them; (None, None) for an unseparated name."""
    family, given = split_name(name)
    return (family, given) if given else (None, None)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _validation_problems(exc: ValidationError) -> list[str]:
    """pydantic errors as 'loc: type' only (the input value is personal data)."""
    return [f"{'.'.join(str(p) for p in err['loc'])}: {err['type']}" for err in exc.errors()]


# -- mapping rows ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Client:
    person: PersonRecord
    disability_types: list[DisabilityType]


def client_from_row(row: Mapping[str, Any]) -> Client:
    """A t_riyousha row → the client's PersonRecord and (sensitive) disability types; RowError if bad."""
    problems = _text_problems(row)
    if problems:
        raise RowError(problems)
    name = _text(row.get("shimei"))
    if name is None:
        problems.append("empty shimei")
    birth = _date_of(row.get("seinengappi"), "seinengappi", problems)
    sex = Sex.UNKNOWN
    raw_sex = row.get("seibetsu")
    if raw_sex is not None and str(raw_sex).strip() != "":
        try:
            sex = SEX_CODES[int(str(raw_sex).strip())]
        except (KeyError, ValueError):
            problems.append("unknown code in seibetsu")
    disability: list[DisabilityType] = []
    raw_types = _text(row.get("shogai_shubetsu"))
    if raw_types:
        try:
            disability = lookup_many(DISABILITY_LABELS, raw_types, ",", "shogai_shubetsu")
        except UnknownCode:
            problems.append("unknown code in shogai_shubetsu")
    resident_no = _text(row.get("atena_no"))
    if resident_no is not None:
        resident_no = to_ascii_digits(unicodedata.normalize("NFKC", resident_no))
        if not _RESIDENT_NO.fullmatch(resident_no):
            problems.append("invalid atena_no")
    rid = _int_id(row.get("riyousha_id"))
    if rid is None:
        problems.append("non-integer riyousha_id")
    if problems or name is None or rid is None:
        raise RowError(problems)
    family, given = _split(name)
    try:
        person = PersonRecord(
            record=record_key(rid),
            name=name,
            family_name=family,
            given_name=given,
            kana=_text(row.get("shimei_kana")),
            birth_date=birth,
            sex=sex,
            address=_text(row.get("jusho")),
            phone=_text(row.get("tel")),
            resident_no=resident_no,
        )
    except ValidationError as exc:
        raise RowError(_validation_problems(exc)) from None
    return Client(person=person, disability_types=disability)


@dataclass(frozen=True, slots=True)
class Change:
    """One event about to be built: type, payload and when it happened."""

    type: str
    data: BaseModel


def case_changes(row: Mapping[str, Any], client: Client, moment: datetime, revision: str) -> list[Change]:
    """A t_soudan row (and its client) → the case event, plus a referral when tsunagi_saki is set.

    Type rule (checked against samples.truth.json): ``終結`` → closed; a row last changed on
    its intake day (koushin_nichiji's date = soudan_bi) → opened; anything else → updated.
    """
    problems = _text_problems(row)
    if problems:
        raise RowError(problems)
    opened_on = _date_of(row.get("soudan_bi"), "soudan_bi", problems, required=True)
    closed_on = _date_of(row.get("shuuketsu_bi"), "shuuketsu_bi", problems)
    kubun = _text(row.get("soudan_kubun"))
    if kubun is not None and kubun not in SOUDAN_KUBUN:
        problems.append("unknown code in soudan_kubun")
    status: CaseStatus | None = None
    try:
        status = lookup(SHOGAI_STATUS, _text(row.get("joukyou")) or "", "joukyou")
    except UnknownCode:
        problems.append("unknown code in joukyou")
    topics = []
    try:
        topics = lookup_many(SHOGAI_TOPICS, _text(row.get("kadai")) or "", ",", "kadai")
    except UnknownCode:
        problems.append("unknown code in kadai")
    referral = None
    raw_referral = _text(row.get("tsunagi_saki"))
    if raw_referral is not None:
        try:
            referral = lookup(REFERRAL_LABELS, raw_referral, "tsunagi_saki")
        except UnknownCode:
            problems.append("unknown code in tsunagi_saki")
    sid = _int_id(row.get("soudan_id"))
    if sid is None:
        problems.append("non-integer soudan_id")
    if problems or opened_on is None or status is None or sid is None:
        raise RowError(problems)

    case = case_key(sid)
    try:
        payload = CaseV1(
            feed=FEED,
            case=case,
            opened_on=opened_on,
            closed_on=closed_on,
            status=status,
            topics=topics,
            referral_to=referral,
            subject=client.person,
            sensitive=Sensitive(disability_types=client.disability_types),
            revision=revision,
        )
    except ValidationError as exc:
        raise RowError(_validation_problems(exc)) from None
    if status is CaseStatus.CLOSED:
        change = "closed"
    elif moment.date() == opened_on:
        change = "opened"
    else:
        change = "updated"
    out = [Change(CASE_TYPES[change], payload)]
    if referral is not None:
        out.append(
            Change(
                REFERRAL_REQUESTED,
                ReferralRequestedV1(
                    feed=FEED, case=case, to=referral, requested_on=moment.date(), subject=client.person
                ),
            )
        )
    return out


def build_event(change: Change, record: str, moment: datetime, revision: str) -> CloudEvent:
    """The CloudEvent for one change; the id depends only on what changed, so re-reads match."""
    data = change.data.model_dump(mode="json")
    return CloudEvent(
        id=stable_event_id(FEED.value, record, revision, content_hash(data)),
        source=SOURCE,
        type=change.type,
        time=moment,
        sourcerecord=record,
        field=FIELD,
        data=data,
    )


# -- the connector -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    stamp: str
    rank: int
    row_id: int
    table: str
    values: dict[str, Any]

    @property
    def order(self) -> tuple[str, int, int]:
        return (self.stamp, self.rank, self.row_id)


class ShogaiConnector(Connector):
    """Polls 相談支援システム tables (SQLite sample file or PostgreSQL), read-only."""

    name = FEED.value

    def __init__(self, url: str, *, schema: str | None = None, page_size: int = 500) -> None:
        self.url = url
        self.schema = schema
        self.page_size = page_size
        self._engine: Engine | None = None
        self._tables: dict[str, Table] | None = None
        #: source problems already reported by this connector (service mode polls again and again)
        self._reported: set[tuple[str, str]] = set()

    # engine and tables are opened lazily, so constructing a connector never touches the source
    def _open(self) -> tuple[Engine, dict[str, Table]]:
        if self._engine is None or self._tables is None:
            self._engine = _read_only_engine(self.url)
            metadata = MetaData(schema=self.schema)
            with self._engine.connect() as conn:
                self._tables = {
                    name: Table(name, metadata, autoload_with=conn) for name in (T_RIYOUSHA, T_SOUDAN)
                }
        return self._engine, self._tables

    def _open_tables(self) -> tuple[Engine, dict[str, Table], list[SourceProblem]]:
        """The engine and the usable tables, with what is wrong with the others."""
        if self._engine is None:
            self._engine = _read_only_engine(self.url)
        if self._tables is not None:
            return self._engine, self._tables, []
        metadata = MetaData(schema=self.schema)
        tables: dict[str, Table] = {}
        problems: list[SourceProblem] = []
        with self._engine.connect() as conn:
            for name in (T_RIYOUSHA, T_SOUDAN):
                try:
                    table = Table(name, metadata, autoload_with=conn)
                except NoSuchTableError:
                    problems.append(SourceProblem(SOURCE_SCOPE, f"table {name} missing"))
                    continue
                missing = [c for c in _REQUIRED_COLUMNS[name] if c not in table.c]
                if missing:
                    problems.append(SourceProblem(SOURCE_SCOPE, f"column {missing[0]} missing in {name}"))
                    continue
                tables[name] = table
        if not problems:
            self._tables = tables
        return self._engine, tables, problems

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        self._engine = None
        self._tables = None

    def read(self, checkpoints: Mapping[str, str]) -> Iterator[Item]:
        """Yield every row changed after the checkpoints, both tables merged in time order.

        A source that cannot be read (on) ends the read with a dead letter naming the problem.
        """
        problems: list[SourceProblem] = []
        try:
            engine, tables, problems = self._open_tables()
            names = [n for n in (T_RIYOUSHA, T_SOUDAN) if n in tables]
            if T_RIYOUSHA not in tables and T_SOUDAN in tables:
                names.remove(T_SOUDAN)  # a case needs its client row
            streams = [self._rows(engine, tables[name], name, checkpoints.get(name)) for name in names]
            for row in heapq.merge(*streams, key=lambda r: r.order):
                if row.table == T_RIYOUSHA:
                    yield from self._client_items(row)
                else:
                    yield from self._case_items(engine, tables[T_RIYOUSHA], row)
        except SourceProblem as exc:
            problems.append(exc)
        except (SQLAlchemyError, OSError, ValueError, UnicodeError) as exc:
            problems.append(SourceProblem(SOURCE_SCOPE, f"source database unreadable ({_error_type(exc)})"))
            self.close()  # open afresh next time
        for problem in problems:
            yield from self._source_dead(problem)
        if not problems:
            self._reported.clear()

    def _source_dead(self, problem: SourceProblem) -> Iterator[Item]:
        if (problem.where, problem.reason) in self._reported:
            return
        self._reported.add((problem.where, problem.reason))
        letter = DeadLetter(source=FEED.value, where=problem.where, reason=problem.reason)
        yield Item(checkpoint=Checkpoint(SOURCE_SCOPE, "0"), dead_letter=letter)

    def _rows(self, engine: Engine, table: Table, name: str, position: str | None) -> Iterator[_Row]:
        """Rows after a watermark, page by page (each page its own short read-only transaction)."""
        id_col = table.c[_ID_COLUMN[name]]
        ts_col = table.c.koushin_nichiji
        mark = parse_position(position) if position else None
        while True:
            stmt = select(table).order_by(ts_col, id_col).limit(self.page_size)
            if mark is not None:
                bound = _bind_stamp(ts_col.type, mark[0])
                stmt = stmt.where(or_(ts_col > bound, and_(ts_col == bound, id_col > mark[1])))
            with _read_only(engine) as conn:
                page = [dict(r._mapping) for r in conn.execute(stmt)]
            for values in page:
                row_id = _int_id(values[_ID_COLUMN[name]])
                if row_id is None:
                    raise SourceProblem(name, f"non-integer {_ID_COLUMN[name]} in {name}; rest of the table not read")
                stamp = _raw_stamp(values["koushin_nichiji"])
                if text_problem(stamp):  # cannot be bound back as a watermark
                    raise SourceProblem(name, f"undecodable koushin_nichiji in {name}; rest of the table not read")
                row = _Row(stamp, _TABLE_RANK[name], row_id, name, values)
                yield row
                # continue after what the database returned, in its own representation
                mark = (row.stamp, row_id)
            if len(page) < self.page_size:
                return

    def _client_items(self, row: _Row) -> Iterator[Item]:
        checkpoint = Checkpoint(T_RIYOUSHA, format_position(row.stamp, row.row_id))
        record = record_key(row.row_id)
        where = f"{T_RIYOUSHA}:{row.row_id}"
        try:
            _, moment = _stamp_of(row.values["koushin_nichiji"])
        except ValueError:
            yield self._dead(checkpoint, where, record, "unreadable koushin_nichiji", None)
            return
        try:
            client = client_from_row(row.values)
        except RowError as exc:
            yield self._dead(checkpoint, where, record, str(exc), moment)
            return
        revision = moment.isoformat()
        payload = PersonObservedV1(
            person=client.person, feed=FEED, sensitive=Sensitive(disability_types=client.disability_types)
        )
        event = build_event(Change(PERSON_OBSERVED, payload), record, moment, revision)
        yield Item(checkpoint=checkpoint, event=event, key=record)

    def _case_items(self, engine: Engine, riyousha: Table, row: _Row) -> Iterator[Item]:
        checkpoint = Checkpoint(T_SOUDAN, format_position(row.stamp, row.row_id))
        where = f"{T_SOUDAN}:{row.row_id}"
        raw_client = row.values.get("riyousha_id")
        client_id = _int_id(raw_client)
        record = record_key(client_id) if client_id is not None else None
        try:
            _, moment = _stamp_of(row.values["koushin_nichiji"])
        except ValueError:
            yield self._dead(checkpoint, where, record, "unreadable koushin_nichiji", None)
            return
        if raw_client is None:
            yield self._dead(checkpoint, where, None, "missing riyousha_id", moment)
            return
        if record is None:
            yield self._dead(checkpoint, where, None, "non-integer riyousha_id", moment)
            return
        with _read_only(engine) as conn:
            found = conn.execute(select(riyousha).where(riyousha.c.riyousha_id == raw_client)).first()
        if found is None:
            yield self._dead(checkpoint, where, record, "client row not found", moment)
            return
        try:
            client = client_from_row(dict(found._mapping))
        except RowError as exc:
            yield self._dead(checkpoint, where, record, f"client row invalid: {exc}", moment)
            return
        revision = moment.isoformat()
        try:
            changes = case_changes(row.values, client, moment, revision)
        except RowError as exc:
            yield self._dead(checkpoint, where, record, str(exc), moment)
            return
        for change in changes:
            yield Item(checkpoint=checkpoint, event=build_event(change, record, moment, revision), key=record)

    def _dead(
        self, checkpoint: Checkpoint, where: str, record: str | None, reason: str, at: datetime | None
    ) -> Item:
        letter = DeadLetter(source=FEED.value, where=where, record=record, reason=reason or "invalid row", at=at)
        return Item(checkpoint=checkpoint, dead_letter=letter, key=record)


def _error_type(exc: BaseException) -> str:
    """The DBAPI error's type when SQLAlchemy wrapped one (``DatabaseError``), else the exception's own."""
    orig = getattr(exc, "orig", None)
    return type(orig).__name__ if isinstance(orig, BaseException) else type(exc).__name__


def _lenient_text(raw: bytes) -> str:
    """SQLite text as str; bytes that are not UTF-8 become surrogate escapes, judged per row later."""
    return raw.decode("utf-8", "surrogateescape")


def _bind_stamp(column_type: Any, stamp: str) -> Any:
    """A watermark as the column stores it: datetime for timestamp columns, text for SQLite text."""
    if isinstance(column_type, sqltypes.DateTime):
        moment = datetime.fromisoformat(stamp)
        return moment.replace(tzinfo=JST) if column_type.timezone else moment
    return stamp


def _read_only_engine(url: str) -> Engine:
    """An engine that cannot write: SQLite opened ``mode=ro``; PostgreSQL sessions read-only."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            parsed = parsed.set(database=f"file:{database}").update_query_dict({"mode": "ro", "uri": "true"})
        engine = create_engine(parsed)

        @event.listens_for(engine, "connect")
        def _text_factory(dbapi_conn: Any, _rec: Any) -> None:
            dbapi_conn.text_factory = _lenient_text

        return engine
    return create_engine(parsed, pool_pre_ping=True)


@contextmanager
def _read_only(engine: Engine) -> Iterator[Connection]:
    """A connection in a read-only transaction (PostgreSQL ``SET TRANSACTION READ ONLY``), rolled back."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(postgresql_readonly=True)
        try:
            yield conn
        finally:
            conn.rollback()
