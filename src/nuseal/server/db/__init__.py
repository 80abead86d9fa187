"""The feed's database: SQLAlchemy models, the engine/session factory and the one Alembic migration history."""
