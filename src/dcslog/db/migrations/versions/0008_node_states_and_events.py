"""live node state (the last harvest round's) and the events derived from its changes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('node_states',
    sa.Column('replication_id', sa.String(length=36), nullable=False),
    sa.Column('instance_id', sa.String(length=36), nullable=False),
    sa.Column('reachable', sa.Boolean(), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=True),
    sa.Column('role', sa.String(length=8), nullable=True),
    sa.Column('master', sa.String(length=300), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('observed_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=True),
    sa.Column('failing_since', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('replication_id')
    )
    with op.batch_alter_table('node_states', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_node_states_instance_id'), ['instance_id'], unique=False)

    op.create_table('events',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('instance_id', sa.String(length=36), nullable=False),
    sa.Column('replication_id', sa.String(length=36), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('time_ms', sa.BigInteger(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('replication_ip', sa.String(length=255), nullable=False),
    sa.Column('replication_port', sa.Integer(), nullable=False),
    sa.Column('group_name', sa.String(length=32), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_time', ['instance_id', 'time_ms'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_time')
    op.drop_table('events')
    with op.batch_alter_table('node_states', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_node_states_instance_id'))
    op.drop_table('node_states')
