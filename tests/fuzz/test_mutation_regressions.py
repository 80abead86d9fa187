"""The five crash causes of the mutation campaign (issue 8), each with its recorded example, as regression tests.

Each example flips one byte (XOR) of a real signed vector. Before the fix ``verify_package`` raised a non-nuseal
exception for each; now each gives a verdict reached through the checks, with the NU code NuGet would report.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nuseal.verify.engine import TrustContext, verify_package
from nuseal.verify.result import Severity
from tests.conftest import VECTORS
from tests.fuzz.common import NOW, assert_clean_verdict, verify_policy

# (cause, package, offset, xor, the error code NuGet reports, or "valid")
EXAMPLES = [
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


def _mutant(tmp_path: Path, package: str, offset: int, xor: int) -> Path:
    data = bytearray((VECTORS / "real" / package).read_bytes())
    data[offset] ^= xor
    path = tmp_path / package
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(("cause", "package", "offset", "xor", "code"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_recorded_mutant_gives_a_verdict(cause: str, package: str, offset: int, xor: int, code: str,
                                         trust: TrustContext, tmp_path: Path) -> None:
    verdict = verify_package(_mutant(tmp_path, package, offset, xor), policy=verify_policy(), trust=trust, now=NOW)
    assert_clean_verdict(verdict)
    if code == "valid":
        assert verdict.valid and not verdict.errors, verdict.findings
        return
    assert not verdict.valid
    errors = {f.code.value for f in verdict.findings if f.severity is Severity.ERROR}
    assert code in errors, (cause, verdict.findings)
