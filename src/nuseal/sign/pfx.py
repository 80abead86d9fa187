"""Loading a PKCS#12 (PFX) file without cryptography's RSA key check, for the usual form of the file.

``pkcs12.load_key_and_certificates`` tests an RSA key's primes (Miller-Rabin on p and q) on every load: ~45 ms of
CPU, a third of ``nuseal sign``'s start-up (issue 12), and cryptography offers no way to skip it for PKCS#12, only
for PEM/DER keys (``unsafe_skip_rsa_key_validation``). Signing does not need it: the first signature of every
in-memory key is verified against its certificate (``sign.common.sign_raw_checked``), and OpenSSL checks every
RSA-CRT result against the public key before returning it.

``load_key_and_certificates(data, password)`` gives what cryptography's function of that name gives. For the usual
file (an HMAC over the contents, one shrouded key bag in a plain part, X.509 certificate bags in plain or
password-encrypted parts, DER lengths, a non-empty ASCII password) it:

- checks the MAC itself (RFC 7292 appendix B.2 key derivation, then HMAC; ``hashlib``/``hmac``);
- has cryptography decrypt the key bag: its EncryptedPrivateKeyInfo goes to ``load_der_private_key`` (without the
  key check), exactly the PKCS#8 decryption OpenSSL's PKCS#12 parser runs on that bag;
- has cryptography decrypt each encrypted part: the part, verbatim, is the only content of a PFX given to
  ``pkcs12.load_key_and_certificates`` (no MAC: the whole file's was checked; no key: nothing to test);
- orders the certificates as OpenSSL's ``PKCS12_parse`` does: in bag order, the first whose public key is the key's
  becomes the certificate, the others the additional certificates.

No decryption is written here. Anything else (another bag type, BER lengths, a second key, no MAC, a legacy
encoding question such as a non-ASCII password) and any failure on the way (a wrong password, a MAC that does not
match, an error from cryptography) goes to cryptography's ``load_key_and_certificates`` on the whole file, which
gives the answer or the error as before. A bug here can only send a file down that path, or fail the first
signature's check against the certificate; the tests compare both paths on files written by cryptography and
OpenSSL (several algorithms, chains, passwords).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_der_private_key, pkcs12

from nuseal.cms.encode import octet_string, sequence, tlv
from nuseal.x509.der import ASN1_ERRORS, contents_of, tlvs

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

_DATA = bytes.fromhex("06092a864886f70d010701")  # id-data
_ENCRYPTED_DATA = bytes.fromhex("06092a864886f70d010706")  # id-encryptedData
_SHROUDED_KEY_BAG = bytes.fromhex("060b2a864886f70d010c0a0102")  # pkcs8ShroudedKeyBag
_CERT_BAG = bytes.fromhex("060b2a864886f70d010c0a0103")  # certBag
_X509_CERTIFICATE = bytes.fromhex("060a2a864886f70d01091601")  # x509Certificate (PKCS#9 certTypes)
_VERSION_3 = bytes.fromhex("020103")
#: MAC digest algorithms (the OID's TLV): hashlib name and the hash's block size (RFC 7292 B.2's v).
_MAC_HASHES = {
    bytes.fromhex("06052b0e03021a"): ("sha1", 64),
    bytes.fromhex("0609608648016503040201"): ("sha256", 64),
    bytes.fromhex("0609608648016503040202"): ("sha384", 128),
    bytes.fromhex("0609608648016503040203"): ("sha512", 128),
}
#: More MAC iterations than any file uses (OpenSSL writes 2048): a hostile count must not spin the hand-kept KDF.
_MAX_MAC_ITERATIONS = 1_000_000

Loaded = tuple["PrivateKeyTypes | None", "x509.Certificate | None", "list[x509.Certificate]"]


class _Unusual(Exception):
    """The file is not in the form this module reads: cryptography reads it."""


_FALLBACK: tuple[type[Exception], ...] = (_Unusual, UnsupportedAlgorithm, *ASN1_ERRORS)


def load_key_and_certificates(data: bytes, password: bytes | None) -> Loaded:
    """``pkcs12.load_key_and_certificates(data, password)``'s result, without the RSA key check for the usual file
    (see the module doc); its ``ValueError`` for a file it refuses."""
    try:
        return _usual(data, password)
    except _FALLBACK:
        return pkcs12.load_key_and_certificates(data, password)


def _usual(data: bytes, password: bytes | None) -> Loaded:
    if not password or not password.isascii() or b"\0" in password:
        raise _Unusual  # OpenSSL's handling of empty, absent and non-ASCII passwords is left to OpenSSL
    pfx = tlvs(contents_of(data, 0x30))
    if len(pfx) != 3 or pfx[0] != _VERSION_3:
        raise _Unusual  # no MAC (or something after it)
    auth_safe = _data_contents(pfx[1])
    _check_mac(pfx[2], auth_safe, password)
    key: PrivateKeyTypes | None = None
    certificates: list[x509.Certificate] = []
    for part in tlvs(contents_of(auth_safe, 0x30)):
        kind, _ = _content_info(part)
        if kind == _ENCRYPTED_DATA:
            certificates += _encrypted_certificates(part, password)
            continue
        if kind != _DATA:
            raise _Unusual
        for bag in tlvs(contents_of(_data_contents(part), 0x30)):
            bag_id, value = _bag(bag)
            if bag_id == _CERT_BAG:
                certificates.append(_certificate(value))
            elif bag_id == _SHROUDED_KEY_BAG and key is None:
                key = load_der_private_key(value, password, unsafe_skip_rsa_key_validation=True)
            else:
                raise _Unusual
    if key is None:
        raise _Unusual
    public = key.public_key()
    for index, certificate in enumerate(certificates):
        if certificate.public_key() == public:
            return key, certificate, certificates[:index] + certificates[index + 1 :]
    return key, None, certificates


def _content_info(value: bytes) -> tuple[bytes, bytes]:
    """(content type OID as its TLV, the [0] EXPLICIT content's TLV) of a ContentInfo."""
    fields = tlvs(contents_of(value, 0x30))
    if len(fields) != 2:
        raise _Unusual
    return fields[0], contents_of(fields[1], 0xA0)


def _data_contents(value: bytes) -> bytes:
    """The octets of an id-data ContentInfo (a primitive OCTET STRING: BER's constructed form is left to OpenSSL)."""
    kind, content = _content_info(value)
    if kind != _DATA:
        raise _Unusual
    return contents_of(content, 0x04)


def _bag(value: bytes) -> tuple[bytes, bytes]:
    """(bag type OID TLV, the bag value's TLV) of a SafeBag; its attributes (names, key ids) play no part here."""
    fields = tlvs(contents_of(value, 0x30))
    if len(fields) not in (2, 3):
        raise _Unusual
    inner = tlvs(contents_of(fields[1], 0xA0))
    if len(inner) != 1:
        raise _Unusual
    return fields[0], inner[0]


def _certificate(value: bytes) -> x509.Certificate:
    """The certificate of a CertBag; any certificate type other than X.509 is left to OpenSSL."""
    fields = tlvs(contents_of(value, 0x30))
    if len(fields) != 2 or fields[0] != _X509_CERTIFICATE:
        raise _Unusual
    return x509.load_der_x509_certificate(contents_of(contents_of(fields[1], 0xA0), 0x04))


def _encrypted_certificates(part: bytes, password: bytes) -> list[x509.Certificate]:
    """The certificates of an encryptedData part, decrypted by cryptography: the part is the only content of a PFX
    of its own, without a MAC (the file's was checked). A key found there is a form this module does not read."""
    alone = sequence(_VERSION_3, sequence(_DATA, tlv(0xA0, octet_string(sequence(part)))))
    try:
        key, certificate, others = pkcs12.load_key_and_certificates(alone, password)
    except (ValueError, UnsupportedAlgorithm):
        raise _Unusual from None
    if key is not None:
        raise _Unusual
    return ([certificate] if certificate is not None else []) + list(others)


def _check_mac(mac_data: bytes, auth_safe: bytes, password: bytes) -> None:
    """RFC 7292 §5 and appendix B.2: HMAC over the authenticated safe's octets with a key derived from the
    password as a BMPString (for ASCII: each character as two octets, then two zero octets)."""
    fields = tlvs(contents_of(mac_data, 0x30))
    if len(fields) not in (2, 3):
        raise _Unusual
    digest_info = tlvs(contents_of(fields[0], 0x30))
    if len(digest_info) != 2:
        raise _Unusual
    algorithm = tlvs(contents_of(digest_info[0], 0x30))
    if not 1 <= len(algorithm) <= 2 or (len(algorithm) == 2 and algorithm[1] != b"\x05\x00"):
        raise _Unusual
    known = _MAC_HASHES.get(algorithm[0])
    if known is None:
        raise _Unusual  # PBMAC1 or an unusual digest
    name, block = known
    expected = contents_of(digest_info[1], 0x04)
    salt = contents_of(fields[1], 0x04)
    iterations = int.from_bytes(contents_of(fields[2], 0x02), "big", signed=True) if len(fields) == 3 else 1
    if not 1 <= iterations <= _MAX_MAC_ITERATIONS or not salt:
        raise _Unusual
    size = hashlib.new(name).digest_size
    secret = b"".join(b"\0" + bytes((c,)) for c in password) + b"\0\0"
    key = _pkcs12_kdf(name, block, size, salt, secret, iterations)
    if not hmac.compare_digest(hmac.new(key, auth_safe, name).digest(), expected):
        raise _Unusual  # a wrong password or a damaged file: cryptography says which, in its words


def _pkcs12_kdf(name: str, block: int, size: int, salt: bytes, secret: bytes, iterations: int) -> bytes:
    """RFC 7292 appendix B.2 with ID 3 (MAC key) for a key of at most one digest (``size``): H^r(D || S || P), where
    D is the ID repeated to one block and S, P the salt and the password repeated to whole blocks."""

    def stretch(value: bytes) -> bytes:
        whole = block * -(-len(value) // block)
        return (value * -(-whole // len(value)))[:whole]

    hash_function = getattr(hashlib, name)
    digest = hash_function(bytes((3,)) * block + stretch(salt) + stretch(secret)).digest()
    for _ in range(iterations - 1):
        digest = hash_function(digest).digest()
    result: bytes = digest[:size]
    return result
