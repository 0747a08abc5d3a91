"""a task's progress, as its worker last reported it (ShowBackgroundTaskProgress)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tasks') as batch_op:
        batch_op.add_column(sa.Column('progress', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('cut_bytes', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('remain_seconds', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('progress_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tasks') as batch_op:
        batch_op.drop_column('progress_at')
        batch_op.drop_column('remain_seconds')
        batch_op.drop_column('cut_bytes')
        batch_op.drop_column('progress')
