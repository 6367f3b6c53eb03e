"""Field mappings and billing rules: enum option maps on field mappings, invoice
defaults (one row), Pipedrive tax -> Stripe tax rate mappings, Pipedrive product
code -> Stripe product mappings.

No row in billing_defaults means the built-in defaults (30 days, send_invoice,
no default currency); no tax or product mapping means the push's own behaviour.

Revision ID: 0010
Revises: 0008
Create Date: 2026-11-21 16:10:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0008'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade():
    with op.batch_alter_table('field_mapping', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'options_map', JSON, nullable=True,
            comment='enum fields: desk value -> Pipedrive option id'))

    op.create_table('billing_defaults',
    sa.Column('id', sa.Integer(), nullable=False, comment='always 1'),
    sa.Column('currency', sa.String(length=3), nullable=True, comment='used when a deal has no currency; none: such deals are refused'),
    sa.Column('days_until_due', sa.Integer(), nullable=False, comment='payment terms in days'),
    sa.Column('collection_method', sa.String(length=30), nullable=False, comment='send_invoice or charge_automatically'),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True, comment='who saved it last'),
    sa.CheckConstraint('id = 1', name=op.f('ck_billing_defaults_single_row')),
    sa.CheckConstraint('days_until_due >= 0 AND days_until_due <= 365', name=op.f('ck_billing_defaults_days_range')),
    sa.CheckConstraint("collection_method IN ('send_invoice', 'charge_automatically')", name=op.f('ck_billing_defaults_known_collection_method')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['user_account.id'], name=op.f('fk_billing_defaults_updated_by_id_user_account'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_defaults'))
    )
    op.create_table('tax_mapping',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pd_percent', sa.Numeric(precision=9, scale=4), nullable=False, comment="Pipedrive's tax percent on a deal product"),
    sa.Column('pd_method', sa.String(length=10), nullable=False, comment="Pipedrive's tax_method"),
    sa.Column('stripe_behavior', sa.String(length=10), nullable=False, comment='Stripe tax rate: inclusive or exclusive'),
    sa.Column('stripe_tax_rate_id', sa.String(length=255), nullable=True, comment='an existing Stripe tax rate (txr_...); none: the push makes one'),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('pd_percent >= 0 AND pd_percent <= 100', name=op.f('ck_tax_mapping_percent_range')),
    sa.CheckConstraint("pd_method IN ('exclusive', 'inclusive')", name=op.f('ck_tax_mapping_known_pd_method')),
    sa.CheckConstraint("stripe_behavior IN ('exclusive', 'inclusive')", name=op.f('ck_tax_mapping_known_stripe_behavior')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tax_mapping')),
    sa.UniqueConstraint('pd_percent', 'pd_method', name='uq_tax_mapping_percent_method')
    )
    op.create_table('product_mapping',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pd_product_code', sa.String(length=100), nullable=False, comment="Pipedrive's product code"),
    sa.Column('stripe_product_id', sa.String(length=255), nullable=False, comment='prod_...'),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_product_mapping')),
    sa.UniqueConstraint('pd_product_code', name=op.f('uq_product_mapping_pd_product_code'))
    )


def downgrade():
    op.drop_table('product_mapping')
    op.drop_table('tax_mapping')
    op.drop_table('billing_defaults')
    with op.batch_alter_table('field_mapping', schema=None) as batch_op:
        batch_op.drop_column('options_map')
