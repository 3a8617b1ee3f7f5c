"""Persistence: SQLAlchemy Core schema, Alembic migrations, one module per aggregate."""
