"""Persistence: SQLAlchemy 2 models on PostgreSQL (psycopg 3), migrated by Alembic."""
