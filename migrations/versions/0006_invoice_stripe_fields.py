"""Invoices: Stripe ids, push outcome, payment state and amounts.

New amount columns are NOT NULL with a server default of 0 so existing rows backfill.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 15:24:38.843288

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('invoice', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stripe_customer_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('stripe_invoice_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('stripe_number', sa.String(length=100), nullable=True, comment="Stripe's number"))
        batch_op.add_column(sa.Column('hosted_invoice_url', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('invoice_pdf', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('stripe_status', sa.String(length=20), nullable=True, comment='draft, open, paid, void, uncollectible'))
        batch_op.add_column(sa.Column('pushed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('push_error', sa.Text(), nullable=True, comment='last push failure, plain words'))
        batch_op.add_column(sa.Column('push_hint', sa.Text(), nullable=True, comment='what to do about it'))
        batch_op.add_column(sa.Column('payment_status', sa.String(length=24), nullable=True, comment='see app.payments.states; null until pushed'))
        batch_op.add_column(sa.Column('amount_paid', sa.Numeric(precision=20, scale=6), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('amount_refunded', sa.Numeric(precision=20, scale=6), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('amount_credited', sa.Numeric(precision=20, scale=6), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('amount_remaining', sa.Numeric(precision=20, scale=6), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('due_at', sa.DateTime(timezone=True), nullable=True, comment='Stripe due date'))
        batch_op.add_column(sa.Column('last_payment_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('stripe_synced_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_invoice_payment_status', ['payment_status', 'id'], unique=False)
        batch_op.create_index('ix_invoice_stripe_customer_id', ['stripe_customer_id'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_invoice_stripe_invoice_id'), ['stripe_invoice_id'])



def downgrade():
    with op.batch_alter_table('invoice', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_invoice_stripe_invoice_id'), type_='unique')
        batch_op.drop_index('ix_invoice_stripe_customer_id')
        batch_op.drop_index('ix_invoice_payment_status')
        batch_op.drop_column('stripe_synced_at')
        batch_op.drop_column('last_payment_at')
        batch_op.drop_column('due_at')
        batch_op.drop_column('amount_remaining')
        batch_op.drop_column('amount_credited')
        batch_op.drop_column('amount_refunded')
        batch_op.drop_column('amount_paid')
        batch_op.drop_column('payment_status')
        batch_op.drop_column('push_hint')
        batch_op.drop_column('push_error')
        batch_op.drop_column('pushed_at')
        batch_op.drop_column('stripe_status')
        batch_op.drop_column('invoice_pdf')
        batch_op.drop_column('hosted_invoice_url')
        batch_op.drop_column('stripe_number')
        batch_op.drop_column('stripe_invoice_id')
        batch_op.drop_column('stripe_customer_id')

