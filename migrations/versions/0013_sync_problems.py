"""Sync problems: the Pipedrive records a sync could not store, with a plain reason,
so one bad deal no longer stops a whole sync and Sync health can show it.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-04 15:40:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('sync_problem',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entity', sa.String(length=20), nullable=False, comment='deal, person, organization'),
    sa.Column('entity_id', sa.BigInteger(), nullable=False, comment="Pipedrive's id"),
    sa.Column('job', sa.String(length=60), nullable=False, comment='the job that last failed on it'),
    sa.Column('run_id', sa.Integer(), nullable=True, comment='the run that last failed on it'),
    sa.Column('reason', sa.Text(), nullable=False, comment='plain words, no data'),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['sync_run.id'], name=op.f('fk_sync_problem_run_id_sync_run'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_problem')),
    sa.UniqueConstraint('entity', 'entity_id', name='uq_sync_problem_entity_entity_id')
    )
    op.create_index('ix_sync_problem_open', 'sync_problem', ['resolved_at', 'entity'], unique=False)


def downgrade():
    op.drop_index('ix_sync_problem_open', table_name='sync_problem')
    op.drop_table('sync_problem')
