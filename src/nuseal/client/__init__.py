"""The client side of a NuGet V3 feed: read a feed (``source``), resolve versions and dependencies, verify and
install packages into a global-packages folder (see docs/architecture.md)."""
