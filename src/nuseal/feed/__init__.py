"""feed layer (see docs/architecture.md)."""
