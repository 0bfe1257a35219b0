"""case_events: index by household (alert snapshots read a household's shared records)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_case_events_household_shared", "case_events", ["household_id", "team_published"])


def downgrade() -> None:
    op.drop_index("ix_case_events_household_shared", table_name="case_events")
