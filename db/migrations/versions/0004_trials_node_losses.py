"""trials.node_losses: the claims lost with their worker's node, which are not retries

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The server default gives the rows already there 0: none of their claims was known lost
    # with a node, so each keeps counting as it did.
    op.add_column("trials", sa.Column("node_losses", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("node_losses")
