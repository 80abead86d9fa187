"""trust layer (see docs/architecture.md)."""
