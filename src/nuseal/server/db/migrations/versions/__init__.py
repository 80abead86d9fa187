"""Alembic revisions, one file each, applied in order on SQLite and PostgreSQL alike."""
