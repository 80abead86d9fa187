"""x509 layer (see docs/architecture.md)."""
