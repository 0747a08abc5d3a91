"""nodes read through dcslog agent

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('agents', sa.Text(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('agent_key_encrypted', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('agent_key_encrypted')
        batch_op.drop_column('agents')
