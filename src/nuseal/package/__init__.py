"""package layer (see docs/architecture.md)."""
