"""A nuseal author signature + repository countersignature next to a real nuget.org-signed package.

Compared: SignedData/SignerInfo versions, sid form, digest/signature algorithms (with their parameters),
signed-attribute OIDs in encoded order, the ESSCertIDv2 prefix, unsigned-attribute OIDs, timestamp placement,
the DER order of certificates and the zip entry layout (44/60-byte headers, signature entry last).
"""

from __future__ import annotations

import hashlib
import struct
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms, core

from nuseal.sign.author import AuthorSignRequest, sign_package
from nuseal.sign.repository import RepositorySignRequest, repo_sign_package
from nuseal.timestamp.client import HttpTimestamper
from tests.support.pki import IssuedCert, TestPki
from tests.support.servers import LoopbackServer
from tests.unit.sign.helpers import make_package, signature_value, signed_part, signer_for

REAL = "real/Microsoft.Bcl.AsyncInterfaces.8.0.0.nupkg"
COUNTERSIGNATURE = "1.2.840.113549.1.9.6"
TIMESTAMP = "1.2.840.113549.1.9.16.2.14"
SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"


def shape(info: cms.SignerInfo) -> dict[str, Any]:
    signed = info["signed_attrs"]
    ess = next(a for a in signed if a["type"].dotted == SIGNING_CERTIFICATE_V2)["values"][0].dump()
    unsigned = info["unsigned_attrs"]
    return {
        "version": info["version"].native,
        "sid": info["sid"].name,
        "digest": (info["digest_algorithm"]["algorithm"].dotted, info["digest_algorithm"]["parameters"].dump()),
        "signature": (
            info["signature_algorithm"]["algorithm"].dotted,
            info["signature_algorithm"]["parameters"].dump(),
        ),
        "signed": [a["type"].dotted for a in signed],
        "signed_der_sorted": [a.dump() for a in signed] == sorted(a.dump() for a in signed),
        # SigningCertificateV2 > certs > ESSCertIDv2 > explicit sha256 AlgorithmIdentifier without NULL.
        "ess_prefix": ess[ess.index(b"\x30\x0b\x06\x09") :][:15].hex(),
        "unsigned": [] if isinstance(unsigned, core.Void) else sorted(a["type"].dotted for a in unsigned),
    }


def countersigner(info: cms.SignerInfo) -> cms.SignerInfo:
    attribute = next(a for a in info["unsigned_attrs"] if a["type"].dotted == COUNTERSIGNATURE)
    return cms.SignerInfo.load(attribute["values"][0].dump())


def layout(path: Path) -> tuple[list[str], int, int]:
    """Entry names in CD order, and the signature entry's local header size and extra-field length."""
    with zipfile.ZipFile(path) as zf:
        names = [i.filename for i in zf.infolist()]
        offset = zf.getinfo(".signature.p7s").header_offset
    header = path.read_bytes()[offset : offset + 30]
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return names, 30 + name_len + extra_len, extra_len


@pytest.fixture(scope="module")
def ours(pki: TestPki, tsa_server: LoopbackServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = make_package(tmp_path_factory.mktemp("structure") / "Ours.1.0.0.nupkg")
    stamper = HttpTimestamper(pki.tsa_url)
    now = datetime.now(UTC)
    sign_package(path, path, AuthorSignRequest(signer_for(pki.leaf)), timestamper=stamper, now=now)
    repo: IssuedCert = pki.issue_leaf("structure-repository")
    request = RepositorySignRequest(
        signer_for(repo), "https://api.nuget.org/v3/index.json", ("dotnetframework", "Microsoft")
    )  # as on the real vector
    repo_sign_package(path, path, request, timestamper=stamper, now=now)
    return path


def test_cms_structure_matches_nuget_org(ours: Path, vectors: Path) -> None:
    mine = cms.ContentInfo.load(signed_part(ours))["content"]
    real = cms.ContentInfo.load(signed_part(vectors / REAL))["content"]
    assert mine["version"].native == real["version"].native == "v3"
    assert [d.dump() for d in mine["digest_algorithms"]] == [d.dump() for d in real["digest_algorithms"]]
    assert mine["encap_content_info"]["content_type"].native == real["encap_content_info"]["content_type"].native
    for signed_data in (mine, real):
        certs = [c.dump() for c in signed_data["certificates"]]
        assert certs == sorted(certs)  # .NET writes the certificate SET OF in DER order
    primary_mine, primary_real = mine["signer_infos"][0], real["signer_infos"][0]
    assert shape(primary_mine) == shape(primary_real)
    assert shape(countersigner(primary_mine)) == shape(countersigner(primary_real))
    assert shape(primary_mine)["unsigned"] == sorted([COUNTERSIGNATURE, TIMESTAMP])
    assert shape(countersigner(primary_mine))["unsigned"] == [TIMESTAMP]


def test_zip_layout_matches_nuget_org(ours: Path, vectors: Path) -> None:
    for path in (ours, vectors / REAL):
        names, lfh_size, extra = layout(path)
        assert names[-1] == ".signature.p7s"
        assert (lfh_size, extra) == (44, 0)
        data = path.read_bytes()
        cd_header = data[data.rindex(b"PK\x01\x02") :]
        name_len, extra_len, comment_len = struct.unpack("<HHH", cd_header[28:34])
        assert 46 + name_len + extra_len + comment_len == 60
        assert cd_header[46:60] == b".signature.p7s"


def test_openssl_verifies_signature_and_both_timestamps(ours: Path, pki_dir: Path, tmp_path: Path) -> None:
    signature = signed_part(ours)
    (tmp_path / "sig.p7s").write_bytes(signature)
    done = subprocess.run(
        ["openssl", "cms", "-verify", "-inform", "DER", "-in", str(tmp_path / "sig.p7s"),
         "-CAfile", str(pki_dir / "root.pem"), "-purpose", "any", "-out", str(tmp_path / "content")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    primary = cms.ContentInfo.load(signature)["content"]["signer_infos"][0]
    counter = countersigner(primary)
    for info, value in ((primary, signature_value(signature)), (counter, counter["signature"].native)):
        token = next(a for a in info["unsigned_attrs"] if a["type"].dotted == TIMESTAMP)["values"][0].dump()
        (tmp_path / "tok.der").write_bytes(token)
        done = subprocess.run(
            ["openssl", "ts", "-verify", "-digest", hashlib.sha256(value).hexdigest(), "-in", str(tmp_path / "tok.der"),
             "-token_in", "-CAfile", str(pki_dir / "root.pem"), "-untrusted", str(pki_dir / "intermediate.pem")],
            capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stdout + done.stderr
