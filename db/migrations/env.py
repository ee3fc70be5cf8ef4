"""Alembic environment: always run programmatically by :mod:`db.migrate` on a connection it
already holds (and has locked), so concurrent first uses of an empty database migrate once."""

from __future__ import annotations

from alembic import context

from db.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
