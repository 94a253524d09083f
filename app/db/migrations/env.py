"""Alembic's environment: run by app/db/migrate.py with the connection it opened (no alembic.ini)."""

from __future__ import annotations

from alembic import context

from app.db.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
