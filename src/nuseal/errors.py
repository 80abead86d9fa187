"""One error hierarchy for everything that *could not run*.

A package that fails verification is not an exception: it is a verdict (``nuseal.verify.result``).
Exceptions here mean the input could not be read, a configuration is wrong, or the network failed.
Each carries an optional NU code and a message naming *what* is wrong and *where* (entry, offset,
certificate fingerprint, URL). Programmer misuse stays ``TypeError``/``ValueError``.
"""

from __future__ import annotations

from nuseal.codes import NuCode


class NusealError(Exception):
    """Base of all nuseal errors. ``code`` is the NuGet log code, when NuGet has one for this failure."""

    def __init__(self, message: str, code: NuCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}" if self.code else self.message


class PackageFormatError(NusealError):
    """The file is not a readable zip / NuGet package (for example: no end of central directory record)."""


class SignatureEntryError(NusealError):
    """The ``.signature.p7s`` entry is missing, duplicated or has invalid zip fields (NU3005)."""


class SignatureFormatError(NusealError):
    """The signature bytes are not a valid NuGet signature (NU3000, NU3003, NU3007, NU3009-NU3011, NU3031-3033)."""


class TimestampError(NusealError):
    """A timestamp token or a timestamp response is invalid (NU3019-NU3030, NU3036)."""


class CertificateError(NusealError):
    """A certificate cannot be used for the requested operation (NU3013-NU3018, NU3001)."""


class SigningError(NusealError):
    """Signing could not be done (NU3001, NU3006, NU3032, NU3033, NU3039, ...)."""


class TrustConfigError(NusealError):
    """A nuget.config file or trust setting is invalid."""


class FetchError(NusealError):
    """Bad or missing data from the network (feed, TSA, OCSP, CRL): not the package's fault."""


class ProtocolError(FetchError):
    """A NuGet V3 JSON document is malformed: ``document`` names it (kind and URL), ``field`` the JSON path
    of the first bad value (``items[0].catalogEntry.version``), empty when the whole document is wrong."""

    def __init__(self, message: str, *, document: str, field: str = "") -> None:
        super().__init__(message)
        self.document = document
        self.field = field
