"""Deal intake from Pipedrive: snapshots, sync state and runs, rules, mappings, webhooks.

Amounts are Numeric(20, 6): exact, in Pipedrive's major units.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 15:04:16.007720

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('billing_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pipeline_id', sa.BigInteger(), nullable=False),
    sa.Column('ready_stage_ids', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('match', sa.String(length=20), nullable=False),
    sa.Column('paid_stage_id', sa.BigInteger(), nullable=True, comment='move paid deals here'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_rule')),
    sa.UniqueConstraint('pipeline_id', name=op.f('uq_billing_rule_pipeline_id'))
    )
    op.create_table('field_mapping',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=40), nullable=False, comment='e.g. billing_email'),
    sa.Column('entity', sa.String(length=20), nullable=False),
    sa.Column('field_name', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_field_mapping')),
    sa.UniqueConstraint('purpose', name=op.f('uq_field_mapping_purpose'))
    )
    op.create_table('pd_deal',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('value', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False, comment='open, won, lost, deleted'),
    sa.Column('is_deleted', sa.Boolean(), nullable=False),
    sa.Column('pipeline_id', sa.BigInteger(), nullable=True),
    sa.Column('stage_id', sa.BigInteger(), nullable=True),
    sa.Column('owner_id', sa.BigInteger(), nullable=True),
    sa.Column('person_id', sa.BigInteger(), nullable=True),
    sa.Column('org_id', sa.BigInteger(), nullable=True),
    sa.Column('won_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('add_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('update_time', sa.DateTime(timezone=True), nullable=True, comment="Pipedrive's"),
    sa.Column('custom_fields', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('billing_email', sa.String(length=254), nullable=True),
    sa.Column('product_count', sa.Integer(), nullable=False),
    sa.Column('has_recurring', sa.Boolean(), nullable=False),
    sa.Column('has_installments', sa.Boolean(), nullable=False),
    sa.Column('ready', sa.Boolean(), nullable=False, comment='matches a billing rule'),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('search_text', sa.Text(), nullable=False, comment='lower-cased, for search'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pd_deal'))
    )
    with op.batch_alter_table('pd_deal', schema=None) as batch_op:
        batch_op.create_index('ix_pd_deal_owner', ['owner_id'], unique=False)
        batch_op.create_index('ix_pd_deal_pipeline_stage', ['pipeline_id', 'stage_id'], unique=False)
        batch_op.create_index('ix_pd_deal_queue', ['ready', 'won_time', 'id'], unique=False)
        batch_op.create_index('ix_pd_deal_update_time', ['update_time'], unique=False)

    op.create_table('pd_field',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entity', sa.String(length=20), nullable=False, comment='deal, person, organization, product'),
    sa.Column('field_code', sa.String(length=64), nullable=False, comment="Pipedrive's key (40-char hash)"),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('field_type', sa.String(length=40), nullable=False),
    sa.Column('is_custom', sa.Boolean(), nullable=False),
    sa.Column('options', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True, comment='enum/set options'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pd_field')),
    sa.UniqueConstraint('entity', 'field_code', name='uq_pd_field_entity_code')
    )
    op.create_table('pd_organization',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('address', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('custom_fields', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('update_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pd_organization'))
    )
    op.create_table('pd_person',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('emails', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False, comment='[{value, primary, label}]'),
    sa.Column('org_id', sa.BigInteger(), nullable=True),
    sa.Column('custom_fields', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('update_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pd_person'))
    )
    op.create_table('pd_pipeline',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('order_nr', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pd_pipeline'))
    )
    op.create_table('pd_stage',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('pipeline_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('order_nr', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pd_stage'))
    )
    with op.batch_alter_table('pd_stage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pd_stage_pipeline_id'), ['pipeline_id'], unique=False)

    op.create_table('pd_user',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pd_user'))
    )
    op.create_table('pd_webhook_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=100), nullable=False, comment='meta.id'),
    sa.Column('entity', sa.String(length=40), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('entity_id', sa.String(length=40), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pd_webhook_event')),
    sa.UniqueConstraint('event_id', name=op.f('uq_pd_webhook_event_event_id'))
    )
    op.create_table('sync_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job', sa.String(length=60), nullable=False),
    sa.Column('trigger', sa.String(length=20), nullable=False, comment='schedule/manual/webhook'),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False, comment='running/ok/failed/paused'),
    sa.Column('counts', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('tokens', sa.Integer(), nullable=False),
    sa.Column('progress_done', sa.Integer(), nullable=False),
    sa.Column('progress_total', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_run'))
    )
    with op.batch_alter_table('sync_run', schema=None) as batch_op:
        batch_op.create_index('ix_sync_run_job_id', ['job', 'id'], unique=False)

    op.create_table('sync_state',
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('cursor_time', sa.DateTime(timezone=True), nullable=True, comment='updated_since for the next run'),
    sa.Column('page_cursor', sa.String(length=255), nullable=True, comment='mid-run page cursor'),
    sa.Column('run_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('paused_until', sa.DateTime(timezone=True), nullable=True, comment='daily budget spent: resume after'),
    sa.Column('message', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_sync_state'))
    )
    op.create_table('deal_change',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('deal_id', sa.BigInteger(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False, comment='pull or webhook'),
    sa.Column('kind', sa.String(length=20), nullable=False, comment='created or updated'),
    sa.Column('changes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['sync_run.id'], name=op.f('fk_deal_change_run_id_sync_run'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deal_change'))
    )
    with op.batch_alter_table('deal_change', schema=None) as batch_op:
        batch_op.create_index('ix_deal_change_deal_id', ['deal_id', 'id'], unique=False)

    op.create_table('pd_deal_discount',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('deal_id', sa.BigInteger(), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('amount', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('type', sa.String(length=12), nullable=False, comment='percentage or amount'),
    sa.ForeignKeyConstraint(['deal_id'], ['pd_deal.id'], name=op.f('fk_pd_deal_discount_deal_id_pd_deal'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pd_deal_discount'))
    )
    with op.batch_alter_table('pd_deal_discount', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pd_deal_discount_deal_id'), ['deal_id'], unique=False)

    op.create_table('pd_deal_product',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('deal_id', sa.BigInteger(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.BigInteger(), nullable=True),
    sa.Column('product_code', sa.String(length=100), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('item_price', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('quantity', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('discount', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('discount_type', sa.String(length=12), nullable=False),
    sa.Column('tax', sa.Numeric(precision=9, scale=4), nullable=False, comment='percent'),
    sa.Column('tax_method', sa.String(length=10), nullable=False),
    sa.Column('sum', sa.Numeric(precision=20, scale=6), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('is_enabled', sa.Boolean(), nullable=False),
    sa.Column('billing_frequency', sa.String(length=20), nullable=False),
    sa.Column('billing_frequency_cycles', sa.Integer(), nullable=True),
    sa.Column('billing_start_date', sa.Date(), nullable=True),
    sa.Column('comments', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['deal_id'], ['pd_deal.id'], name=op.f('fk_pd_deal_product_deal_id_pd_deal'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pd_deal_product'))
    )
    with op.batch_alter_table('pd_deal_product', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pd_deal_product_deal_id'), ['deal_id'], unique=False)

    op.create_table('pd_installment',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('deal_id', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('billing_date', sa.Date(), nullable=True),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['deal_id'], ['pd_deal.id'], name=op.f('fk_pd_installment_deal_id_pd_deal'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pd_installment'))
    )
    with op.batch_alter_table('pd_installment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pd_installment_deal_id'), ['deal_id'], unique=False)



def downgrade():
    with op.batch_alter_table('pd_installment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pd_installment_deal_id'))

    op.drop_table('pd_installment')
    with op.batch_alter_table('pd_deal_product', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pd_deal_product_deal_id'))

    op.drop_table('pd_deal_product')
    with op.batch_alter_table('pd_deal_discount', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pd_deal_discount_deal_id'))

    op.drop_table('pd_deal_discount')
    with op.batch_alter_table('deal_change', schema=None) as batch_op:
        batch_op.drop_index('ix_deal_change_deal_id')

    op.drop_table('deal_change')
    op.drop_table('sync_state')
    with op.batch_alter_table('sync_run', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_run_job_id')

    op.drop_table('sync_run')
    op.drop_table('pd_webhook_event')
    op.drop_table('pd_user')
    with op.batch_alter_table('pd_stage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pd_stage_pipeline_id'))

    op.drop_table('pd_stage')
    op.drop_table('pd_pipeline')
    op.drop_table('pd_person')
    op.drop_table('pd_organization')
    op.drop_table('pd_field')
    with op.batch_alter_table('pd_deal', schema=None) as batch_op:
        batch_op.drop_index('ix_pd_deal_update_time')
        batch_op.drop_index('ix_pd_deal_queue')
        batch_op.drop_index('ix_pd_deal_pipeline_stage')
        batch_op.drop_index('ix_pd_deal_owner')

    op.drop_table('pd_deal')
    op.drop_table('field_mapping')
    op.drop_table('billing_rule')
