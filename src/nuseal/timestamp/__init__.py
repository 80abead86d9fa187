"""timestamp layer (see docs/architecture.md)."""
