"""What ``dotnet nuget verify`` prints about a certificate, as plain data.

Apart from ``nuseal.x509.certs`` (which builds it from a certificate) so that verdicts and the renderers that print
them import no cryptography: ``nuseal verify --help`` and the other commands' start-up stay light.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nuseal.record import Struct

__all__ = ["CertificateSummary"]


class CertificateSummary(Struct, frozen=True):
    """What ``dotnet nuget verify`` prints about a certificate."""

    subject: str
    issuer: str
    sha1: str  # uppercase hex, as NuGet prints it
    sha256: str  # uppercase hex, as NuGet prints it
    not_before: datetime
    not_after: datetime
    serial_number: str

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256.lower(), "sha1": self.sha1.lower(), "subject": self.subject,
                "issuer": self.issuer, "not_before": self.not_before.isoformat(),
                "not_after": self.not_after.isoformat(), "serial_number": self.serial_number}
