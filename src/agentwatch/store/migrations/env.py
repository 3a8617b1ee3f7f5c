"""Alembic environment: the engine is handed over by agentwatch, never read from a file."""

from alembic import context

from agentwatch.store.schema import metadata

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
