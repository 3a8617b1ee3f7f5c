"""Alembic environment: the engine is handed over by agentwatch, never read from a file.

``store.migrate.migrate`` hands over a connection that already holds the migration lock inside
its transaction; any other caller (``alembic_config(engine)`` alone) gets one the same way here,
so every upgrade and downgrade is exclusive and all-or-nothing on both stores.
"""

from alembic import context

from agentwatch.store.migrate import migration_connection
from agentwatch.store.schema import metadata


def run(connection) -> None:  # type: ignore[no-untyped-def]
    # transactional_ddl: the connection's one transaction holds every revision's DDL, SQLite's too
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, transactional_ddl=True)
    context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    with migration_connection(context.config.attributes["engine"]) as connection:
        run(connection)
