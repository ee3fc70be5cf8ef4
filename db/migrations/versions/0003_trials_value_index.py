"""trials by value: an index on (study_id, value, number) for the dashboard's sorted pages

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_trials_study_id_value_number", "trials", ["study_id", "value", "number"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_trials_study_id_value_number", table_name="trials")
