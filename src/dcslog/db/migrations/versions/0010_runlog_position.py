"""where each node's run log is read on for the events it tells (crash, sync)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('node_states') as batch_op:
        batch_op.add_column(sa.Column('runlog_position', sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('node_states') as batch_op:
        batch_op.drop_column('runlog_position')
