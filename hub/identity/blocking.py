"""A batch's candidate look-ups: every blocking key of the batch read in a few set queries, then answered in memory.

:meth:`hub.identity.resolver.IdentityService.blocking_statements` are the look-ups of ONE record. For a batch,
:func:`read_blocking` runs them for all of the batch's records at once: per table and key kind (birth date and
reading, birth date and folded name, address and birth date, birth date and reading of the given name, and the
birth-date-less rows by reading or folded name) one statement with a fixed number of ``(a = ? AND b = ?)`` slots
joined by OR, so every slot is an index search (SQLite: MULTI-INDEX OR; never a row-value OR, which scans) and
the compiled statement is reused. PostgreSQL, which would plan every such OR anew, joins the table to the
``unnest`` of two arrays instead: one statement per table and key kind, whatever the batch size.
:meth:`BlockingIndex.find` then answers a record's look-ups from the rows read, as the statements would: the
rows the batch itself writes are noted (:meth:`BlockingIndex.note`) and every hit is checked against the row's
current keys. A record whose keys were not read ahead (or a capped look-up with
more rows than its cap) answers ``None``: the caller runs the statements.

The persons found (and those of the batch's known records) are read ahead too: their registry and source rows,
the registry's other names and the registry observations, for scoring and the as-of household. A person whose
rows the batch changes is *dirty*: :meth:`BlockingIndex.rows_of` and :meth:`BlockingIndex.observations_of` then
answer ``None`` and the caller asks the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from functools import cache
from typing import Any

from sqlalchemy import ARRAY, Select, and_, bindparam, func, or_, select
from sqlalchemy.orm import Session

from hub.db import prefetch
from hub.identity.scoring import BLOCK_LIMIT, Features
from hub.identity.tables import Person, PersonRecordRow, Resident, ResidentName, ResidentObservation
from schemas.name_evidence import slip_birth_dates

_INFO = "tsunagu_blocking"
#: (a = ? AND b = ?) terms per statement, by size (the smallest that holds the keys left is used; a small batch binds
#: few parameters); unused slots are bound to NULL, which matches nothing
SLOTS = (4, 20, 100)

#: the kept columns of a row, in this order (ResidentName has no address or given reading)
_COLS = ("person_id", "birth_date", "kana_key", "folded_key", "address_key", "given_kana")
_P, _B, _K, _F, _A, _G = range(6)
#: key kind → the two kept columns it pairs
_PAIRS = {"bk": (_B, _K), "bf": (_B, _F), "ab": (_A, _B), "bg": (_B, _G)}
_TABLES: dict[str, Any] = {"res": Resident, "rec": PersonRecordRow, "name": ResidentName}
_KINDS = {"res": ("bk", "bf", "ab", "bg"), "rec": ("bk", "bf", "ab", "bg"), "name": ("bk", "bf")}
_NULL_BIRTH = ("res", "name")  # tables whose birth-date-less rows are found by reading or folded name (capped)


def _columns(table: str) -> list[Any]:
    model = _TABLES[table]
    pk = model.id if table == "name" else (model.resident_no if table == "res" else model.record)
    cols = [pk] + [getattr(model, c) if hasattr(model, c) else None for c in _COLS]
    if table == "name":
        cols.append(model.resident_no)
    return [c for c in cols if c is not None]


def _state(table: str, row: Sequence[Any]) -> tuple[Any, ...]:
    """(pk, person_id, birth, kana, folded, address, given[, resident_no]) from a selected row."""
    if table == "name":
        pk, pid, b, k, f, no = row
        return (pk, (pid, b, k, f, None, None), no)
    return (row[0], tuple(row[1:7]), None)


@cache
def pair_statement(table: str, kind: str, slots: int = SLOTS[-1]) -> Select[Any]:
    """The rows of ``table`` matching any of ``slots`` (a, b) pairs of key ``kind`` (bound as a0, b0, a1, …)."""
    model = _TABLES[table]
    i, j = _PAIRS[kind]
    ca, cb = getattr(model, _COLS[i]), getattr(model, _COLS[j])
    terms = [and_(ca == bindparam(f"a{n}"), cb == bindparam(f"b{n}")) for n in range(slots)]
    return select(*_columns(table)).where(or_(*terms))


@cache
def unnest_statement(table: str, kind: str) -> Select[Any]:
    """PostgreSQL: the rows of ``table`` matching any of the (a, b) pairs of key ``kind``, bound as arrays a and b."""
    model = _TABLES[table]
    i, j = _PAIRS[kind]
    ca, cb = getattr(model, _COLS[i]), getattr(model, _COLS[j])
    keys = func.unnest(bindparam("a", type_=ARRAY(ca.type)), bindparam("b", type_=ARRAY(cb.type))).table_valued(
        "a", "b").render_derived()
    return select(*_columns(table)).select_from(model).join(keys, and_(ca == keys.c.a, cb == keys.c.b))


@cache
def null_birth_statement(table: str, column: str) -> Select[Any]:
    """The birth-date-less rows of ``table`` whose ``column`` (kana_key or folded_key) is in ``keys``."""
    model = _TABLES[table]
    return select(*_columns(table)).where(model.birth_date.is_(None),
                                          getattr(model, column).in_(bindparam("keys", expanding=True)))


class BlockingIndex:
    """The rows the batch's look-ups can find, by key, as they stand in this transaction."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[Any, tuple[Any, ...]]] = {t: {} for t in _TABLES}
        self.by: dict[tuple[str, str], dict[Any, set[Any]]] = {}
        self.read: dict[tuple[str, str], set[Any]] = {}
        self.names_of: dict[str, set[Any]] = {}
        self._synthetic = 0
        # the persons read ahead (all their rows), and those whose rows or observations the batch changed
        self.loaded: set[str] = set()
        self.dirty: set[str] = set()
        self.observed: set[str] = set()
        self.residents_of: dict[str, list[Resident]] = {}
        self.records_of: dict[str, list[PersonRecordRow]] = {}
        self.alt_names: dict[str, tuple[tuple[str | None, str | None, str | None], ...]] = {}
        self.observations: dict[str, list[ResidentObservation]] = {}

    # ------------------------------------------------------------------ writes of the batch
    def touch(self, person_id: str | None) -> None:
        """The batch changes (or may change) this person's rows."""
        if person_id is not None:
            self.dirty.add(person_id)

    def note(self, table: str, pk: Any, state: tuple[Any, ...]) -> None:
        """The batch wrote a row: it (now) has these kept columns; its old and new persons are dirty."""
        old = self.rows[table].get(pk)
        if old is not None:
            self.touch(old[_P])
        self.touch(state[_P])
        self._put(table, pk, state)

    def _put(self, table: str, pk: Any, state: tuple[Any, ...]) -> None:
        """A row has these kept columns; it is found under its new keys (old keys no longer match)."""
        self.rows[table][pk] = state
        for kind in _KINDS[table]:
            i, j = _PAIRS[kind]
            if state[i] is not None and state[j] is not None:
                self.by.setdefault((table, kind), {}).setdefault((state[i], state[j]), set()).add(pk)
        if table == "name" and state[_B] is not None:  # other names by birth date alone (the reading-suffix look-up)
            self.by.setdefault((table, "nb"), {}).setdefault(state[_B], set()).add(pk)
        if table in _NULL_BIRTH and state[_B] is None:
            for kind, col in (("k0", _K), ("f0", _F)):
                if state[col] is not None:
                    self.by.setdefault((table, kind), {}).setdefault(state[col], set()).add(pk)

    def note_record(self, row: PersonRecordRow) -> None:
        self.note("rec", row.record, (row.person_id, row.birth_date, row.kana_key, row.folded_key, row.address_key,
                                      row.given_kana))

    def note_resident(self, row: Resident) -> None:
        self.note("res", row.resident_no, (row.person_id, row.birth_date, row.kana_key, row.folded_key,
                                           row.address_key, row.given_kana))

    def replace_names(self, resident_no: str, person_id: str, birth: date | None,
                      keys: Iterable[tuple[str | None, str | None, str | None]]) -> None:
        """The resident's other names were replaced with these (name, folded, kana) keys."""
        self.touch(person_id)
        for pk in self.names_of.pop(resident_no, set()):
            self.rows["name"].pop(pk, None)
        mine: set[Any] = set()
        for _nk, fk, kk in keys:
            self._synthetic += 1
            pk = ("new", self._synthetic)
            self.note("name", pk, (person_id, birth, kk, fk, None, None))
            mine.add(pk)
        self.names_of[resident_no] = mine

    # ------------------------------------------------------------------ look-ups
    def _hits(self, table: str, kind: str, key: Any) -> set[Any] | None:
        """The rows of ``table`` under ``key``, or None when the key was not read ahead."""
        if key not in self.read.get((table, kind), ()):
            return None
        rows = self.rows[table]
        out = set()
        for pk in self.by.get((table, kind), {}).get(key, ()):
            state = rows.get(pk)
            if state is None:
                continue
            if kind == "nb":
                if state[_B] == key:
                    out.add(pk)
            elif kind in ("k0", "f0"):
                if state[_B] is None and state[_K if kind == "k0" else _F] == key:
                    out.add(pk)
            else:
                i, j = _PAIRS[kind]
                if (state[i], state[j]) == key:
                    out.add(pk)
        return out

    def find(self, f: Features, *, residents: bool = True) -> set[str] | None:
        """The persons the key look-ups of ``blocking_statements(f)`` find (not the household ones), or None."""
        b = f.birth_date
        if b is None:
            return None
        wanted = keys_of(f)
        found: set[str] = set()
        for table in ("res", "rec", "name") if residents else ("rec",):
            for kind in _KINDS[table]:
                keys = wanted.get(kind, [])
                if kind == "bk" and table != "name":
                    keys = [*keys, *wanted.get("bs", ())]
                for key in keys:
                    pks = self._hits(table, kind, key)
                    if pks is None:
                        return None
                    found.update(self.rows[table][pk][_P] for pk in pks)
        if residents and f.given_kana:  # another name whose reading ends with the given name's (names.py)
            pks = self._hits("name", "nb", b)
            if pks is None:
                return None
            names = self.rows["name"]
            found.update(names[pk][_P] for pk in pks if (names[pk][_K] or "").endswith(f.given_kana))
        if residents:
            for table in _NULL_BIRTH:
                pks = set()
                for kind, key in (("k0", f.kana_key), ("f0", f.folded_key)):
                    if key:
                        hits = self._hits(table, kind, key)
                        if hits is None:
                            return None
                        pks |= hits
                if len(pks) > BLOCK_LIMIT:
                    return None  # the statement's cap picks some of them: let it
                found.update(self.rows[table][pk][_P] for pk in pks)
        return found

    def rows_of(self, person_ids: Iterable[str]) -> tuple[list[Resident], dict[str, Any], list[PersonRecordRow]] | None:
        """(registry rows, other names by resident number, source rows) of these persons as read ahead, or None
        when one was not read ahead or the batch changed its rows."""
        ids = list(person_ids)
        if any(p not in self.loaded or p in self.dirty for p in ids):
            return None
        residents = [r for p in ids for r in self.residents_of.get(p, ())]
        alt = {r.resident_no: self.alt_names[r.resident_no] for r in residents if r.resident_no in self.alt_names}
        return residents, alt, [r for p in ids for r in self.records_of.get(p, ())]

    def observations_of(self, person_id: str) -> list[ResidentObservation] | None:
        """The person's registry observations as read ahead, or None (not read, or the batch observed them)."""
        if person_id not in self.loaded or person_id in self.observed:
            return None
        return self.observations.get(person_id, [])


