"""Sales rollup: sales_daily (deals won and invoices issued per UTC day, owner,
pipeline and currency, in exact millionths), sales_open_daily (open amounts per UTC
due day) and their one-row state; indexes on the invoice push and due times and the
deal won time for the partial days summed live.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-21 16:40:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('sales_daily',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=True, comment='UTC day of the won time or the push; none: the time is unknown'),
    sa.Column('owner_id', sa.BigInteger(), nullable=True, comment="the deal's owner"),
    sa.Column('pipeline_id', sa.BigInteger(), nullable=True, comment="the deal's pipeline"),
    sa.Column('currency', sa.String(length=3), nullable=True, comment="the deal's (sold) or the invoice's currency"),
    sa.Column('sold_micros', sa.BigInteger(), nullable=False, comment='value of deals won'),
    sa.Column('deals_won', sa.Integer(), nullable=False, comment='number of deals won'),
    sa.Column('invoiced_micros', sa.BigInteger(), nullable=False, comment='totals of invoices in Stripe'),
    sa.Column('invoice_count', sa.Integer(), nullable=False, comment='number of invoices in Stripe'),
    sa.Column('credited_micros', sa.BigInteger(), nullable=False, comment='their credit notes'),
    sa.Column('collected_micros', sa.BigInteger(), nullable=False, comment='paid minus refunded'),
    sa.Column('outstanding_micros', sa.BigInteger(), nullable=False, comment='amount_remaining'),
    sa.Column('overdue_micros', sa.BigInteger(), nullable=False, comment='amount_remaining of invoices overdue at refreshed_at'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_daily'))
    )
    op.create_index('ix_sales_daily_day', 'sales_daily', ['day'], unique=False)
    op.create_index('ix_sales_daily_owner_day', 'sales_daily', ['owner_id', 'day'], unique=False)
    op.create_index('ix_sales_daily_pipeline_day', 'sales_daily', ['pipeline_id', 'day'], unique=False)
    op.create_table('sales_open_daily',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('due_day', sa.Date(), nullable=True, comment='UTC day of the due date; none: no due date'),
    sa.Column('owner_id', sa.BigInteger(), nullable=True, comment="the deal's owner"),
    sa.Column('pipeline_id', sa.BigInteger(), nullable=True, comment="the deal's pipeline"),
    sa.Column('currency', sa.String(length=3), nullable=False, comment="the invoice's currency"),
    sa.Column('outstanding_micros', sa.BigInteger(), nullable=False, comment='amount_remaining'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_open_daily'))
    )
    op.create_index('ix_sales_open_daily_due_day', 'sales_open_daily', ['due_day'], unique=False)
    op.create_table('sales_rollup_state',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False, comment='always 1'),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=False, comment='the data and clock the rollup reflects'),
    sa.Column('row_count', sa.Integer(), nullable=False, comment='rows in sales_daily'),
    sa.Column('duration_ms', sa.Integer(), nullable=False, comment='how long the rebuild took'),
    sa.CheckConstraint('id = 1', name=op.f('ck_sales_rollup_state_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_rollup_state'))
    )
    op.create_index('ix_invoice_pushed_at', 'invoice', ['pushed_at'], unique=False)
    op.create_index('ix_invoice_due_at', 'invoice', ['due_at'], unique=False)
    op.create_index('ix_pd_deal_won_time', 'pd_deal', ['won_time'], unique=False)


def downgrade():
    op.drop_index('ix_pd_deal_won_time', table_name='pd_deal')
    op.drop_index('ix_invoice_pushed_at', table_name='invoice')
    op.drop_index('ix_invoice_due_at', table_name='invoice')
    op.drop_table('sales_rollup_state')
    op.drop_index('ix_sales_open_daily_due_day', table_name='sales_open_daily')
    op.drop_table('sales_open_daily')
    op.drop_index('ix_sales_daily_pipeline_day', table_name='sales_daily')
    op.drop_index('ix_sales_daily_owner_day', table_name='sales_daily')
    op.drop_index('ix_sales_daily_day', table_name='sales_daily')
    op.drop_table('sales_daily')
