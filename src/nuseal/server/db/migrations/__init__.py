"""Alembic environment and revisions (package data, so ``nuseal admin migrate`` works from an installed wheel)."""
