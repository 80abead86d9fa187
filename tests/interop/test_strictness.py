"""Where nuseal could accept what NuGet refuses (issue 8, "Strictness"), checked on a real signed package.

Each case edits a part of ``.signature.p7s`` that no hash covers (the package hash skips the signature entry, and
the signer's signature covers only its signed attributes), so whatever changes is decided by parsing rules alone.
The decisions and NuGet's / .NET's behaviour behind them are in docs/decisions.md ("Strictness at load").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nuseal import oids
from nuseal.findings import Severity
from nuseal.package.zipformat import MAX_SIGNATURE_BYTES
from nuseal.verify.engine import TrustContext, verify_package
from nuseal.verify.result import PackageVerdict
from tests.conftest import VECTORS
from tests.fuzz import mutants
from tests.fuzz.common import NOW, assert_clean_verdict, offline_trust, verify_policy

AUTHOR = VECTORS / "real" / "Newtonsoft.Json.13.0.1.nupkg"  # SKI signer id; DigiCert timestamp with issuerSerial

Edit = Callable[[mutants.Node], None]


@pytest.fixture(scope="module")
def trust() -> TrustContext:
    return offline_trust()


def _error_codes(verdict: PackageVerdict) -> set[str]:
    return {f.code.value for f in verdict.findings if f.severity is Severity.ERROR}


def _verify(data: bytes, tmp_path: Path, trust: TrustContext) -> PackageVerdict:
    path = tmp_path / AUTHOR.name
    path.write_bytes(data)
    verdict = verify_package(path, policy=verify_policy(), trust=trust, now=NOW)
    assert_clean_verdict(verdict)
    return verdict


def _edited(edit: Edit) -> bytes:
    package = mutants.load_package(AUTHOR)
    tree = mutants.parse_der(package.signature)
    edit(tree)
    return mutants.replace_signature(package, tree.encode())


def _primary_algorithm(tree: mutants.Node) -> mutants.Node:
    signer = mutants.first_signer(mutants.signed_data(tree))
    assert signer.children is not None
    return signer.children[4]  # signatureAlgorithm


def _set_algorithm(oid: str, parameters: bytes | None = None) -> Edit:
    def edit(tree: mutants.Node) -> None:
        algorithm = _primary_algorithm(tree)
        algorithm.children = [mutants.parse_der(mutants.oid_der(oid))]
        if parameters is not None:
            algorithm.children.append(mutants.parse_der(parameters))
    return edit


def _timestamp_signer(tree: mutants.Node) -> mutants.Node:
    token = mutants.unsigned_attribute_value(mutants.first_signer(mutants.signed_data(tree)),
                                             mutants.oid_der(oids.SIGNATURE_TIMESTAMP_TOKEN))
    return mutants.first_signer(mutants.signed_data(token))


def test_untouched_package_is_valid(tmp_path: Path, trust: TrustContext) -> None:
    verdict = _verify(_edited(lambda tree: None), tmp_path, trust)
    assert verdict.valid, verdict.findings


# --- SignerInfo signature algorithm: .NET's CmsSignature table ----------------------------------------------------

@pytest.mark.parametrize(("oid", "parameters"), [
    (oids.SHA256_WITH_RSA, None),  # names the digest the SignerInfo uses (SHA-256): .NET accepts it
    (oids.RSA_ENCRYPTION, b"\x05\x00"),  # NULL parameters
], ids=["sha256WithRSA", "rsaEncryption-NULL"])
def test_algorithms_dotnet_accepts(oid: str, parameters: bytes | None, tmp_path: Path, trust: TrustContext) -> None:
    verdict = _verify(_edited(_set_algorithm(oid, parameters)), tmp_path, trust)
    assert verdict.valid, verdict.findings


@pytest.mark.parametrize(("oid", "parameters"), [
    ("1.2.840.113549.1.1.99", None),  # unknown: nuseal used to fall back to PKCS#1 v1.5 and accept it
    ("1.2.840.113549.1.2.5", None),  # an MD5 OID that is no signature algorithm at all
    (oids.SHA384_WITH_RSA, None),  # names SHA-384, the SignerInfo digest is SHA-256
    (oids.RSA_ENCRYPTION, b"\x04\x00"),  # PKCS#1 parameters other than NULL
    ("1.2.840.113549.1.1.10", None),  # RSASSA-PSS without parameters
    ("1.2.840.10045.4.3.2", None),  # ECDSA with an RSA key
], ids=["unknown", "not-a-signature-oid", "digest-mismatch", "non-null-parameters", "pss-no-parameters",
        "ecdsa-with-rsa-key"])
def test_algorithms_dotnet_refuses_fail_the_signature_check(oid: str, parameters: bytes | None, tmp_path: Path,
                                                            trust: TrustContext) -> None:
    verdict = _verify(_edited(_set_algorithm(oid, parameters)), tmp_path, trust)
    assert _error_codes(verdict) == {"NU3012"}, verdict.findings


# --- eContentType: not compared with the content-type attribute, as in .NET and NuGet ------------------------------

def test_econtent_type_is_not_compared_with_the_content_type_attribute(tmp_path: Path, trust: TrustContext) -> None:
    def edit(tree: mutants.Node) -> None:
        encap = mutants.signed_data(tree).children[2]  # type: ignore[index]
        assert encap.children is not None
        encap.children[0] = mutants.parse_der(mutants.oid_der("1.2.840.113549.1.7.5"))  # digestedData

    verdict = _verify(_edited(edit), tmp_path, trust)
    assert verdict.valid, verdict.findings


# --- malformed DER .NET's decoder reads: refused when the signature is loaded -------------------------------------

def test_malformed_digest_algorithms_entry_is_nu3003(tmp_path: Path, trust: TrustContext) -> None:
    def edit(tree: mutants.Node) -> None:
        digest_algorithms = mutants.signed_data(tree).children[1]  # type: ignore[index]
        assert digest_algorithms.children is not None
        digest_algorithms.children[0].children = None
        digest_algorithms.children[0].content = b"\x04\x01\x00"  # an OCTET STRING where the OID belongs

    assert _error_codes(_verify(_edited(edit), tmp_path, trust)) == {"NU3003"}


def test_malformed_timestamp_signer_version_is_nu3021(tmp_path: Path, trust: TrustContext) -> None:
    def edit(tree: mutants.Node) -> None:
        version = _timestamp_signer(tree).children[0]  # type: ignore[index]
        version.tag = b"\x04"  # INTEGER → OCTET STRING

    verdict = _verify(_edited(edit), tmp_path, trust)
    assert "NU3021" in _error_codes(verdict), verdict.findings
    assert not verdict.valid


# --- signer identifiers: .NET compares issuer names ordinally -----------------------------------------------------

def test_timestamp_signer_issuer_name_is_case_sensitive(tmp_path: Path, trust: TrustContext) -> None:
    def edit(tree: mutants.Node) -> None:
        sid = _timestamp_signer(tree).children[1]  # type: ignore[index]
        issuer = sid.children[0]  # type: ignore[index]
        for node in issuer.walk():
            if node.tag in (b"\x13", b"\x0c") and node.content.startswith(b"DigiCert"):
                node.content = b"DIGICERT" + node.content[8:]
                return
        raise AssertionError("no DigiCert string in the timestamp signer's issuer")

    verdict = _verify(_edited(edit), tmp_path, trust)
    assert "NU3020" in _error_codes(verdict), verdict.findings


# --- the signature entry's zip records ----------------------------------------------------------------------------

ZIP64_EXTRA = b"\x01\x00\x10\x00" + bytes(16)  # header id 0x0001, 16 bytes: two 8-byte sizes


def test_zip64_extra_fields_in_the_signature_entry_are_accepted(tmp_path: Path, trust: TrustContext) -> None:
    data = mutants.insert_signature_extra(mutants.load_package(AUTHOR), ZIP64_EXTRA, local=True, central=True)
    verdict = _verify(data, tmp_path, trust)
    assert verdict.valid, verdict.findings  # NuGet never looks at zip64 markers when verifying


def test_zip64_sized_signature_entry_is_bounded(tmp_path: Path, trust: TrustContext) -> None:
    data = mutants.insert_signature_extra(mutants.load_package(AUTHOR), ZIP64_EXTRA, local=True, central=True,
                                          sizes=0xFFFFFFFF)
    verdict = _verify(data, tmp_path, trust)
    assert _error_codes(verdict) == {"NU3003"}
    assert f"at most {MAX_SIGNATURE_BYTES} bytes" in verdict.findings[0].message


# --- the size bound -----------------------------------------------------------------------------------------------

def _with_unsigned_padding(size: int) -> Edit:
    """An extra unsigned attribute (not covered by any signature) holding ``size`` bytes."""
    def edit(tree: mutants.Node) -> None:
        signer = mutants.first_signer(mutants.signed_data(tree))
        unsigned = next(c for c in signer.children or () if c.tag == b"\xa1")
        assert unsigned.children is not None
        value = mutants.Node(b"\x04", b"\x00" * size, 0, 0)
        attribute = mutants.Node(b"\x30", b"", 0, 0, [mutants.parse_der(mutants.oid_der("1.3.6.1.4.1.99999.1")),
                                                      mutants.Node(b"\x31", b"", 0, 0, [value])])
        unsigned.children.append(attribute)
    return edit


def test_large_signature_below_the_bound_verifies(tmp_path: Path, trust: TrustContext) -> None:
    verdict = _verify(_edited(_with_unsigned_padding(1024 * 1024)), tmp_path, trust)
    assert verdict.valid, verdict.findings


def test_signature_above_the_bound_is_nu3003(tmp_path: Path, trust: TrustContext) -> None:
    verdict = _verify(_edited(_with_unsigned_padding(MAX_SIGNATURE_BYTES)), tmp_path, trust)
    assert _error_codes(verdict) == {"NU3003"}
    assert "nuseal reads signatures of at most" in verdict.findings[0].message
