
"""A realistic RepositorySignatures document: nuget.org's three repository certificates (vectors/EXPECTED.md,
validity and issuers from vectors/real/MANIFEST.tsv), fingerprints in lowercase hex as nuget.org lists them."""

from __future__ import annotations

from typing import Any

SHA256_OID = "2.16.840.1.101.3.4.2.1"
SHA512_OID = "2.16.840.1.101.3.4.2.3"
SUBJECT = "CN=NuGet.org Repository by Microsoft, O=NuGet.org Repository by Microsoft, L=Redmond, S=Washington, C=US"
_DIGICERT_SHA2 = "CN=DigiCert SHA2 Assured ID Code Signing CA, OU=www.digicert.com, O=DigiCert Inc, C=US"
_DIGICERT_G4 = "CN=DigiCert Trusted G4 Code Signing RSA4096 SHA384 2021 CA1, O=DigiCert, Inc., C=US"

NUGET_ORG_CERTIFICATES = [
    ("0e5f38f57dc1bcc806d8494f4f90fbcedd988b46760709cbeec6f4219aa6157d", _DIGICERT_SHA2,
     "2018-04-10T00:00:00.0000000Z", "2021-04-14T12:00:00.0000000Z"),
    ("5a2901d6ada3d18260b9c6dfe2133c95d74b9eef6ae0e5dc334c8454d1477df4", _DIGICERT_SHA2,
     "2021-02-16T00:00:00.0000000Z", "2024-05-15T23:59:59.0000000Z"),
    ("1f4b311d9acc115c8dc8018b5a49e00fce6da8e2855f9f014ca6f34570bc482d", _DIGICERT_G4,
     "2024-02-23T00:00:00.0000000Z", "2027-05-18T23:59:59.0000000Z"),
]
NUGET_ORG_FINGERPRINTS = [fp for fp, _, _, _ in NUGET_ORG_CERTIFICATES]


def repository_signatures_document(
    *,
    all_signed: bool = True,
    content_base: str = "https://api.nuget.org/v3-index/repository-signatures/certificates",
    extra_sha512: bool = False,
    certificates: list[tuple[str, str, str, str]] | None = None,
) -> dict[str, Any]:
    certs = []
    for fp, issuer, not_before, not_after in NUGET_ORG_CERTIFICATES if certificates is None else certificates:
        fps = {SHA256_OID: fp}
        if extra_sha512:
            fps[SHA512_OID] = "ab" * 64
        certs.append({"fingerprints": fps, "subject": SUBJECT, "issuer": issuer, "notBefore": not_before,
                      "notAfter": not_after, "contentUrl": f"{content_base}/{fp}.crt"})
    return {"allRepositorySigned": all_signed, "signingCertificates": certs}
