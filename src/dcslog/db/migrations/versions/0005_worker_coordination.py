"""workers coordinate: runs handed back by a stopping worker (they do not count against a job's
retry limit), and slow-log harvest claims (several workers read each node once per interval)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('handed_back', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('slowlog_cursors', schema=None) as batch_op:
        batch_op.add_column(sa.Column('harvest_claimed_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('slowlog_cursors', schema=None) as batch_op:
        batch_op.drop_column('harvest_claimed_at')
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_column('handed_back')
