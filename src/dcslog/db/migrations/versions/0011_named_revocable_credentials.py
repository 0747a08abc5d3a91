"""named, listable, revocable credentials and tokens: a name on each, revoked_at (a revoked one is
kept, for the audit trail, and authenticates nothing), and an id for each token that is not the
token (tokens made before get a random one)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""
import secrets

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('credentials') as batch_op:
        batch_op.add_column(sa.Column('name', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('revoked_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('tokens') as batch_op:
        batch_op.add_column(sa.Column('id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('name', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('revoked_at', sa.DateTime(), nullable=True))
    # Existing tokens keep working and get an id as new ones do (services.credentials.new_token_id):
    # random, never derived from the token or its hash.
    tokens = sa.table('tokens', sa.column('token_hash', sa.String), sa.column('id', sa.String))
    connection = op.get_bind()
    for (token_hash,) in connection.execute(sa.select(tokens.c.token_hash)).all():
        connection.execute(tokens.update().where(tokens.c.token_hash == token_hash)
                           .values(id="tok-" + secrets.token_hex(8)))
    with op.batch_alter_table('tokens') as batch_op:
        batch_op.alter_column('id', existing_type=sa.String(length=40), nullable=False)
        batch_op.create_index('ix_tokens_id', ['id'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('tokens') as batch_op:
        batch_op.drop_index('ix_tokens_id')
        batch_op.drop_column('revoked_at')
        batch_op.drop_column('name')
        batch_op.drop_column('id')
    with op.batch_alter_table('credentials') as batch_op:
        batch_op.drop_column('revoked_at')
        batch_op.drop_column('name')
