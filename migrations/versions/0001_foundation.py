"""Users, roles, sign-in throttling, audit log (hash-chained).

Timestamps are timestamptz on PostgreSQL; on SQLite the app stores UTC and
re-attaches the zone on read (app.types.UTCDateTime).

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21 14:57:00.827635

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('login_failure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False, comment='as typed, lower-cased'),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failure'))
    )
    with op.batch_alter_table('login_failure', schema=None) as batch_op:
        batch_op.create_index('ix_login_failure_email_at', ['email', 'at'], unique=False)
        batch_op.create_index('ix_login_failure_ip_at', ['ip', 'at'], unique=False)

    op.create_table('user_account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False, comment='sign-in name'),
    sa.Column('name', sa.String(length=120), nullable=False, comment='shown in the UI'),
    sa.Column('password_hash', sa.String(length=255), nullable=False, comment='werkzeug scrypt hash'),
    sa.Column('active', sa.Boolean(), nullable=False, comment='false: cannot sign in'),
    sa.Column('session_version', sa.Integer(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False, comment='IANA zone'),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_account')),
    sa.UniqueConstraint('email', name=op.f('uq_user_account_email'))
    )
    op.create_table('audit_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False, comment='when, UTC'),
    sa.Column('actor_id', sa.Integer(), nullable=True, comment='the signed-in user, if any'),
    sa.Column('actor_label', sa.String(length=254), nullable=False),
    sa.Column('action', sa.String(length=80), nullable=False, comment='e.g. user.create, invoice.approve'),
    sa.Column('object_type', sa.String(length=60), nullable=False),
    sa.Column('object_id', sa.String(length=80), nullable=False),
    sa.Column('before', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True, comment='state before, JSON'),
    sa.Column('after', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True, comment='state after, JSON'),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('entry_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['user_account.id'], name=op.f('fk_audit_entry_actor_id_user_account'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entry'))
    )
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.create_index('ix_audit_entry_action', ['action', 'id'], unique=False)
        batch_op.create_index('ix_audit_entry_actor_id', ['actor_id', 'id'], unique=False)
        batch_op.create_index('ix_audit_entry_at', ['at'], unique=False)
        batch_op.create_index('ix_audit_entry_object', ['object_type', 'object_id', 'id'], unique=False)

    op.create_table('user_role',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.CheckConstraint("role IN ('admin', 'finance', 'approver', 'sales')", name=op.f('ck_user_role_known_role')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_user_role_user_id_user_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_role')),
    sa.UniqueConstraint('user_id', 'role', name='uq_user_role_user_id_role')
    )


def downgrade():
    op.drop_table('user_role')
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_entry_object')
        batch_op.drop_index('ix_audit_entry_at')
        batch_op.drop_index('ix_audit_entry_actor_id')
        batch_op.drop_index('ix_audit_entry_action')

    op.drop_table('audit_entry')
    op.drop_table('user_account')
    with op.batch_alter_table('login_failure', schema=None) as batch_op:
        batch_op.drop_index('ix_login_failure_ip_at')
        batch_op.drop_index('ix_login_failure_email_at')

    op.drop_table('login_failure')
