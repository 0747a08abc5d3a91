"""slow log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('slowlog_cursors',
    sa.Column('replication_id', sa.String(length=36), nullable=False),
    sa.Column('instance_id', sa.String(length=36), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=True),
    sa.Column('last_id', sa.BigInteger(), nullable=False),
    sa.Column('lost_entries', sa.BigInteger(), nullable=False),
    sa.Column('harvested_entries', sa.BigInteger(), nullable=False),
    sa.Column('last_harvest_at', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('replication_id')
    )
    with op.batch_alter_table('slowlog_cursors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_slowlog_cursors_instance_id'), ['instance_id'], unique=False)

    op.create_table('slowlog_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('instance_id', sa.String(length=36), nullable=False),
    sa.Column('replication_id', sa.String(length=36), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('redis_id', sa.BigInteger(), nullable=False),
    sa.Column('start_time_ms', sa.BigInteger(), nullable=False),
    sa.Column('duration_us', sa.BigInteger(), nullable=False),
    sa.Column('command', sa.Text(), nullable=False),
    sa.Column('command_name', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.Text(), nullable=False),
    sa.Column('shard_name', sa.String(length=32), nullable=False),
    sa.Column('node_ip', sa.String(length=255), nullable=False),
    sa.Column('node_port', sa.Integer(), nullable=False),
    sa.Column('node_role', sa.String(length=8), nullable=False),
    sa.Column('client_addr', sa.String(length=255), nullable=False),
    sa.Column('client_name', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('replication_id', 'run_id', 'redis_id', name='uq_slowlog_entries_node_entry')
    )
    with op.batch_alter_table('slowlog_entries', schema=None) as batch_op:
        batch_op.create_index('ix_slowlog_entries_duration', ['instance_id', 'duration_us', 'start_time_ms'], unique=False)
        batch_op.create_index('ix_slowlog_entries_time', ['instance_id', 'start_time_ms'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('slowlog_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_slowlog_entries_time')
        batch_op.drop_index('ix_slowlog_entries_duration')

    op.drop_table('slowlog_entries')
    with op.batch_alter_table('slowlog_cursors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_slowlog_cursors_instance_id'))

    op.drop_table('slowlog_cursors')
