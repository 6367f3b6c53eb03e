"""Users: the number format each person types in (auto, point or comma), so a
decimal comma is read as one for those who use it and "1,500" is never guessed.

Revision ID: 0022
Revises: 0018
Create Date: 2026-12-04 16:40:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0022'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('number_format', sa.String(length=8), server_default='auto', nullable=False, comment='decimal separator typed: auto, point or comma (app.money.NUMBER_FORMATS)'))


def downgrade():
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_column('number_format')
