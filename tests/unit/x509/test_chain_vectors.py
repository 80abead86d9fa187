"""Real signed packages chain to the bundled .NET SDK roots (spec §5.3, §6.4, §7.2).

Every author/repository signer and repository countersigner must chain to a root of the default code-signing
bundle with usage codeSigning, and every timestamp signer to a root of the timestamping bundle with usage
timeStamping. Time validity is recorded but ignored (``IgnoreNotTimeValid``). NuGet's own test fixtures that
EXPECTED.tsv marks as untrusted (NU3018 for the signer, NU3028 for the timestamp) must *not* chain to a root.
"""

from __future__ import annotations

import csv
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from tests.conftest import VECTORS

from nuseal import oids
from nuseal.cms.parse import PrimarySignature, load_primary_signature
from nuseal.x509.chain import ChainResult, ChainStatus, build_chain
from nuseal.x509.roots import default_trust_store

NOW = datetime.now(UTC)
IGNORED = ChainStatus.NOT_TIME_VALID


def _rows() -> list[dict[str, str]]:
    with (VECTORS / "EXPECTED.tsv").open(newline="") as handle:
        return [row for row in csv.DictReader(handle, delimiter="\t") if row["kind"] in ("author", "repository")]


ROWS = _rows()


def _is_test_fixture(row: dict[str, str]) -> bool:
    """NuGet's fixtures signed with test certificates: the ones that fail ``verify``. Only the codes EXPECTED.tsv
    names (NU3018 signer, NU3028 timestamp) say which of their chains is untrusted; the others are not asserted."""
    return row["path"].startswith("fixtures/") and row["verify_exit"] != "0"


def _signature(vectors: Path, row: dict[str, str]) -> PrimarySignature:
    with zipfile.ZipFile(vectors / row["path"]) as archive:
        return load_primary_signature(archive.read(".signature.p7s"))


def _timestamp_signer(token: bytes) -> tuple[x509.Certificate, list[x509.Certificate]]:
    signed_data = cms.ContentInfo.load(token)["content"]
    certificates = [x509.load_der_x509_certificate(c.chosen.dump()) for c in signed_data["certificates"]]
    sid = signed_data["signer_infos"][0]["sid"]
    for certificate in certificates:
        if sid.name == "issuer_and_serial_number":
            if certificate.serial_number == sid.chosen["serial_number"].native:
                return certificate, certificates
        else:
            ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            if ski == sid.chosen.native:
                return certificate, certificates
    raise AssertionError("timestamp signer certificate not found in the token")


def _code_signing_chain(leaf: x509.Certificate, signature: PrimarySignature) -> ChainResult:
    return build_chain(
        leaf, extra_certificates=signature.certificates, trust_anchors=default_trust_store().code_signing,
        usage_eku=oids.CODE_SIGNING_EKU, verification_time=NOW, revocation=None,
    )  # fmt: skip


def _assert_trusted(result: ChainResult, anchors: tuple[x509.Certificate, ...]) -> None:
    assert result.status & ~IGNORED == ChainStatus.NO_ERROR, result.status_messages()
    assert result.trusted
    assert len(result.elements) >= 2
    assert result.root in anchors


def test_expected_rows_were_found() -> None:
    assert len(ROWS) >= 20


@pytest.mark.parametrize("row", ROWS, ids=[r["path"] for r in ROWS])
def test_signer_chain(vectors: Path, row: dict[str, str]) -> None:
    signature = _signature(vectors, row)
    assert signature.signer_certificate is not None
    result = _code_signing_chain(signature.signer_certificate, signature)
    if "NU3018" in row["must_codes"]:
        assert not result.trusted
        assert result.status & (ChainStatus.UNTRUSTED_ROOT | ChainStatus.PARTIAL_CHAIN)
    elif not _is_test_fixture(row):
        _assert_trusted(result, default_trust_store().code_signing)


COUNTERSIGNED = [r for r in ROWS if r["countersignature"] == "repository"]


@pytest.mark.parametrize("row", COUNTERSIGNED, ids=[r["path"] for r in COUNTERSIGNED])
def test_countersigner_chain(vectors: Path, row: dict[str, str]) -> None:
    signature = _signature(vectors, row)
    countersignature = signature.countersignature()
    assert countersignature is not None and countersignature.signer_certificate is not None
    _assert_trusted(
        _code_signing_chain(countersignature.signer_certificate, signature), default_trust_store().code_signing
    )


@pytest.mark.parametrize("row", ROWS, ids=[r["path"] for r in ROWS])
def test_timestamp_chains(vectors: Path, row: dict[str, str]) -> None:
    signature = _signature(vectors, row)
    tokens = list(signature.timestamp_tokens)
    countersignature = signature.countersignature()
    if countersignature is not None:
        tokens += countersignature.signer.timestamp_tokens
    anchors = default_trust_store().timestamping
    for token in tokens:
        signer, certificates = _timestamp_signer(token)
        result = build_chain(
            signer, extra_certificates=certificates, trust_anchors=anchors, usage_eku=oids.TIME_STAMPING_EKU,
            verification_time=NOW, revocation=None,
        )  # fmt: skip
        if "NU3028" in row["must_codes"]:
            assert not result.trusted
        elif not _is_test_fixture(row):
            _assert_trusted(result, anchors)
            # The same TSA certificate is not acceptable for code signing usage when it restricts its EKU.
            assert result.elements[0].status & ChainStatus.NOT_VALID_FOR_USAGE == ChainStatus.NO_ERROR
