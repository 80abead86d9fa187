"""Author signing: ``sign_package`` adds an author primary signature (what ``dotnet nuget sign`` does)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from nuseal.cms.build import PrimarySignatureBuilder
from nuseal.record import Struct, field
from nuseal.sign.common import SignOptions, SignResult, Timestamper, sign_primary
from nuseal.sign.signers import Signer


class AuthorSignRequest(Struct, frozen=True):
    """Who signs (``signer``) and how (hash algorithms, overwrite)."""

    signer: Signer
    options: SignOptions = field(default_factory=SignOptions)


def sign_package(
    src: Path, dst: Path, request: AuthorSignRequest, *, timestamper: Timestamper | None, now: datetime
) -> SignResult:
    """Author-sign ``src`` into ``dst`` (may be the same path; written through a temp file + rename).

    ``now`` is the signing time and, as a local wall-clock time, the zip entry's DOS time (pass an aware
    local time to match NuGet). Raises ``SigningError`` (NU3001 already signed / unreadable input, NU3006
    zip64, NU3039), ``CertificateError`` (NU3013-NU3015, NU3017, NU3018) or ``TimestampError``
    (NU3019-NU3030, NU3036). Warnings (NU3002, NU3018, NU3043) come back in the result.
    """
    return sign_primary(
        src,
        dst,
        PrimarySignatureBuilder.author(),
        request.signer,
        request.options,
        timestamper=timestamper,
        now=now,
        kind="author",
    )
