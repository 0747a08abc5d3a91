"""Alembic environment: runs migrations on the URL handed over by dcslog.db.session.upgrade."""

from alembic import context
from sqlalchemy import create_engine, pool, text

from dcslog.db.models import Base

config = context.config
url = config.attributes["sqlalchemy_url"]

engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Processes starting together migrate one at a time (DDL is transactional there).
            connection.execute(text("SELECT pg_advisory_xact_lock(7240501)"))
        context.run_migrations()
engine.dispose()
