"""Payments from Stripe: raw events, payments and refunds, customers and foreign
invoices seen, Stripe's view of each invoice, the scheduler's plan, and the mismatch board.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21 15:28:54.780259

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    # The queue's sort keys: never NULL, one index per order (backfilled from the snapshot).
    # The epoch default is written the way each database stores an aware UTC time.
    epoch = ("1970-01-01 00:00:00+00" if op.get_bind().dialect.name == "postgresql"
             else "1970-01-01 00:00:00.000000")
    with op.batch_alter_table('pd_deal', schema=None) as batch_op:
        batch_op.add_column(sa.Column('won_sort', sa.DateTime(timezone=True), nullable=False,
                                      server_default=epoch))
        batch_op.add_column(sa.Column('update_sort', sa.DateTime(timezone=True), nullable=False,
                                      server_default=epoch))
    op.execute("UPDATE pd_deal SET won_sort = won_time WHERE won_time IS NOT NULL")
    op.execute("UPDATE pd_deal SET update_sort = COALESCE(update_time, add_time, won_sort)")
    with op.batch_alter_table('pd_deal', schema=None) as batch_op:
        batch_op.drop_index('ix_pd_deal_queue')
        batch_op.create_index('ix_pd_deal_queue_won', ['ready', 'won_sort', 'id'], unique=False)
        batch_op.create_index('ix_pd_deal_queue_value', ['ready', 'value', 'id'], unique=False)
        batch_op.create_index('ix_pd_deal_queue_title', ['ready', 'title', 'id'], unique=False)
        batch_op.create_index('ix_pd_deal_queue_updated', ['ready', 'update_sort', 'id'],
                              unique=False)
        batch_op.create_index('ix_pd_deal_queue_currency', ['ready', 'currency'], unique=False)
    op.create_table('pd_product',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('code', sa.String(length=100), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pd_product'))
    )
    with op.batch_alter_table('pd_product', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pd_product_code'), ['code'], unique=False)

    op.create_table('foreign_stripe_invoice',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('customer', sa.String(length=255), nullable=False),
    sa.Column('number', sa.String(length=100), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('total', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('hosted_invoice_url', sa.Text(), nullable=True),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_foreign_stripe_invoice'))
    )
    with op.batch_alter_table('foreign_stripe_invoice', schema=None) as batch_op:
        batch_op.create_index('ix_foreign_stripe_invoice_customer', ['customer'], unique=False)

    op.create_table('job_schedule',
    sa.Column('id', sa.String(length=60), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('interval_seconds', sa.Integer(), nullable=False),
    sa.Column('next_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('scheduler_pid', sa.Integer(), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_schedule'))
    )
    op.create_table('stripe_customer_seen',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stripe_customer_seen'))
    )
    op.create_table('stripe_event',
    sa.Column('id', sa.String(length=255), nullable=False, comment='evt_...'),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False, comment="Stripe's unix time"),
    sa.Column('object_id', sa.String(length=255), nullable=True),
    sa.Column('source', sa.String(length=20), nullable=False, comment='webhook, pull or replay'),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False, comment='received, processed, ignored, failed'),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stripe_event'))
    )
    with op.batch_alter_table('stripe_event', schema=None) as batch_op:
        batch_op.create_index('ix_stripe_event_object', ['object_id', 'created'], unique=False)
        batch_op.create_index('ix_stripe_event_status', ['status', 'created'], unique=False)

    op.create_table('invoice_stripe_state',
    sa.Column('invoice_id', sa.Integer(), nullable=False),
    sa.Column('stripe_total', sa.Numeric(precision=20, scale=6), nullable=False, comment="Stripe's total, major units"),
    sa.Column('stripe_subtotal', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('line_count', sa.Integer(), nullable=False),
    sa.Column('amount_due', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('pre_payment_credit', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('post_payment_credit', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('payment_failed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('disputed', sa.Boolean(), nullable=False),
    sa.Column('overdue_told_at', sa.DateTime(timezone=True), nullable=True, comment='when the CRM was told it is overdue (once)'),
    sa.Column('last_event_created', sa.BigInteger(), nullable=False),
    sa.Column('last_event_id', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoice.id'], name=op.f('fk_invoice_stripe_state_invoice_id_invoice'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('invoice_id', name=op.f('pk_invoice_stripe_state'))
    )
    op.create_table('mismatch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rule', sa.Integer(), nullable=False, comment='1-12, see app.mismatches.rules'),
    sa.Column('subject', sa.String(length=120), nullable=False, comment='what it is about: deal:1, ...'),
    sa.Column('deal_id', sa.BigInteger(), nullable=True),
    sa.Column('invoice_id', sa.Integer(), nullable=True),
    sa.Column('severity', sa.String(length=10), nullable=False, comment='high, medium, low'),
    sa.Column('explanation', sa.Text(), nullable=False),
    sa.Column('facts', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('data_hash', sa.String(length=64), nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by_id', sa.Integer(), nullable=True),
    sa.Column('ack_note', sa.Text(), nullable=True),
    sa.Column('ack_hash', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['acknowledged_by_id'], ['user_account.id'], name=op.f('fk_mismatch_acknowledged_by_id_user_account')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoice.id'], name=op.f('fk_mismatch_invoice_id_invoice'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mismatch')),
    sa.UniqueConstraint('rule', 'subject', name='uq_mismatch_rule_subject')
    )
    with op.batch_alter_table('mismatch', schema=None) as batch_op:
        batch_op.create_index('ix_mismatch_deal_id', ['deal_id'], unique=False)
        batch_op.create_index('ix_mismatch_open', ['resolved_at', 'severity'], unique=False)

    op.create_table('stripe_payment',
    sa.Column('id', sa.String(length=255), nullable=False, comment='inpay_...'),
    sa.Column('invoice_id', sa.Integer(), nullable=True),
    sa.Column('stripe_invoice_id', sa.String(length=255), nullable=False),
    sa.Column('payment_intent', sa.String(length=255), nullable=True),
    sa.Column('charge', sa.String(length=255), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount', sa.Numeric(precision=20, scale=6), nullable=False, comment='major units'),
    sa.Column('amount_refunded', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoice.id'], name=op.f('fk_stripe_payment_invoice_id_invoice'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stripe_payment'))
    )
    with op.batch_alter_table('stripe_payment', schema=None) as batch_op:
        batch_op.create_index('ix_stripe_payment_charge', ['charge'], unique=False)
        batch_op.create_index('ix_stripe_payment_invoice_id', ['invoice_id'], unique=False)
        batch_op.create_index('ix_stripe_payment_payment_intent', ['payment_intent'], unique=False)



def downgrade():
    with op.batch_alter_table('pd_deal', schema=None) as batch_op:
        batch_op.drop_index('ix_pd_deal_queue_currency')
        batch_op.drop_index('ix_pd_deal_queue_updated')
        batch_op.drop_index('ix_pd_deal_queue_title')
        batch_op.drop_index('ix_pd_deal_queue_value')
        batch_op.drop_index('ix_pd_deal_queue_won')
        batch_op.create_index('ix_pd_deal_queue', ['ready', 'won_time', 'id'], unique=False)
        batch_op.drop_column('update_sort')
        batch_op.drop_column('won_sort')
    with op.batch_alter_table('pd_product', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pd_product_code'))
    op.drop_table('pd_product')
    with op.batch_alter_table('stripe_payment', schema=None) as batch_op:
        batch_op.drop_index('ix_stripe_payment_payment_intent')
        batch_op.drop_index('ix_stripe_payment_invoice_id')
        batch_op.drop_index('ix_stripe_payment_charge')

    op.drop_table('stripe_payment')
    with op.batch_alter_table('mismatch', schema=None) as batch_op:
        batch_op.drop_index('ix_mismatch_open')
        batch_op.drop_index('ix_mismatch_deal_id')

    op.drop_table('mismatch')
    op.drop_table('invoice_stripe_state')
    with op.batch_alter_table('stripe_event', schema=None) as batch_op:
        batch_op.drop_index('ix_stripe_event_status')
        batch_op.drop_index('ix_stripe_event_object')

    op.drop_table('stripe_event')
    op.drop_table('stripe_customer_seen')
    op.drop_table('job_schedule')
    with op.batch_alter_table('foreign_stripe_invoice', schema=None) as batch_op:
        batch_op.drop_index('ix_foreign_stripe_invoice_customer')

    op.drop_table('foreign_stripe_invoice')
