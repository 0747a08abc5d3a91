"""slow-log top: hourly rollups per node and command shape, and an index per grouping for p99

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

INDEXES = {
    'ix_slowlog_entries_fingerprint_duration': ['instance_id', 'fingerprint', 'duration_us', 'id', 'start_time_ms'],
    'ix_slowlog_entries_command_duration': ['instance_id', 'command_name', 'duration_us', 'id', 'start_time_ms'],
    'ix_slowlog_entries_node_duration': ['instance_id', 'replication_id', 'duration_us', 'id', 'start_time_ms'],
}


def upgrade() -> None:
    op.create_table('slowlog_hour_groups',
    sa.Column('instance_id', sa.String(length=36), nullable=False),
    sa.Column('hour_ms', sa.BigInteger(), nullable=False),
    sa.Column('replication_id', sa.String(length=36), nullable=False),
    sa.Column('command_name', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.Text(), nullable=False),
    sa.Column('entries', sa.BigInteger(), nullable=False),
    sa.Column('total_us', sa.BigInteger(), nullable=False),
    sa.Column('max_us', sa.BigInteger(), nullable=False),
    sa.Column('first_ms', sa.BigInteger(), nullable=False),
    sa.Column('last_ms', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('instance_id', 'hour_ms', 'replication_id', 'command_name', 'fingerprint')
    )
    # Entries harvested before this migration are rolled up too.
    op.execute("INSERT INTO slowlog_hour_groups (instance_id, hour_ms, replication_id, command_name, fingerprint, "
               "entries, total_us, max_us, first_ms, last_ms) "
               "SELECT instance_id, (start_time_ms / 3600000) * 3600000, replication_id, command_name, fingerprint, "
               "count(*), sum(duration_us), max(duration_us), min(start_time_ms), max(start_time_ms) "
               "FROM slowlog_entries "
               "GROUP BY instance_id, (start_time_ms / 3600000) * 3600000, replication_id, command_name, fingerprint")
    with op.batch_alter_table('slowlog_entries', schema=None) as batch_op:
        for name, columns in INDEXES.items():
            batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    with op.batch_alter_table('slowlog_entries', schema=None) as batch_op:
        for name in INDEXES:
            batch_op.drop_index(name)
    op.drop_table('slowlog_hour_groups')
