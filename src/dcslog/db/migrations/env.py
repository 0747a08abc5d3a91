"""Alembic environment: runs migrations on the URL handed over by dcslog.db.session.upgrade."""

from alembic import context
from sqlalchemy import create_engine, pool

from dcslog.db.models import Base

config = context.config
url = config.attributes["sqlalchemy_url"]

engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
