"""The identity tables (persons, households, residents, person records, reviews, decisions) and their ids."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime


def utcnow() -> datetime:
    return datetime.now(UTC)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def registry_record(resident_no: str) -> str:
    return f"registry:{resident_no}"


def household_id_for_no(household_no: str) -> str:
    return "h-" + digest(f"household_no:{household_no}")


def household_id_for_record(record: str) -> str:
    return "h-" + digest(f"record:{record}")


# --------------------------------------------------------------------------- tables


class Person(Base):
    """A hub person: one human, as far as the evidence shows."""

    __tablename__ = "persons"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    resident_no: Mapped[str | None] = mapped_column(String(10), unique=True)
    household_id: Mapped[str | None] = mapped_column(String(40), index=True)
    created_by: Mapped[str] = mapped_column(String(200))  # the record key that created it
    merged_into: Mapped[str | None] = mapped_column(String(40))  # set when a reviewer linked it away
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Household(Base):
    """A 世帯: from the registry (household_no) or named by a source (kodomo setai_no, houkatsu subject)."""

    __tablename__ = "households"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    household_no: Mapped[str | None] = mapped_column(String(10), unique=True)
    origin: Mapped[str] = mapped_column(String(16))  # registry | source
    named_by: Mapped[str | None] = mapped_column(String(200))


class Resident(Base):
    """住民記録: the registry's current view of one resident (personal data)."""

    __tablename__ = "residents"

    resident_no: Mapped[str] = mapped_column(String(10), primary_key=True)
    household_no: Mapped[str] = mapped_column(String(10), index=True)
    relation: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    name_key: Mapped[str | None] = mapped_column(String(100))
    folded_key: Mapped[str | None] = mapped_column(String(100))
    kana_key: Mapped[str | None] = mapped_column(String(100))
    family_key: Mapped[str | None] = mapped_column(String(100))
    given_key: Mapped[str | None] = mapped_column(String(100))
    family_kana: Mapped[str | None] = mapped_column(String(100))
    given_kana: Mapped[str | None] = mapped_column(String(100))
    former_family_key: Mapped[str | None] = mapped_column(String(100))  # 旧氏
    former_family_kana: Mapped[str | None] = mapped_column(String(100))
    birth_date: Mapped[date | None] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(16))
    address_key: Mapped[str | None] = mapped_column(String(200))
    phone_key: Mapped[str | None] = mapped_column(String(32))
    moved_on: Mapped[date | None] = mapped_column(Date)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    #: 住民状態 (resident / moving_out / moved_out / deceased / removed); None: the simplified file
    status: Mapped[str | None] = mapped_column(String(16))
    status_on: Mapped[date | None] = mapped_column(Date)
    move_reason: Mapped[str | None] = mapped_column(String(32))
    #: 生年月日 不詳: the missing birth date is no evidence either way
    birth_date_unknown: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        Index("ix_residents_birth_kana", "birth_date", "kana_key"),
        Index("ix_residents_birth_folded", "birth_date", "folded_key"),
        Index("ix_residents_kana", "kana_key"),
        Index("ix_residents_folded", "folded_key"),
        Index("ix_residents_address_birth", "address_key", "birth_date"),
        Index("ix_residents_birth_given_kana", "birth_date", "given_kana"),
    )


class ResidentObservation(Base):
    """One resident event as observed (history): which household, relation and status from which day.

    Membership intervals are derived from these rows in (moved_on, event id) order, so the order in
    which the events arrived does not matter (:mod:`hub.identity.membership`).
    """

    __tablename__ = "resident_observations"

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    resident_no: Mapped[str] = mapped_column(String(10), index=True)
    person_id: Mapped[str] = mapped_column(String(40), index=True)
    household_id: Mapped[str] = mapped_column(String(40), index=True)
    relation: Mapped[str | None] = mapped_column(String(32))
    moved_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str | None] = mapped_column(String(16))
    status_on: Mapped[date | None] = mapped_column(Date)
    move_reason: Mapped[str | None] = mapped_column(String(32))


class ResidentName(Base):
    """Another name a resident is known by (旧氏, 通称, 外国人 ローマ字 / 漢字), with its reading when the
    registry gives one: candidate key and evidence, indexed like ``residents`` (personal data)."""

    __tablename__ = "resident_names"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resident_no: Mapped[str] = mapped_column(String(10), index=True)
    person_id: Mapped[str] = mapped_column(String(40), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # former_surname | alias | alphabet | foreign_kanji
    name_key: Mapped[str | None] = mapped_column(String(100))
    folded_key: Mapped[str | None] = mapped_column(String(100))
    kana_key: Mapped[str | None] = mapped_column(String(100))
    birth_date: Mapped[date | None] = mapped_column(Date)

    __table_args__ = (
        Index("ix_resident_names_birth_kana", "birth_date", "kana_key"),
        Index("ix_resident_names_birth_folded", "birth_date", "folded_key"),
        Index("ix_resident_names_kana", "kana_key"),
        Index("ix_resident_names_folded", "folded_key"),
    )


class PersonRecordRow(Base):
    """A person as one source record names them (every feed but the registry), and its hub person."""

    __tablename__ = "person_records"

    record: Mapped[str] = mapped_column(String(200), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    household_id: Mapped[str | None] = mapped_column(String(40), index=True)
    feed: Mapped[str] = mapped_column(String(32))
    resident_no: Mapped[str | None] = mapped_column(String(10), index=True)
    name_key: Mapped[str | None] = mapped_column(String(100))
    folded_key: Mapped[str | None] = mapped_column(String(100))
    kana_key: Mapped[str | None] = mapped_column(String(100))
    family_key: Mapped[str | None] = mapped_column(String(100))
    given_key: Mapped[str | None] = mapped_column(String(100))
    family_kana: Mapped[str | None] = mapped_column(String(100))
    given_kana: Mapped[str | None] = mapped_column(String(100))
    birth_date: Mapped[date | None] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(16))
    address_key: Mapped[str | None] = mapped_column(String(200))
    phone_key: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_person_records_birth_kana", "birth_date", "kana_key"),
        Index("ix_person_records_birth_folded", "birth_date", "folded_key"),
        Index("ix_person_records_kana", "kana_key"),
        Index("ix_person_records_folded", "folded_key"),
        Index("ix_person_records_address_birth", "address_key", "birth_date"),
        Index("ix_person_records_birth_given_kana", "birth_date", "given_kana"),
    )


class IdentityReview(Base):
    """A pair (record, candidate person) a human must decide. Evidence names features, never values."""

    __tablename__ = "identity_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record: Mapped[str] = mapped_column(String(200), index=True)
    candidate_person: Mapped[str] = mapped_column(String(40))
    score: Mapped[float] = mapped_column(Float)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | linked | kept_apart
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IdentityDecision(Base):
    """Audit trail of every link / keep-apart decision (human or automatic re-link)."""

    __tablename__ = "identity_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record: Mapped[str] = mapped_column(String(200))
    person_id: Mapped[str] = mapped_column(String(40))
    decision: Mapped[str] = mapped_column(String(16))  # link | keep_apart | detach
    review_id: Mapped[int | None] = mapped_column(Integer)
    decided_by: Mapped[str] = mapped_column(String(100))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_identity_decisions_record_person", "record", "person_id"),)
