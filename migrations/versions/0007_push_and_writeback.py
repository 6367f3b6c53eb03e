"""Push to Stripe and write back to Pipedrive: push jobs and their steps, batches,
the customer links and tax rates the desk found or made in Stripe, and the
write-back outbox.

All new tables, so nothing to backfill.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 16:00:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('stripe_customer_link',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('party', sa.String(length=300), nullable=False, comment='org:<id>, person:<id> or email:<address>'),
    sa.Column('org_id', sa.BigInteger(), nullable=True),
    sa.Column('person_id', sa.BigInteger(), nullable=True),
    sa.Column('stripe_customer_id', sa.String(length=255), nullable=True, comment='null while a push is finding or creating it'),
    sa.Column('fields_hash', sa.String(length=64), nullable=True, comment='digest of name, email, address, tax id last sent'),
    sa.Column('source', sa.String(length=20), nullable=True, comment='created, pipedrive, metadata or email'),
    sa.Column('claimed_by_job_id', sa.Integer(), nullable=True, comment='the push finding or creating the customer'),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stripe_customer_link')),
    sa.UniqueConstraint('party', name=op.f('uq_stripe_customer_link_party'))
    )
    op.create_table('stripe_tax_rate',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=40), nullable=False, comment='tax_rate_key(): 19:exclusive'),
    sa.Column('stripe_id', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stripe_tax_rate')),
    sa.UniqueConstraint('key', name=op.f('uq_stripe_tax_rate_key'))
    )
    op.create_table('push_batch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True, comment='who pushed'),
    sa.Column('total', sa.Integer(), nullable=False, comment='jobs in the batch'),
    sa.Column('refused', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False, comment='[{invoice_id, number, reason}] not queued, and why'),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_push_batch_created_by_id_user_account'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_batch'))
    )
    op.create_table('push_job',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=False, comment='desk invoice'),
    sa.Column('version', sa.Integer(), nullable=False, comment='the approved version pushed'),
    sa.Column('batch_id', sa.Integer(), nullable=True, comment='latest batch it was part of'),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('step', sa.String(length=20), nullable=True, comment='step in progress or failed'),
    sa.Column('attempts', sa.Integer(), nullable=False, comment='runs so far'),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False, comment='not claimed before this'),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True, comment='a running job whose lease passed is taken over (worker died)'),
    sa.Column('worker', sa.String(length=80), nullable=True, comment='who runs it: host:pid'),
    sa.Column('stripe_customer_id', sa.String(length=255), nullable=True),
    sa.Column('stripe_invoice_id', sa.String(length=255), nullable=True),
    sa.Column('error', sa.Text(), nullable=True, comment='last failure, plain words'),
    sa.Column('hint', sa.Text(), nullable=True, comment='what to do about it'),
    sa.Column('retryable', sa.Boolean(), nullable=True, comment='whether retrying can help'),
    sa.Column('requests', sa.Integer(), nullable=False, comment='Stripe requests sent'),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name=op.f('ck_push_job_known_status')),
    sa.ForeignKeyConstraint(['batch_id'], ['push_batch.id'], name=op.f('fk_push_job_batch_id_push_batch'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_push_job_created_by_id_user_account'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoice.id'], name=op.f('fk_push_job_invoice_id_invoice'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_job')),
    sa.UniqueConstraint('invoice_id', 'version', name='uq_push_job_invoice_version')
    )
    with op.batch_alter_table('push_job', schema=None) as batch_op:
        batch_op.create_index('ix_push_job_batch_id', ['batch_id'], unique=False)
        batch_op.create_index('ix_push_job_queue', ['status', 'next_attempt_at', 'id'], unique=False)

    op.create_table('writeback_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=False, comment='the same write-back is queued once'),
    sa.Column('invoice_id', sa.Integer(), nullable=True, comment='the invoice it reports on'),
    sa.Column('deal_id', sa.BigInteger(), nullable=True),
    sa.Column('entity', sa.String(length=20), nullable=False, comment='deal, organization or person'),
    sa.Column('entity_id', sa.BigInteger(), nullable=False, comment='Pipedrive id written to'),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False, comment='values by purpose, not field keys'),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True, comment='e.g. the note id'),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('deal_fields', 'contact_customer', 'deal_note', 'deal_stage', 'deal_activity')", name=op.f('ck_writeback_item_known_kind')),
    sa.CheckConstraint("status IN ('pending', 'done', 'failed')", name=op.f('ck_writeback_item_known_status')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoice.id'], name=op.f('fk_writeback_item_invoice_id_invoice'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_writeback_item')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_writeback_item_dedupe_key'))
    )
    with op.batch_alter_table('writeback_item', schema=None) as batch_op:
        batch_op.create_index('ix_writeback_item_due', ['status', 'next_attempt_at', 'id'], unique=False)
        batch_op.create_index('ix_writeback_item_invoice_id', ['invoice_id'], unique=False)

    op.create_table('push_step',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=20), nullable=False, comment='customer, invoice, lines:0, ...'),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False, comment='sent: tried, result not recorded yet'),
    sa.Column('stripe_id', sa.String(length=255), nullable=True, comment='what the step produced'),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True, comment='what later steps need'),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'sent', 'done', 'failed')", name=op.f('ck_push_step_known_status')),
    sa.ForeignKeyConstraint(['job_id'], ['push_job.id'], name=op.f('fk_push_step_job_id_push_job'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_step')),
    sa.UniqueConstraint('job_id', 'name', name='uq_push_step_job_name')
    )


def downgrade():
    op.drop_table('push_step')
    with op.batch_alter_table('writeback_item', schema=None) as batch_op:
        batch_op.drop_index('ix_writeback_item_invoice_id')
        batch_op.drop_index('ix_writeback_item_due')

    op.drop_table('writeback_item')
    with op.batch_alter_table('push_job', schema=None) as batch_op:
        batch_op.drop_index('ix_push_job_queue')
        batch_op.drop_index('ix_push_job_batch_id')

    op.drop_table('push_job')
    op.drop_table('push_batch')
    op.drop_table('stripe_tax_rate')
    op.drop_table('stripe_customer_link')
