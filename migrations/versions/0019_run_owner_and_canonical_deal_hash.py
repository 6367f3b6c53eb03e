"""Runs know their owner, deal hashes are canonical.

1. sync_run.owner ("host:pid" of the scheduler running it) and sync_run.lease_until
   (renewed by that scheduler's heartbeat): a run whose owner died is found and
   marked "interrupted" instead of staying "running" forever (issue 15, defect 11).
2. Deal content hashes are recomputed the canonical way (app.intake.snapshots.deal_state
   now writes every number as plain_decimal text; before, str(Decimal) gave
   "10234.00" for a deal just parsed and "10234.000000" for one reloaded from
   Numeric(20, 6), so the same deal had two hashes). An invoice's deal_hash is
   moved to the new hash when it equals what its deal stored before the upgrade or
   the old-style hash of the deal as stored now (either way the draft was built
   from this very content); an invoice built from other content keeps its old hash
   and still shows its drift. Downgrading drops the columns and keeps the hashes.

Revision ID: 0019
Revises: 0022
Create Date: 2026-12-04 16:00:00

"""
from types import SimpleNamespace

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0022'
branch_labels = None
depends_on = None

Money = sa.Numeric(20, 6)

# Only the columns deal_state() reads, typed as the models type them, so a value
# comes back exactly as the app reloads it.
pd_deal = sa.table(
    'pd_deal',
    sa.column('id', sa.BigInteger()), sa.column('title', sa.String()),
    sa.column('value', Money), sa.column('currency', sa.String()),
    sa.column('status', sa.String()), sa.column('stage_id', sa.BigInteger()),
    sa.column('pipeline_id', sa.BigInteger()), sa.column('person_id', sa.BigInteger()),
    sa.column('org_id', sa.BigInteger()), sa.column('billing_email', sa.String()),
    sa.column('content_hash', sa.String()),
)
pd_deal_product = sa.table(
    'pd_deal_product',
    sa.column('id', sa.BigInteger()), sa.column('deal_id', sa.BigInteger()),
    sa.column('name', sa.String()), sa.column('item_price', Money),
    sa.column('quantity', Money), sa.column('discount', Money),
    sa.column('discount_type', sa.String()), sa.column('tax', sa.Numeric(9, 4)),
    sa.column('tax_method', sa.String()), sa.column('is_enabled', sa.Boolean()),
    sa.column('billing_frequency', sa.String()),
)
invoice = sa.table(
    'invoice', sa.column('deal_id', sa.BigInteger()), sa.column('deal_hash', sa.String()),
)


def upgrade():
    op.add_column('sync_run', sa.Column(
        'owner', sa.String(length=120), nullable=True,
        comment='host:pid of the scheduler running it'))
    op.add_column('sync_run', sa.Column(
        'lease_until', sa.DateTime(timezone=True), nullable=True,
        comment="renewed by its owner's heartbeat; past it, the run is interrupted"))
    rehash_deals(op.get_bind())


def rehash_deals(conn) -> int:
    """Recompute every deal's content_hash canonically; carry the invoices drafted from
    the same content along. Returns how many invoices were carried."""
    from app.intake.snapshots import content_hash, deal_state

    products: dict[int, list] = {}
    for row in conn.execute(sa.select(pd_deal_product)).mappings():
        products.setdefault(row['deal_id'], []).append(SimpleNamespace(**row))
    carried = 0
    for row in conn.execute(sa.select(pd_deal)).mappings().all():
        deal = SimpleNamespace(**row, products=products.get(row['id'], []))
        new = content_hash(deal_state(deal))
        old = {row['content_hash'], content_hash(deal_state(deal, number=str))} - {'', new}
        if old:
            carried += conn.execute(
                invoice.update()
                .where(invoice.c.deal_id == row['id'], invoice.c.deal_hash.in_(sorted(old)))
                .values(deal_hash=new)
            ).rowcount
        if row['content_hash'] != new:
            conn.execute(pd_deal.update().where(pd_deal.c.id == row['id'])
                         .values(content_hash=new))
    return carried


def downgrade():
    with op.batch_alter_table('sync_run') as batch:
        batch.drop_column('lease_until')
        batch.drop_column('owner')
