"""Admin: connection settings (secrets as Fernet ciphertext) and set-password invitations.

desk_setting holds values saved on the Connections page; they take precedence
over the environment. user_invite keeps only a sha256 of each link's token.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 15:05:03

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('desk_setting',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False, comment='config name it overrides, e.g. STRIPE_SECRET_KEY'),
    sa.Column('value', sa.Text(), nullable=True, comment='plain value (never a secret)'),
    sa.Column('ciphertext', sa.Text(), nullable=True, comment='Fernet token of a secret, key DESK_ENCRYPTION_KEY'),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True, comment='who saved it last'),
    sa.ForeignKeyConstraint(['updated_by_id'], ['user_account.id'], name=op.f('fk_desk_setting_updated_by_id_user_account'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_desk_setting')),
    sa.UniqueConstraint('name', name=op.f('uq_desk_setting_name'))
    )
    op.create_table('user_invite',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False, comment='the user who will choose a password'),
    sa.Column('token_hash', sa.String(length=64), nullable=False, comment='sha256 hex'),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False, comment='link dead after this'),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True, comment='set when spent or replaced'),
    sa.Column('created_by_id', sa.Integer(), nullable=True, comment='the admin who issued it'),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_user_invite_created_by_id_user_account'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_user_invite_user_id_user_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_invite')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_user_invite_token_hash'))
    )
    with op.batch_alter_table('user_invite', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_invite_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('user_invite', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_invite_user_id'))

    op.drop_table('user_invite')
    op.drop_table('desk_setting')
