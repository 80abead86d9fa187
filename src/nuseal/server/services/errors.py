"""Domain errors of the server's services; the HTTP layer maps each class to one status, the CLI to exit 1."""

from __future__ import annotations

from nuseal.errors import NusealError


class DomainError(NusealError):
    """A request the services refuse; the message is meant for the person who made it."""


class InvalidInputError(DomainError):
    """A malformed name, id, version, scope, glob or value (HTTP 400)."""


class NotFoundError(DomainError):
    """The account, package, version or key does not exist (HTTP 404)."""


class ConflictError(DomainError):
    """The change contradicts the current state: duplicate name, last owner, last admin (HTTP 409)."""


class AuthenticationError(DomainError):
    """The API key is missing, malformed, unknown, revoked or expired (HTTP 401)."""
