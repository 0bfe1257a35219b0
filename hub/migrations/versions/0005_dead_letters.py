"""dead_letters: every dead letter of every stage, read from the dead-letter topic (issue 12)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

from consent.store import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("feed", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("where", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column("position", sa.String(200), nullable=True),
        sa.Column("delivery", sa.String(200), nullable=True),
        sa.Column("topic", sa.String(200), nullable=True),
        sa.Column("partition", sa.Integer(), nullable=True),
        sa.Column("offset", sa.Integer(), nullable=True),
        sa.Column("event_id", sa.String(64), nullable=True),
        sa.Column("record", sa.String(200), nullable=True),
        sa.Column("original", sa.Text(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("first_at", UTCDateTime(), nullable=False),
        sa.Column("last_at", UTCDateTime(), nullable=False),
    )
    for col in ("stage", "feed", "reason"):
        op.create_index(f"ix_dead_letters_{col}", "dead_letters", [col])
    op.create_table(
        "dead_letter_access",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("dead_letter", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_dead_letter_access_dead_letter", "dead_letter_access", ["dead_letter"])


def downgrade() -> None:
    op.drop_table("dead_letter_access")
    op.drop_table("dead_letters")