def read_persons(s: Session, index: BlockingIndex, person_ids: Iterable[str]) -> None:
    """Read every row of these persons (registry, source, other names, observations) in set queries."""
    ids = sorted(set(person_ids) - index.loaded)
    if not ids:
        return
    prefetch(s, Person, ids)
    for n in range(0, len(ids), 500):
        part = ids[n:n + 500]
        for res in s.scalars(select(Resident).where(Resident.person_id.in_(part))):
            index.residents_of.setdefault(res.person_id, []).append(res)
        for rec in s.scalars(select(PersonRecordRow).where(PersonRecordRow.person_id.in_(part))):
            index.records_of.setdefault(rec.person_id, []).append(rec)
        for obs in s.scalars(select(ResidentObservation).where(ResidentObservation.person_id.in_(part))):
            index.observations.setdefault(obs.person_id, []).append(obs)
    nos = sorted(r.resident_no for p in ids for r in index.residents_of.get(p, ()))
    names: dict[str, list[tuple[str | None, str | None, str | None]]] = {}
    for n in range(0, len(nos), 500):
        stmt = select(ResidentName).where(ResidentName.resident_no.in_(nos[n:n + 500])).order_by(ResidentName.id)
        for row in s.scalars(stmt):
            names.setdefault(row.resident_no, []).append((row.name_key, row.folded_key, row.kana_key))
    index.alt_names.update((no, tuple(v)) for no, v in names.items())
    index.loaded.update(ids)


