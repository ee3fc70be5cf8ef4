"""scaling fits: laws fitted to sweeps, with their reports

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scaling_fits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("sweep_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("form", sa.String(length=32), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sweep_id"], ["sweeps.id"], name=op.f("fk_scaling_fits_sweep_id_sweeps"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scaling_fits")),
        sa.UniqueConstraint("name", name=op.f("uq_scaling_fits_name")),
    )
    op.create_index(op.f("ix_scaling_fits_sweep_id"), "scaling_fits", ["sweep_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_scaling_fits_sweep_id"), table_name="scaling_fits")
    op.drop_table("scaling_fits")
