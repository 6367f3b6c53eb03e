"""Push read-back: what became of a push job's Stripe invoice, read back from Stripe,
and finance's four-eyes choice (void or adopt) about one an earlier version left there.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 16:10:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('push_job') as batch_op:
        batch_op.add_column(sa.Column('stripe_status', sa.String(length=20), nullable=True, comment='its Stripe invoice as last read back: draft, open, paid, void, uncollectible or deleted; null: never read back'))
        batch_op.add_column(sa.Column('stripe_checked_at', sa.DateTime(timezone=True), nullable=True, comment='when it was read back'))
        batch_op.add_column(sa.Column('resolution', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True, comment='void or adopt its Stripe invoice: {action, requested_by_id, requested_at, confirmed_by_id, confirmed_at}; four-eyes'))


def downgrade():
    with op.batch_alter_table('push_job') as batch_op:
        batch_op.drop_column('resolution')
        batch_op.drop_column('stripe_checked_at')
        batch_op.drop_column('stripe_status')
