"""residents: status, status_on, move_reason, birth_date_unknown; resident_observations (membership
history); resident_names (旧氏・通称・外国人 names as candidate keys); alerts: closed_on, close_reason

Revision ID: 0003_resident_history_names
Revises: 0002
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("residents") as batch:
        batch.add_column(sa.Column("status", sa.String(16), nullable=True))
        batch.add_column(sa.Column("status_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("move_reason", sa.String(32), nullable=True))
        batch.add_column(sa.Column("birth_date_unknown", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "resident_observations",
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("resident_no", sa.String(10), nullable=False),
        sa.Column("person_id", sa.String(40), nullable=False),
        sa.Column("household_id", sa.String(40), nullable=False),
        sa.Column("relation", sa.String(32), nullable=True),
        sa.Column("moved_on", sa.Date(), nullable=True),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("status_on", sa.Date(), nullable=True),
        sa.Column("move_reason", sa.String(32), nullable=True),
    )
    op.create_index("ix_resident_observations_resident_no", "resident_observations", ["resident_no"])
    op.create_index("ix_resident_observations_person_id", "resident_observations", ["person_id"])
    op.create_index("ix_resident_observations_household_id", "resident_observations", ["household_id"])
    op.create_table(
        "resident_names",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("resident_no", sa.String(10), nullable=False),
        sa.Column("person_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name_key", sa.String(100), nullable=True),
        sa.Column("folded_key", sa.String(100), nullable=True),
        sa.Column("kana_key", sa.String(100), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
    )
    op.create_index("ix_resident_names_resident_no", "resident_names", ["resident_no"])
    op.create_index("ix_resident_names_person_id", "resident_names", ["person_id"])
    op.create_index("ix_resident_names_birth_kana", "resident_names", ["birth_date", "kana_key"])
    op.create_index("ix_resident_names_birth_folded", "resident_names", ["birth_date", "folded_key"])
    op.create_index("ix_resident_names_kana", "resident_names", ["kana_key"])
    op.create_index("ix_resident_names_folded", "resident_names", ["folded_key"])
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("closed_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("close_reason", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("close_reason")
        batch.drop_column("closed_on")
    op.drop_table("resident_names")
    op.drop_table("resident_observations")
    with op.batch_alter_table("residents") as batch:
        batch.drop_column("birth_date_unknown")
        batch.drop_column("move_reason")
        batch.drop_column("status_on")
        batch.drop_column("status")