def keys_of(f: Features) -> dict[str, list[Any]]:
    """Per key kind, the keys ``blocking_statements(f)`` look up (with a birth date)."""
    b = f.birth_date
    out: dict[str, list[Any]] = {}
    if b is None:
        return out
    if f.kana_key:
        out["bk"] = [(b, f.kana_key)]
        out["bs"] = [(s, f.kana_key) for s in slip_birth_dates(b)]  # a keying slip (not for other names)
        out["k0"] = [f.kana_key]
    if f.folded_key:
        out["bf"] = [(b, f.folded_key)]
        out["f0"] = [f.folded_key]
    if f.address_key:
        out["ab"] = [(f.address_key, b)]
    if f.given_kana:
        out["bg"] = [(b, f.given_kana)]
        out["nb"] = [b]  # other names born that day, kept when their reading ends with the given name's
    return out


def read_blocking(s: Session, features: Iterable[Features], persons: Iterable[str] = (),
                  sources_only: Iterable[Features] = ()) -> BlockingIndex:
    """Read every row the key look-ups of these records can find (of ``sources_only``: among source records
    only, as for a resident seen for the first time), then every row of the persons found and of ``persons``,
    in set queries; kept for the transaction."""
    features = list(features)
    index = BlockingIndex()
    wanted: dict[str, set[Any]] = {}
    for f in features:
        for kind, keys in keys_of(f).items():
            wanted.setdefault(kind, set()).update(keys)
    wanted_rec = {kind: set(keys) for kind, keys in wanted.items()}
    for f in sources_only:
        for kind, keys in keys_of(f).items():
            wanted_rec.setdefault(kind, set()).update(keys)
    postgresql = s.get_bind().dialect.name == "postgresql"
    for table, kinds in _KINDS.items():
        table_wanted = wanted_rec if table == "rec" else wanted
        for kind in kinds:
            keys = list(table_wanted.get(kind, set()) | (table_wanted.get("bs", set())
                                                         if kind == "bk" and table != "name" else set()))
            if postgresql:
                for n in range(0, len(keys), 5000):
                    part = keys[n:n + 5000]
                    _index_rows(index, table, s.execute(unnest_statement(table, kind),
                                                        {"a": [k[0] for k in part], "b": [k[1] for k in part]}))
                index.read[(table, kind)] = set(keys)
                continue
            for n in range(0, len(keys), SLOTS[-1]):
                part = keys[n:n + SLOTS[-1]]
                slots = next(size for size in SLOTS if size >= len(part))
                params = {}
                for m in range(slots):
                    a, b = part[m] if m < len(part) else (None, None)
                    params[f"a{m}"], params[f"b{m}"] = a, b
                _index_rows(index, table, s.execute(pair_statement(table, kind, slots), params))
            index.read[(table, kind)] = set(keys)
    for table in _NULL_BIRTH:
        for kind, column in (("k0", "kana_key"), ("f0", "folded_key")):
            keys = list(wanted.get(kind, ()))
            for n in range(0, len(keys), 500):
                _index_rows(index, table, s.execute(null_birth_statement(table, column), {"keys": keys[n:n + 500]}))
            index.read[(table, kind)] = set(keys)
    found = {state[_P] for rows in index.rows.values() for state in rows.values()}
    givens: dict[date, set[str]] = {}
    for f in features:
        if f.birth_date is not None and f.given_kana:
            givens.setdefault(f.birth_date, set()).add(f.given_kana)
    births = sorted(givens)
    for n in range(0, len(births), 500):
        stmt = select(*_columns("name")).where(ResidentName.birth_date.in_(births[n:n + 500]))
        for row in s.execute(stmt):
            _index_rows(index, "name", [row])
            _pk, (pid, b, kana, *_rest), _no = _state("name", row)
            if kana and any(kana.endswith(g) for g in givens.get(b, ())):
                found.add(pid)
    index.read[("name", "nb")] = set(births)
    read_persons(s, index, [*found, *persons])
    s.info[_INFO] = index
    return index


def _index_rows(index: BlockingIndex, table: str, rows: Iterable[Sequence[Any]]) -> None:
    for row in rows:
        pk, state, no = _state(table, row)
        if pk in index.rows[table]:
            continue  # already read (or written by the batch: its state is the newer one)
        index._put(table, pk, state)
        if no is not None:
            index.names_of.setdefault(no, set()).add(pk)


def blocking_of(s: Session) -> BlockingIndex | None:
    """The batch's blocking index, when one was read in this transaction."""
    index: BlockingIndex | None = s.info.get(_INFO)
    return index
