"""Test helpers for signing: unsigned packages, signers from the test PKI, a minimal in-process TSA.

``LocalTimestamper`` is a deliberately small RFC 3161 token maker (asn1crypto + the PKI's TSA key) so the
signing tests do not depend on ``nuseal.timestamp``; it can be told to misbehave (wrong imprint, no
certificates) to exercise NU3019/NU3020.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from tests.support.pki import IssuedCert

from nuseal.cms.build import encode_attribute, signing_certificate_v2_value
from nuseal.oids import SIGNING_CERTIFICATE_V2
from nuseal.sign.signers import KeySigner, order_chain
from nuseal.verify.policy import HashAlgorithmName

NUSPEC = b"""<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">
  <metadata><id>Test.Package</id><version>1.0.0</version><authors>nuseal</authors>
  <description>test</description></metadata>
</package>
"""


def make_package(path: Path, *, entries: int = 3, payload: bytes = b"hello nuseal\n" * 50) -> Path:
    """A small unsigned .nupkg (one deflated, the rest stored)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("Test.Package.nuspec", NUSPEC, compress_type=zipfile.ZIP_DEFLATED)
        for index in range(entries - 1):
            zf.writestr(
                f"lib/net8.0/file{index}.txt", payload + bytes([index]), compress_type=zipfile.ZIP_STORED
            )
    return path


def signer_for(issued: IssuedCert) -> KeySigner:
    return KeySigner(issued.key, issued.cert, order_chain(issued.cert, issued.chain))


def signed_part(path: Path) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read(".signature.p7s")


def signature_value(signature: bytes) -> bytes:
    value: bytes = cms.ContentInfo.load(signature)["content"]["signer_infos"][0]["signature"].native
    return value


@dataclass
class LocalTimestamper:
    """An in-process TSA: token over HASH(data), signed by ``tsa`` with the chain embedded."""

    tsa: IssuedCert
    wrong_imprint: bool = False
    embed_certificates: bool = True
    gen_time: datetime | None = None
    calls: int = 0

    def timestamp(self, data: bytes, hash_algorithm: HashAlgorithmName) -> bytes:
        self.calls += 1
        digest = hashlib.new(hash_algorithm.hashlib_name, data).digest()
        if self.wrong_imprint:
            digest = bytes(len(digest))
        when = (self.gen_time or datetime.now(UTC)).replace(microsecond=0)
        tst_info = tsp.TSTInfo(
            {
                "version": "v1",
                "policy": "0.4.0.2023.1.1",
                "message_imprint": {
                    "hash_algorithm": algos.DigestAlgorithm({"algorithm": hash_algorithm.hashlib_name}),
                    "hashed_message": digest,
                },
                "serial_number": self.calls,
                "gen_time": when,
                "nonce": 1,
            }
        )
        content = tst_info.dump()
        attributes = cms.CMSAttributes(
            [
                cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
                cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": when})]}),
                cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(content).digest()]}),
                cms.CMSAttribute.load(
                    encode_attribute(
                        SIGNING_CERTIFICATE_V2, signing_certificate_v2_value(self.tsa.cert, "sha256")
                    )
                ),
            ]
        )
        to_sign = attributes.dump()
        signature = self.tsa.key.sign(to_sign, padding.PKCS1v15(), hashes.SHA256())
        tsa_cert = asn1_x509.Certificate.load(self.tsa.der)
        signer = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    {
                        "issuer_and_serial_number": {
                            "issuer": tsa_cert.issuer,
                            "serial_number": tsa_cert.serial_number,
                        }
                    }
                ),
                "digest_algorithm": {"algorithm": "sha256"},
                "signed_attrs": cms.CMSAttributes.load(to_sign),
                "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"},
                "signature": signature,
            }
        )
        signed_data = {
            "version": "v3",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {"content_type": "tst_info", "content": core.ParsableOctetString(content)},
            "signer_infos": [signer],
        }
        if self.embed_certificates:
            signed_data["certificates"] = [asn1_x509.Certificate.load(c.der) for c in _chain(self.tsa)]
        token: bytes = cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()
        return token


def _chain(issued: IssuedCert) -> list[IssuedCert]:
    chain = [issued]
    while chain[-1].issuer is not None and chain[-1].issuer is not chain[-1]:
        chain.append(chain[-1].issuer)
    return chain


def package_bytes_without_signature(path: Path) -> bytes:
    from nuseal.package.archive import write_unsigned

    out = io.BytesIO()
    with open(path, "rb") as f:
        write_unsigned(f, out)
    return out.getvalue()
