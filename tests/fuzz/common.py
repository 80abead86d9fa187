"""Shared pieces of the robustness tests: the verify-command policy offline, a fixed clock, signed vectors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from nuseal.enums import RevocationMode
from nuseal.verify.engine import TrustContext
from nuseal.verify.policy import VerificationPolicy
from nuseal.verify.result import PackageVerdict
from nuseal.x509.revocation import RevocationChecker
from nuseal.x509.roots import default_trust_store
from tests.conftest import VECTORS

#: A fixed verification time (the vectors' certificates are judged at a timestamp, so the date does not decide).
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def signed_vectors() -> list[Path]:
    """Every signed package among the shared vectors (real and NuGet fixtures)."""
    candidates = sorted([*(VECTORS / "real").glob("*.nupkg"), *(VECTORS / "fixtures").glob("*.nupkg")])
    return [p for p in candidates if "__unsigned" not in p.name and "__MALFORMED" not in p.name]


def verify_policy() -> VerificationPolicy:
    return VerificationPolicy.verify_command()  # revocation offline: the TrustContext's checker decides


def assert_clean_verdict(verdict: PackageVerdict) -> None:
    """A verdict reached through the checks, not through the engine's last-resort exception handler."""
    assert "internal_error" not in verdict.extra, verdict.extra.get("internal_error")
    assert verdict.valid or verdict.error is not None or verdict.errors, verdict
    for finding in verdict.findings:
        assert finding.code.value.startswith("NU"), finding


def offline_trust() -> TrustContext:
    """nuseal's default roots, revocation offline (what EXPECTED.md states for the vectors)."""
    return TrustContext(default_trust_store(), RevocationChecker(RevocationMode.OFFLINE))


#: The crash examples of issue 8's mutation campaign (flip = XOR the byte at the offset of the real vector).
# (cause, package, offset, xor, the error code NuGet reports, or "valid")
RECORDED_MUTANTS = [
    # 1. asn1crypto's lazy parsing: an attribute value's tag, and the length of an attribute type OID in the
    #    primary signer's signed attributes (.NET fails to decode both: CryptographicException, NU3003).
    ("lazy-asn1-attribute", "Antlr.3.5.0.2.nupkg", 150154, 0xCA, "NU3003"),
    ("lazy-asn1-signed-attributes", "Microsoft.Bcl.AsyncInterfaces.8.0.0.nupkg", 82883, 0x44, "NU3003"),
    # 2. cryptography's InvalidVersion (not a ValueError): a bag certificate's version 3 becomes 4.
    ("certificate-version", "System.Data.SQLite.Core.1.0.116.0.nupkg", 2030, 0x01, "NU3003"),
    # 3. Chain building over a bag certificate whose key algorithm is unknown. The recorded example damages the
    #    bag's copy of a root the trust store has: not needed, the chain ends at the store's copy, and the signature
    #    entry is not hashed, so the package stays valid (as for NuGet). Damaging the author's intermediate CA
    #    instead leaves the leaf's signature unverifiable: NotSignatureValid.
    ("chain-unknown-key-bag-root", "System.Data.SQLite.Core.1.0.116.0.nupkg", 2314, 0x01, "valid"),
    ("chain-unknown-key-intermediate", "System.Data.SQLite.Core.1.0.116.0.nupkg", 7393, 0x01, "NU3012"),
    # 4. The timestamp signer certificate's public key cannot be loaded: the token's signature cannot be checked.
    ("timestamp-public-key", "Microsoft.AspNetCore.Http.Features.2.2.0.nupkg", 41923, 0xDD, "NU3021"),
    # 5. The nuspec cannot be inflated (the flip is in hashed bytes, so integrity fails).
    ("nuspec-zlib", "System.Data.SQLite.Core.1.0.116.0.nupkg", 841, 0xF7, "NU3008"),
]
