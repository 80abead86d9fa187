"""SignerInfo signature algorithms as .NET's ``SignedCms`` verifies them, and the raw signature check.

.NET (``CmsSignature``) knows a fixed set of SignerInfo signature algorithm OIDs; any other OID fails the check
(``Cryptography_Cms_UnknownAlgorithm``), which NuGet reports as NU3012 (NU3021 for a timestamp). An OID that names
a hash (``sha256WithRSAEncryption``, ``ecdsa-with-SHA384``) must agree with the SignerInfo digest algorithm;
PKCS#1 v1.5 parameters must be absent or NULL; RSASSA-PSS parameters must repeat the digest algorithm (also in
MGF1), use a trailer of 1 and a salt as long as the digest. nuseal applies the same table (docs/decisions.md,
"SignerInfo signature algorithms").
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import Certificate

from nuseal import oids
from nuseal.cms.der import ASN1_ERRORS, Algorithm
from nuseal.x509 import certs

RSA_PSS = "1.2.840.113549.1.1.10"
MGF1 = "1.2.840.113549.1.1.8"

#: PKCS#1 v1.5 OIDs .NET accepts, with the digest each one requires (None: any digest).
RSA_PKCS1: dict[str, str | None] = {
    oids.RSA_ENCRYPTION: None,
    "1.2.840.113549.1.1.5": "sha1",
    oids.SHA256_WITH_RSA: "sha256",
    oids.SHA384_WITH_RSA: "sha384",
    oids.SHA512_WITH_RSA: "sha512",
}
#: ECDSA OIDs .NET accepts, with the digest each one requires (None: any digest).
ECDSA: dict[str, str | None] = {
    "1.2.840.10045.2.1": None,  # id-ecPublicKey
    "1.2.840.10045.4.1": "sha1",
    "1.2.840.10045.4.3.2": "sha256",
    "1.2.840.10045.4.3.3": "sha384",
    "1.2.840.10045.4.3.4": "sha512",
}

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}


def verify_raw_signature(certificate: Certificate, algorithm: Algorithm, digest_oid: str, digest_name: str,
                         signature: bytes, data: bytes) -> str | None:
    """Check ``signature`` over ``data`` with the certificate's key as .NET's ``SignerInfo.CheckSignature`` does.
    Returns None when it verifies, else why not (the reason only feeds debugging; NuGet reports one code)."""
    hash_type = _HASHES.get(digest_name)
    if hash_type is None:
        return f"unsupported digest algorithm {digest_name}"
    key = certs.public_key(certificate)
    if key is None:
        return "the signer certificate's public key cannot be decoded"
    oid = algorithm.oid
    try:
        if oid in RSA_PKCS1 or oid == RSA_PSS:
            if not isinstance(key, rsa.RSAPublicKey):
                return "the signer certificate does not have an RSA key"
            problem = _rsa_problem(algorithm, digest_oid, digest_name)
            if problem is not None:
                return problem
            pad: padding.AsymmetricPadding = (
                padding.PSS(padding.MGF1(hash_type()), hash_type().digest_size) if oid == RSA_PSS
                else padding.PKCS1v15())
            key.verify(signature, data, pad, hash_type())
        elif oid in ECDSA:
            if not isinstance(key, ec.EllipticCurvePublicKey):
                return "the signer certificate does not have an EC key"
            implied = ECDSA[oid]
            if implied is not None and implied != digest_name:
                return f"signature algorithm {oid} requires {implied}, the digest algorithm is {digest_name}"
            key.verify(signature, data, ec.ECDSA(hash_type()))
        else:
            return f"unknown signature algorithm {oid}"
    except InvalidSignature:
        return "signature does not match"
    except (ValueError, UnsupportedAlgorithm, TypeError) as exc:
        return f"the signature cannot be checked: {exc}"
    return None


def _rsa_problem(algorithm: Algorithm, digest_oid: str, digest_name: str) -> str | None:
    if algorithm.oid != RSA_PSS:
        implied = RSA_PKCS1[algorithm.oid]
        if implied is not None and implied != digest_name:
            return f"signature algorithm {algorithm.oid} requires {implied}, the digest algorithm is {digest_name}"
        if algorithm.parameters not in (None, b"\x05\x00"):
            return "PKCS#1 v1.5 signature algorithm parameters must be absent or NULL"
        return None
    if algorithm.parameters is None:
        return "RSASSA-PSS parameters are missing"
    from asn1crypto import algos  # only for RSASSA-PSS (rare): keeps asn1crypto out of verify's start-up

    try:
        params = algos.RSASSAPSSParams.load(algorithm.parameters, strict=True)
        hash_oid = params["hash_algorithm"]["algorithm"].dotted
        mgf = params["mask_gen_algorithm"]
        mgf_oid = mgf["algorithm"].dotted
        mgf_hash = mgf["parameters"]["algorithm"].dotted if mgf_oid == MGF1 else None
        salt = int(params["salt_length"].native)
        trailer = params["trailer_field"].native
    except ASN1_ERRORS:
        return "RSASSA-PSS parameters cannot be decoded"
    if hash_oid != digest_oid or mgf_hash != digest_oid:
        return "RSASSA-PSS parameters name another hash than the digest algorithm"
    if trailer not in (1, "trailer_field_bc"):
        return "RSASSA-PSS trailer field must be 1"
    if mgf_oid != MGF1:
        return f"unsupported mask generation function {mgf_oid}"
    if salt != _HASHES[digest_name]().digest_size:
        return "RSASSA-PSS salt length must equal the digest length"
    return None
