"""dead letters: the hub's keep their message's key (sealed) and count repeats on one row (issue 12)

Adds ``dead_letters.original_key`` (a hub dead letter's Kafka key, a Fernet token like ``original``) and
``hub_dead_letters.dead_letter`` (the dead letter's CloudEvents id) with ``occurrences``, so a still-bad
replay of a hub dead letter counts on its row instead of adding one. Rows written before stay as they are
(no id: the position it would be derived from was not stored).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch_op:
        batch_op.add_column(sa.Column("original_key", sa.Text(), nullable=True))
    with op.batch_alter_table("hub_dead_letters") as batch_op:
        batch_op.add_column(sa.Column("dead_letter", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("occurrences", sa.Integer(), nullable=False, server_default="1"))
        batch_op.create_index("ix_hub_dead_letters_dead_letter", ["dead_letter"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("hub_dead_letters") as batch_op:
        batch_op.drop_index("ix_hub_dead_letters_dead_letter")
        batch_op.drop_column("occurrences")
        batch_op.drop_column("dead_letter")
    with op.batch_alter_table("dead_letters") as batch_op:
        batch_op.drop_column("original_key")
