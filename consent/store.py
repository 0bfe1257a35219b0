"""The consent registry and the audit trail in SQL (SQLAlchemy 2; SQLite or PostgreSQL).

Tables live on their own ``metadata`` (the hub's Alembic history includes it):

- ``consent_versions``: every version ever recorded. A redelivery of the same version is a no-op:
  unique on (consent_id, version, digest), where ``digest`` hashes the content, so two *different*
  versions that share a timestamp (a grant and its withdrawal on the same date-only day) are both
  kept and the decision sees both (fail closed);
- ``designations``: 支援会議 designations per household;
- ``emergency_overrides``: every emergency use with its reason and user;
- ``audit_log``: the hash chain, ``seq`` giving its order, indexed by person and record key for
  開示請求 (who received this person's information);
- ``audit_head``: one row with the chain's last hash. ``append_audit`` locks it (``SELECT … FOR
  UPDATE`` on PostgreSQL; on SQLite a write to the row takes the database write lock first), so
  hub instances appending at the same time still build one chain.

Functions flush but never commit: the caller's transaction decides.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any, Literal, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from consent.audit import GENESIS, AuditEntry, AuditInput, chain
from consent.model import ConsentOrigin, ConsentStatus, ConsentVersion, Designation, EmergencyOverride, fields_tuple
from schemas.events import ConsentV1

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

_BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER keys


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes stored as UTC and read back aware (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = metadata


class ConsentVersionRow(Base):
    __tablename__ = "consent_versions"
    __table_args__ = (UniqueConstraint("consent_id", "version", "digest"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    consent_id: Mapped[str] = mapped_column(String(200))
    version: Mapped[datetime] = mapped_column(UTCDateTime())
    digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(8))
    fields: Mapped[list[str]] = mapped_column(JSON)
    recipient: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(200))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    grantor: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(32))
    subject_resident_no: Mapped[str | None] = mapped_column(String(10), index=True)
    subject_record: Mapped[str | None] = mapped_column(String(200), index=True)
    fhir: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def to_version(self) -> ConsentVersion:
        return ConsentVersion(
            consent_id=self.consent_id,
            version=self.version,
            status=cast(ConsentStatus, self.status),  # checked again by ConsentVersion
            decision=cast(Literal["permit", "deny"], self.decision),
            fields=fields_tuple(self.fields),
            recipient=self.recipient,
            purpose=self.purpose,
            period_start=self.period_start,
            period_end=self.period_end,
            grantor=self.grantor,
            origin=cast(ConsentOrigin, self.origin),
            subject_resident_no=self.subject_resident_no,
            subject_record=self.subject_record,
        )


class DesignationRow(Base):
    __tablename__ = "designations"

    designation_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    household: Mapped[str] = mapped_column(String(200), index=True)
    member_agencies: Mapped[list[str]] = mapped_column(JSON)
    start: Mapped[date] = mapped_column(Date)
    end: Mapped[date | None] = mapped_column(Date)
    designated_by: Mapped[str] = mapped_column(String(200))

    def to_designation(self) -> Designation:
        return Designation(designation_id=self.designation_id, household=self.household,
                           member_agencies=fields_tuple(self.member_agencies), start=self.start, end=self.end,
                           designated_by=self.designated_by)


class EmergencyOverrideRow(Base):
    __tablename__ = "emergency_overrides"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    reason: Mapped[str] = mapped_column(String(64))
    user: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    person: Mapped[str] = mapped_column(String(200), index=True)
    fields: Mapped[list[str]] = mapped_column(JSON)


class AuditLogRow(Base):
    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    event: Mapped[str] = mapped_column(String(200))
    sourcerecord: Mapped[str] = mapped_column(String(200), index=True)
    person: Mapped[str | None] = mapped_column(String(200), index=True)
    field: Mapped[str | None] = mapped_column(String(16))
    route: Mapped[str | None] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(8))
    basis: Mapped[str] = mapped_column(Text)
    at: Mapped[str] = mapped_column(String(40))  # ISO text, exactly as hashed
    rule_version: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: who did it in the workspace (a username) and what (a code); null on the hub's sharing decisions
    user: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(64))

    def to_entry(self) -> AuditEntry:
        return AuditEntry(event=self.event, sourcerecord=self.sourcerecord, person=self.person, field=self.field,
                          route=self.route, decision=self.decision, basis=self.basis, at=self.at,
                          rule_version=self.rule_version, prev_hash=self.prev_hash, hash=self.hash,
                          user=self.user, action=self.action)


class AuditHeadRow(Base):
    """Exactly one row (id 1): the last hash and how many entries the chain holds."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    entries: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))


HEAD_ID = 1


