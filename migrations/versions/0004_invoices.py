"""Invoices, their lines and invoice-level discounts (draft editing and approval).

Amounts are Numeric(20, 6) in major units; Stripe minor units exist only at push time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 15:11:46.254504

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('invoice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('deal_id', sa.BigInteger(), nullable=False, comment='Pipedrive deal id'),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False, comment='bumped on every change'),
    sa.Column('approved_version', sa.Integer(), nullable=True, comment='version approved'),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('currency_manual', sa.Boolean(), nullable=False),
    sa.Column('collection_method', sa.String(length=24), nullable=False),
    sa.Column('days_until_due', sa.Integer(), nullable=True),
    sa.Column('due_date', sa.Date(), nullable=True),
    sa.Column('memo', sa.Text(), nullable=False, comment='Stripe description'),
    sa.Column('footer', sa.Text(), nullable=False),
    sa.Column('po_number', sa.String(length=100), nullable=False),
    sa.Column('custom_fields', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False, comment='[{name, value}] up to 4, shown on the invoice'),
    sa.Column('customer_name', sa.String(length=255), nullable=False),
    sa.Column('billing_email', sa.String(length=254), nullable=False),
    sa.Column('address', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False, comment='line1, line2, postal_code, city, state, country (ISO-2)'),
    sa.Column('vat_id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.BigInteger(), nullable=True),
    sa.Column('person_id', sa.BigInteger(), nullable=True),
    sa.Column('deal_hash', sa.String(length=64), nullable=False),
    sa.Column('deal_snapshot', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('subtotal', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('discount_total', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('tax_total', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('total', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('on_hold', sa.Boolean(), nullable=False),
    sa.Column('hold_reason', sa.Text(), nullable=True),
    sa.Column('held_by_id', sa.Integer(), nullable=True),
    sa.Column('held_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('submitted_by_id', sa.Integer(), nullable=True),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('approved_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("collection_method IN ('send_invoice', 'charge_automatically')", name=op.f('ck_invoice_known_collection_method')),
    sa.CheckConstraint("status IN ('draft', 'submitted', 'approved', 'pushing', 'pushed', 'push_failed', 'cancelled')", name=op.f('ck_invoice_known_status')),
    sa.ForeignKeyConstraint(['approved_by_id'], ['user_account.id'], name=op.f('fk_invoice_approved_by_id_user_account')),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_invoice_created_by_id_user_account')),
    sa.ForeignKeyConstraint(['held_by_id'], ['user_account.id'], name=op.f('fk_invoice_held_by_id_user_account')),
    sa.ForeignKeyConstraint(['submitted_by_id'], ['user_account.id'], name=op.f('fk_invoice_submitted_by_id_user_account')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['user_account.id'], name=op.f('fk_invoice_updated_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice'))
    )
    with op.batch_alter_table('invoice', schema=None) as batch_op:
        batch_op.create_index('ix_invoice_deal_id', ['deal_id', 'id'], unique=False)
        batch_op.create_index('ix_invoice_status', ['status', 'id'], unique=False)

    op.create_table('invoice_discount',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=12), nullable=False),
    sa.Column('value', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('source_deal_discount_id', sa.String(length=64), nullable=True),
    sa.CheckConstraint("type IN ('percentage', 'amount')", name=op.f('ck_invoice_discount_type')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoice.id'], name=op.f('fk_invoice_discount_invoice_id_invoice'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice_discount'))
    )
    with op.batch_alter_table('invoice_discount', schema=None) as batch_op:
        batch_op.create_index('ix_invoice_discount_invoice_id', ['invoice_id'], unique=False)

    op.create_table('invoice_line',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('quantity', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('unit_price', sa.Numeric(precision=20, scale=6), nullable=False, comment='major units'),
    sa.Column('discount_type', sa.String(length=12), nullable=True),
    sa.Column('discount_value', sa.Numeric(precision=20, scale=6), nullable=True),
    sa.Column('tax_rate', sa.Numeric(precision=9, scale=4), nullable=False, comment='%'),
    sa.Column('tax_behavior', sa.String(length=10), nullable=False),
    sa.Column('excluded', sa.Boolean(), nullable=False),
    sa.Column('excluded_reason', sa.String(length=200), nullable=True),
    sa.Column('source_deal_product_id', sa.BigInteger(), nullable=True),
    sa.Column('edited_fields', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.CheckConstraint("discount_type IS NULL OR discount_type IN ('percentage', 'amount')", name=op.f('ck_invoice_line_discount_type')),
    sa.CheckConstraint("tax_behavior IN ('exclusive', 'inclusive', 'none')", name=op.f('ck_invoice_line_tax_behavior')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoice.id'], name=op.f('fk_invoice_line_invoice_id_invoice'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice_line'))
    )
    with op.batch_alter_table('invoice_line', schema=None) as batch_op:
        batch_op.create_index('ix_invoice_line_invoice_id', ['invoice_id', 'position'], unique=False)



def downgrade():
    with op.batch_alter_table('invoice_line', schema=None) as batch_op:
        batch_op.drop_index('ix_invoice_line_invoice_id')

    op.drop_table('invoice_line')
    with op.batch_alter_table('invoice_discount', schema=None) as batch_op:
        batch_op.drop_index('ix_invoice_discount_invoice_id')

    op.drop_table('invoice_discount')
    with op.batch_alter_table('invoice', schema=None) as batch_op:
        batch_op.drop_index('ix_invoice_status')
        batch_op.drop_index('ix_invoice_deal_id')

    op.drop_table('invoice')
