"""initial schema: sweeps, studies, trials, intermediate values

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sweeps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sweeps')),
    sa.UniqueConstraint('name', name=op.f('uq_sweeps_name'))
    )
    op.create_table('studies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('direction', sa.String(length=16), nullable=False),
    sa.Column('objective', sa.String(length=255), nullable=True),
    sa.Column('search_space', sa.JSON(), nullable=True),
    sa.Column('algorithm', sa.String(length=64), nullable=False),
    sa.Column('algorithm_settings', sa.JSON(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('sweep_id', sa.Integer(), nullable=True),
    sa.Column('heartbeat_timeout', sa.Double(), nullable=False),
    sa.Column('max_retries', sa.Integer(), nullable=False),
    sa.Column('next_trial_number', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.id'], name=op.f('fk_studies_sweep_id_sweeps'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_studies')),
    sa.UniqueConstraint('name', name=op.f('uq_studies_name'))
    )
    op.create_index(op.f('ix_studies_sweep_id'), 'studies', ['sweep_id'])

    op.create_table('trials',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('config_hash', sa.String(length=64), nullable=True),
    sa.Column('budget', sa.Double(), nullable=True),
    sa.Column('value', sa.Double(), nullable=True),
    sa.Column('attrs', sa.JSON(), nullable=False),
    sa.Column('worker_id', sa.String(length=255), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_trials_study_id_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trials')),
    sa.UniqueConstraint('study_id', 'number', name=op.f('uq_trials_study_id_number'))
    )
    op.create_index('ix_trials_study_id_config_hash', 'trials', ['study_id', 'config_hash'])
    op.create_index('ix_trials_study_id_state_number', 'trials', ['study_id', 'state', 'number'])

    op.create_table('intermediate_values',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trial_id', sa.Integer(), nullable=False),
    sa.Column('budget', sa.Double(), nullable=False),
    sa.Column('value', sa.Double(), nullable=True),
    sa.Column('reported_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.id'], name=op.f('fk_intermediate_values_trial_id_trials'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intermediate_values')),
    sa.UniqueConstraint('trial_id', 'budget', name=op.f('uq_intermediate_values_trial_id_budget'))
    )


def downgrade() -> None:
    op.drop_table('intermediate_values')
    op.drop_table('trials')
    op.drop_table('studies')
    op.drop_table('sweeps')
