"""verify layer (see docs/architecture.md)."""
