"""cms layer (see docs/architecture.md)."""
