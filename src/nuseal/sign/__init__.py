"""sign layer (see docs/architecture.md)."""
