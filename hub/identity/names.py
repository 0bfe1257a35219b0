"""Other names a resident is known by (旧氏, 通称, 外国人 ローマ字 / 漢字): their keys, stored and looked up.

An agency often records the 通称 or the 旧氏 rather than the 氏名. Each such name is kept as a
:class:`~hub.identity.tables.ResidentName` row (name, folded and reading keys plus the birth date, indexed
like ``residents``) so blocking finds the resident by it, and the resident's features carry the
variants (:attr:`hub.identity.scoring.Features.alt_names`) so scoring compares with the best one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, or_, select
from sqlalchemy.orm import Session

from hub.identity.scoring import BLOCK_LIMIT, Features
from hub.identity.tables import Resident, ResidentName
from schemas.events import ResidentObservedV1
from schemas.normalize import fold_kanji, kana_key, name_key

_SEP = re.compile(r"[\s\u3000・]+")

NameKeys = tuple[str | None, str | None, str | None]


def _given(full: str | None) -> str | None:
    """The part after the surname (``千葉　文子`` → ``文子``); None when the name has no separator."""
    if not full:
        return None
    parts = _SEP.split(full.strip(), maxsplit=1)
    return parts[1] if len(parts) == 2 and parts[1] else None


def _keys(name: str | None, kana: str | None) -> NameKeys | None:
    nk = name_key(name) if name else ""
    kk = kana_key(kana) if kana else ""
    if not nk and not kk:
        return None
    return (nk or None, fold_kanji(nk) if nk else None, kk or None)


def variants_of(ev: ResidentObservedV1) -> list[tuple[str, NameKeys]]:
    """(kind, keys) of each other name on a resident event; the 旧氏 is put with the given name."""
    r = ev.resident
    out: list[tuple[str, NameKeys]] = []
    if ev.former_surname:
        given, given_kana = _given(r.name), _given(r.kana)
        name = ev.former_surname + given if given else None
        kana = ev.former_surname_kana + given_kana if ev.former_surname_kana and given_kana else None
        keys = _keys(name, kana)
        if keys is not None:
            out.append(("former_surname", keys))
    if ev.alias_name:
        keys = _keys(ev.alias_name, ev.alias_kana)
        if keys is not None:
            out.append(("alias", keys))
    if ev.foreign_name_alphabet:
        keys = _keys(ev.foreign_name_alphabet, r.kana)
        if keys is not None:
            out.append(("alphabet", keys))
    if ev.foreign_name_kanji:
        keys = _keys(ev.foreign_name_kanji, None)
        if keys is not None:
            out.append(("foreign_kanji", keys))
    main = (name_key(r.name) or None, (r.kana and kana_key(r.kana)) or None)
    return [(k, v) for k, v in out if (v[0], v[2]) != main]


def store_names(s: Session, ev: ResidentObservedV1, person_id: str, birth_date: date | None, *,
                replace: bool = True) -> None:
    """Replace the resident's other names with those of this (newest) event (``replace=False``: it has none yet)."""
    no = ev.resident.resident_no
    assert no is not None
    if replace:
        s.execute(delete(ResidentName).where(ResidentName.resident_no == no))
    for kind, (nk, fk, kk) in variants_of(ev):
        s.add(ResidentName(resident_no=no, person_id=person_id, kind=kind, name_key=nk, folded_key=fk, kana_key=kk,
                           birth_date=birth_date))


def names_by_resident(s: Session, resident_nos: Sequence[str]) -> dict[str, tuple[NameKeys, ...]]:
    out: dict[str, list[NameKeys]] = {}
    if not resident_nos:
        return {}
    stmt = select(ResidentName).where(ResidentName.resident_no.in_(sorted(set(resident_nos)))).order_by(ResidentName.id)
    for row in s.scalars(stmt):
        out.setdefault(row.resident_no, []).append((row.name_key, row.folded_key, row.kana_key))
    return {k: tuple(v) for k, v in out.items()}


def blocking_statements(f: Features) -> list[Select[Any]]:
    """Find residents by another name: (birth, reading) OR (birth, folded name) OR (birth, a reading that
    ends with the record's given name's: a changed surname against a 通称 or a foreign resident's name);
    without a birth date on either side (the record's, or the registry's 不詳), by reading OR folded
    name, capped."""
    keys: list[ColumnElement[bool]] = []
    if f.kana_key:
        keys.append(ResidentName.kana_key == f.kana_key)
    if f.folded_key:
        keys.append(ResidentName.folded_key == f.folded_key)
    if not keys:
        return []
    pid = ResidentName.person_id
    if f.birth_date is None:
        return [select(pid).where(or_(*keys)).limit(BLOCK_LIMIT)]
    same_day = list(keys)
    if f.given_kana:  # a changed surname against another name: same birth date, reading ending with the given
        escaped = f.given_kana.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        same_day.append(ResidentName.kana_key.like(f"%{escaped}", escape="\\"))
    return [select(pid).where(and_(ResidentName.birth_date == f.birth_date, or_(*same_day))),
            select(pid).where(and_(ResidentName.birth_date.is_(None), or_(*keys))).limit(BLOCK_LIMIT)]


def unknown_birth_statements(f: Features) -> list[Select[Any]]:
    """Residents whose birth date is 不詳 (NULL), by reading OR folded name, capped: a missing birth
    date is no evidence either way, so such a candidate can only go to review, never link."""
    keys: list[ColumnElement[bool]] = []
    if f.kana_key:
        keys.append(Resident.kana_key == f.kana_key)
    if f.folded_key:
        keys.append(Resident.folded_key == f.folded_key)
    if not keys:
        return []
    return [select(Resident.person_id).where(and_(Resident.birth_date.is_(None), or_(*keys))).limit(BLOCK_LIMIT)]


def with_names(f: Features, names: tuple[NameKeys, ...] | None) -> Features:
    """The features with the resident's other names as variants."""
    return replace(f, alt_names=names) if names else f
