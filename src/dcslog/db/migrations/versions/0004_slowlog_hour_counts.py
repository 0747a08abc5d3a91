"""slow log: hourly counts, and a duration index that carries the id tie-break

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('slowlog_hour_counts',
    sa.Column('instance_id', sa.String(length=36), nullable=False),
    sa.Column('hour_ms', sa.BigInteger(), nullable=False),
    sa.Column('entries', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('instance_id', 'hour_ms')
    )
    # Entries harvested before this migration get counted too.
    op.execute("INSERT INTO slowlog_hour_counts (instance_id, hour_ms, entries) "
               "SELECT instance_id, (start_time_ms / 3600000) * 3600000, count(*) FROM slowlog_entries "
               "GROUP BY instance_id, (start_time_ms / 3600000) * 3600000")
    with op.batch_alter_table('slowlog_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_slowlog_entries_duration')
        batch_op.create_index('ix_slowlog_entries_duration_id', ['instance_id', 'duration_us', 'id', 'start_time_ms'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('slowlog_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_slowlog_entries_duration_id')
        batch_op.create_index('ix_slowlog_entries_duration', ['instance_id', 'duration_us', 'start_time_ms'],
                              unique=False)
    op.drop_table('slowlog_hour_counts')
