"""revocable download links: each file's link generation (signed into its links; revoking all of
them moves it on) and the links revoked one by one

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Links made before carry no generation, which reads as 0: they stay valid until revoked.
    with op.batch_alter_table('log_files') as batch_op:
        batch_op.add_column(sa.Column('link_generation', sa.Integer(), nullable=False, server_default='0'))
    op.create_table('revoked_links',
    sa.Column('link_id', sa.String(length=32), nullable=False),
    sa.Column('file_id', sa.String(length=36), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_by', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['log_files.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('link_id')
    )
    with op.batch_alter_table('revoked_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_revoked_links_file_id'), ['file_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('revoked_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_revoked_links_file_id'))
    op.drop_table('revoked_links')
    with op.batch_alter_table('log_files') as batch_op:
        batch_op.drop_column('link_generation')
