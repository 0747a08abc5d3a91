"""the audit trail: who did what, recorded in each action's own transaction

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audit_records',
        sa.Column('id', sa.String(24), primary_key=True),
        sa.Column('time', sa.DateTime(), nullable=False),
        sa.Column('project_id', sa.String(64), nullable=False),
        sa.Column('actor', sa.String(128), nullable=False),
        sa.Column('actor_type', sa.String(16), nullable=False),
        sa.Column('action', sa.String(32), nullable=False),
        sa.Column('instance_id', sa.String(36), nullable=True),
        sa.Column('target', sa.String(256), nullable=True),
        sa.Column('source_ip', sa.String(64), nullable=True),
        sa.Column('request_id', sa.String(128), nullable=True),
        sa.Column('outcome', sa.String(16), nullable=False),
    )
    op.create_index('ix_audit_records_time', 'audit_records', ['time'])
    op.create_index('ix_audit_records_project_time', 'audit_records', ['project_id', 'time', 'id'])


def downgrade() -> None:
    op.drop_index('ix_audit_records_project_time', table_name='audit_records')
    op.drop_index('ix_audit_records_time', table_name='audit_records')
    op.drop_table('audit_records')
