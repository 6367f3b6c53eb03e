"""The queue sorts by value per currency: its index leads with the currency. The
sales rollup's day index covers DSO's countback (day, currency, invoiced). Sales
rollup reconciles: refunded and written-off sums beside credited, collected
and outstanding, so that invoiced = credited + collected + refunded + outstanding +
written off holds for every row (see app/sales/queries.invoice_amounts). The rollup
is rebuilt from the invoices by its job, so existing rows start at 0 until then.

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-04 15:45:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0013'
branch_labels = None
depends_on = None

_COMMENTS = {
    # column: (new comment, old comment)
    'credited_micros': ('credit notes not paid back as refunds, customer credit applied',
                        'their credit notes'),
    'collected_micros': ('paid, less refunds and credit notes after payment',
                         'paid minus refunded'),
    'outstanding_micros': ('amount_remaining, unless written off', 'amount_remaining'),
}


def _comments(new: bool):
    if op.get_bind().dialect.name == 'sqlite':
        return  # SQLite keeps no column comments
    for column, (now, before) in _COMMENTS.items():
        op.alter_column('sales_daily', column, existing_type=sa.BigInteger(),
                        existing_nullable=False, comment=now if new else before,
                        existing_comment=before if new else now)


def upgrade():
    with op.batch_alter_table('sales_daily') as batch:
        batch.add_column(sa.Column('refunded_micros', sa.BigInteger(), server_default=sa.text('0'),
                                   nullable=False, comment='refunds'))
        batch.add_column(sa.Column('written_off_micros', sa.BigInteger(),
                                   server_default=sa.text('0'), nullable=False,
                                   comment='amount_remaining of invoices marked uncollectible'))
    _comments(True)
    # DSO counts back over the invoiced days, newest first: the day index covers it.
    op.drop_index('ix_sales_daily_day', table_name='sales_daily')
    op.create_index('ix_sales_daily_day', 'sales_daily',
                    ['day', 'currency', 'invoice_count', 'invoiced_micros'], unique=False)
    with op.batch_alter_table('pd_deal') as batch:
        batch.drop_index('ix_pd_deal_queue_value')
        batch.create_index('ix_pd_deal_queue_value', ['ready', 'currency', 'value', 'id'],
                           unique=False)


def downgrade():
    with op.batch_alter_table('pd_deal') as batch:
        batch.drop_index('ix_pd_deal_queue_value')
        batch.create_index('ix_pd_deal_queue_value', ['ready', 'value', 'id'], unique=False)
    op.drop_index('ix_sales_daily_day', table_name='sales_daily')
    op.create_index('ix_sales_daily_day', 'sales_daily', ['day'], unique=False)
    _comments(False)
    with op.batch_alter_table('sales_daily') as batch:
        batch.drop_column('written_off_micros')
        batch.drop_column('refunded_micros')
