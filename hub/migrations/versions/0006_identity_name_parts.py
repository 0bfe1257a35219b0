"""identity: family/given name and reading keys, 旧氏 keys, and re-keyed names (issue 11)

Adds ``family_key``, ``given_key``, ``family_kana``, ``given_kana`` to ``residents`` and
``person_records`` (plus ``former_family_key``/``former_family_kana``, the registry's 旧氏, to
``residents``) with a (birth date, given-name reading) index each, and re-keys the stored rows in the
same transaction: the name keys were built before names were NFC-normalized and stripped of variation
selectors, so ``name_key = name_key(old name_key)`` and ``folded_key = fold_kanji(new name_key)``
(both computable from the stored key: the old key is the name without spaces). A resident's family and
given name keys come from its stored name; readings are stored without the separator, so the reading
parts (and every part of an agency record, whose raw name is not stored) stay empty until the record is
seen again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

from schemas.name_evidence import name_parts
from schemas.normalize import fold_kanji, name_key

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_PARTS = ("family_key", "given_key", "family_kana", "given_kana")
_FORMER = ("former_family_key", "former_family_kana")


def upgrade() -> None:
    for table, columns in (("residents", _PARTS + _FORMER), ("person_records", _PARTS)):
        with op.batch_alter_table(table) as batch_op:
            for column in columns:
                batch_op.add_column(sa.Column(column, sa.String(length=100), nullable=True))
            batch_op.create_index(f"ix_{table}_birth_given_kana", ["birth_date", "given_kana"], unique=False)
    _rekey()


def _rekey() -> None:
    """Re-key every stored row (one transaction with the schema change: Alembic runs the revision in one)."""
    conn = op.get_bind()
    residents = sa.table("residents", sa.column("resident_no"), sa.column("name"), sa.column("name_key"),
                         sa.column("folded_key"), sa.column("family_key"), sa.column("given_key"))
    records = sa.table("person_records", sa.column("record"), sa.column("name_key"), sa.column("folded_key"))
    for no, name, old in conn.execute(sa.select(residents.c.resident_no, residents.c.name, residents.c.name_key)).all():
        new = name_key(old) if old else None
        family, given = name_parts(name) if name else (None, None)
        conn.execute(residents.update().where(residents.c.resident_no == no).values(
            name_key=new or None, folded_key=fold_kanji(new) if new else None, family_key=family, given_key=given))
    for record, old in conn.execute(sa.select(records.c.record, records.c.name_key)).all():
        if not old:
            continue
        new = name_key(old)
        conn.execute(records.update().where(records.c.record == record).values(
            name_key=new or None, folded_key=fold_kanji(new) if new else None))


def downgrade() -> None:
    # the re-keyed names stay (the old keys cannot be told apart from them and no code needs them back)
    for table, columns in (("residents", _PARTS + _FORMER), ("person_records", _PARTS)):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_index(f"ix_{table}_birth_given_kana")
            for column in columns:
                batch_op.drop_column(column)
