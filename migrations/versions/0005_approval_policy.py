"""Approval policy: four-eyes switch (one row) and approval thresholds per currency.

No row in approval_policy means the defaults (four-eyes on); no threshold for a
currency means any approver may approve any amount in it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 15:40:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('approval_policy',
    sa.Column('id', sa.Integer(), nullable=False, comment='always 1'),
    sa.Column('four_eyes', sa.Boolean(), nullable=False, comment='true: the approver may not be who last edited or submitted the invoice'),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True, comment='who saved it last'),
    sa.CheckConstraint('id = 1', name=op.f('ck_approval_policy_single_row')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['user_account.id'], name=op.f('fk_approval_policy_updated_by_id_user_account'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_approval_policy'))
    )
    op.create_table('approval_threshold',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False, comment='upper-case ISO 4217 code Stripe bills in'),
    sa.Column('amount', sa.Numeric(precision=20, scale=6), nullable=False, comment='invoice total above which only an admin may approve'),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True, comment='who saved it last'),
    sa.CheckConstraint('amount > 0', name=op.f('ck_approval_threshold_positive_amount')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['user_account.id'], name=op.f('fk_approval_threshold_updated_by_id_user_account'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_approval_threshold')),
    sa.UniqueConstraint('currency', name=op.f('uq_approval_threshold_currency'))
    )


def downgrade():
    op.drop_table('approval_threshold')
    op.drop_table('approval_policy')
