"""Audit chain head: the newest entry's id and hash and the entry count, kept apart
from the entries and signed with an HMAC under SECRET_KEY, so that deleting the
newest entries is detected by `flask desk audit verify`. Filled from the log as
it stands (the migration runs inside the app, which has SECRET_KEY).

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-04 15:50:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_id', sa.Integer(), nullable=False, comment='id of the newest entry written (0: none)'),
    sa.Column('last_hash', sa.String(length=64), nullable=False, comment='its entry_hash'),
    sa.Column('entry_count', sa.Integer(), nullable=False, comment='entries written, ever'),
    sa.Column('problem', sa.String(length=300), nullable=True, comment='what was found wrong when an entry was written; kept until fixed'),
    sa.Column('mac', sa.String(length=64), nullable=False, comment='HMAC-SHA256 under SECRET_KEY'),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    _seal_existing_log()


def _seal_existing_log():
    """Sign a head for the log as it is now (it is trusted as of this upgrade)."""
    from flask import current_app

    from app.audit.operations import GENESIS, HEAD_ID, head_mac
    from app.types import utcnow

    bind = op.get_bind()
    count, last_id = bind.execute(sa.text("SELECT COUNT(*), MAX(id) FROM audit_entry")).one()
    last_id = last_id or 0
    last_hash = GENESIS
    if last_id:
        last_hash = bind.execute(
            sa.text("SELECT entry_hash FROM audit_entry WHERE id = :i"), {"i": last_id}
        ).scalar_one()
    mac = head_mac(last_id, last_hash, count, None, key=current_app.config["SECRET_KEY"])
    head = sa.table('audit_head', sa.column('id'), sa.column('last_id'), sa.column('last_hash'),
                    sa.column('entry_count'), sa.column('problem'), sa.column('mac'),
                    sa.column('updated_at'))
    op.bulk_insert(head, [{"id": HEAD_ID, "last_id": last_id, "last_hash": last_hash,
                           "entry_count": count, "problem": None, "mac": mac,
                           "updated_at": utcnow()}])


def downgrade():
    op.drop_table('audit_head')
