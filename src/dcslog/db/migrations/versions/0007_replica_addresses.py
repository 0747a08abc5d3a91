"""replicas a primary reports under an address that does not reach them: the real addresses given
at import (--replica-address), and why a node's address is not confirmed

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('replica_addresses', sa.Text(), nullable=False, server_default='{}'))
    with op.batch_alter_table('replications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address_error', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('replications', schema=None) as batch_op:
        batch_op.drop_column('address_error')
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('replica_addresses')