class ConsentRepository:
    """Consent versions, designations and emergency overrides in the caller's session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add_version(self, consent: ConsentV1 | ConsentVersion, *, recorded_at: datetime | None = None) -> bool:
        """Keep a version; False when exactly this version is already kept (a redelivery)."""
        raw = consent.fhir if isinstance(consent, ConsentV1) else None
        v = ConsentVersion.from_event(consent) if isinstance(consent, ConsentV1) else consent
        values: dict[str, Any] = {
            "consent_id": v.consent_id, "version": v.version, "digest": v.digest, "status": v.status,
            "decision": v.decision, "fields": [f.value for f in v.fields], "recipient": v.recipient,
            "purpose": v.purpose, "period_start": v.period_start, "period_end": v.period_end, "grantor": v.grantor,
            "origin": v.origin, "subject_resident_no": v.subject_resident_no, "subject_record": v.subject_record,
            "fhir": raw, "recorded_at": recorded_at,
        }
        return _insert_ignoring_duplicate(self.session, ConsentVersionRow, values,
                                          ["consent_id", "version", "digest"])

    def versions_for(self, resident_nos: Collection[str], records: Collection[str]) -> list[ConsentVersion]:
        """Every version whose subject is one of these resident numbers or record keys."""
        conds = []
        if resident_nos:
            conds.append(ConsentVersionRow.subject_resident_no.in_(list(resident_nos)))
        if records:
            conds.append(ConsentVersionRow.subject_record.in_(list(records)))
        if not conds:
            return []
        rows = self.session.scalars(
            select(ConsentVersionRow).where(or_(*conds))
            .order_by(ConsentVersionRow.consent_id, ConsentVersionRow.version, ConsentVersionRow.id))
        return [r.to_version() for r in rows]

    def add_designation(self, designation: Designation) -> None:
        """Record a designation (a later call with the same id replaces it: an amended end date)."""
        row = self.session.get(DesignationRow, designation.designation_id)
        if row is None:
            row = DesignationRow(designation_id=designation.designation_id)
            self.session.add(row)
        row.household = designation.household
        row.member_agencies = [f.value for f in designation.member_agencies]
        row.start = designation.start
        row.end = designation.end
        row.designated_by = designation.designated_by
        self.session.flush()

    def designations_for(self, household: str) -> list[Designation]:
        rows = self.session.scalars(
            select(DesignationRow).where(DesignationRow.household == household)
            .order_by(DesignationRow.start, DesignationRow.designation_id))
        return [r.to_designation() for r in rows]

    def record_emergency(self, override: EmergencyOverride) -> None:
        self.session.add(EmergencyOverrideRow(reason=override.reason, user=override.user, at=override.at,
                                              person=override.person, fields=[f.value for f in override.fields]))
        self.session.flush()

    def emergencies_for(self, person: str) -> list[EmergencyOverride]:
        rows = self.session.scalars(
            select(EmergencyOverrideRow).where(EmergencyOverrideRow.person == person)
            .order_by(EmergencyOverrideRow.id))
        return [EmergencyOverride(reason=r.reason, user=r.user, at=r.at, person=r.person,
                                  fields=fields_tuple(r.fields)) for r in rows]


def _insert_ignoring_duplicate(session: Session, model: type[Base], values: dict[str, Any],
                               key: list[str]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING (no savepoint: pysqlite would commit a lone SAVEPOINT on release)."""
    dialect = session.get_bind().dialect.name
    table = cast(Table, model.__table__)
    if dialect in ("postgresql", "sqlite"):
        upsert = pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)
        stmt = upsert.values(**values).on_conflict_do_nothing(index_elements=key).returning(table.c[key[0]])
        return session.execute(stmt).first() is not None  # RETURNING: rowcount is not reliable here
    # other databases: look first (a race then surfaces as an IntegrityError to the caller)
    cond = [table.c[k] == values[k] for k in key]
    if session.execute(select(table.c[key[0]]).where(*cond)).first() is not None:
        return False
    session.execute(insert(table).values(**values))
    return True


def _locked_head(session: Session) -> AuditHeadRow:
    """The head row, locked for this transaction; created (GENESIS) on first use."""
    if session.get_bind().dialect.name == "sqlite":
        # take SQLite's write lock before reading, so two writers cannot read the same head
        session.execute(update(AuditHeadRow).where(AuditHeadRow.id == HEAD_ID).values(hash=AuditHeadRow.hash))
    stmt = select(AuditHeadRow).where(AuditHeadRow.id == HEAD_ID).with_for_update()
    stmt = stmt.execution_options(populate_existing=True)
    head = session.scalars(stmt).one_or_none()
    if head is None:
        _insert_ignoring_duplicate(session, AuditHeadRow, {"id": HEAD_ID, "hash": GENESIS, "entries": 0}, ["id"])
        head = session.scalars(stmt).one()
    return head


def append_audit(session: Session, decisions: Sequence[AuditInput]) -> list[AuditEntry]:
    """Chain the decisions onto the stored head and insert them; the caller commits."""
    if not decisions:
        return []
    head = _locked_head(session)
    entries = chain(head.hash, decisions, audit_key(session))
    session.execute(insert(AuditLogRow), [e.to_json() for e in entries])  # one executemany, no ORM objects
    head.hash = entries[-1].hash
    head.entries += len(entries)
    session.flush()
    return entries


#: ``Session.info`` key of the audit chain's HMAC key (set on the sessionmaker by the hub's composition root)
AUDIT_KEY_INFO = "tsunagu_audit_hmac_key"


def audit_key(session: Session) -> bytes | None:
    """The HMAC key the hub configured for this session's audit entries (None: plain SHA-256 chain)."""
    key = session.info.get(AUDIT_KEY_INFO)
    return key if isinstance(key, bytes) and key else None


def audit_head(session: Session) -> str:
    """The last hash of the stored chain (GENESIS when empty), to verify an export against."""
    head = session.get(AuditHeadRow, HEAD_ID)
    return head.hash if head is not None else GENESIS


def iter_audit(session: Session, batch: int = 1000) -> Iterator[AuditEntry]:
    """The whole chain in order (``seq``), read in batches."""
    last = 0
    while True:
        rows = session.scalars(
            select(AuditLogRow).where(AuditLogRow.seq > last).order_by(AuditLogRow.seq).limit(batch)).all()
        if not rows:
            return
        for r in rows:
            yield r.to_entry()
        last = rows[-1].seq


def disclosures(session: Session, persons: Collection[str]) -> list[AuditEntry]:
    """開示請求: every permitted flow of these persons' information, in order (who received what, when, why)."""
    if not persons:
        return []
    rows = session.scalars(
        select(AuditLogRow).where(AuditLogRow.person.in_(list(persons)), AuditLogRow.decision == "permit")
        .order_by(AuditLogRow.seq))
    return [r.to_entry() for r in rows]
