"""a re-collection never destroys a good copy: each file records the task that produced its published
content and when that content expires, so a refresh that fails can put the file back to them

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('log_files', schema=None) as batch_op:
        batch_op.add_column(sa.Column('content_task_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('content_expires_at', sa.DateTime(), nullable=True))
    # A succeed file's content is its own collection's. A file being refreshed during the upgrade
    # keeps no record of the task behind its previous bytes: it is treated as having none.
    op.execute("UPDATE log_files SET content_task_id = task_id, content_expires_at = expires_at "
               "WHERE status = 'succeed' AND object_key IS NOT NULL")


def downgrade() -> None:
    # Before 0006 a succeed file's task_id was its content's task (its backup_id).
    op.execute("UPDATE log_files SET task_id = content_task_id, error_msg = NULL "
               "WHERE status = 'succeed' AND content_task_id IS NOT NULL")
    with op.batch_alter_table('log_files', schema=None) as batch_op:
        batch_op.drop_column('content_expires_at')
        batch_op.drop_column('content_task_id')
