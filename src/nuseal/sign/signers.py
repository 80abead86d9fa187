"""Signer backends: one raw-sign method each, so the CMS assembly lives in one place (``nuseal.cms.build``).

A ``Signer`` holds a signing certificate, the chain to embed (leaf first) and can sign bytes with RSA
PKCS#1 v1.5 over HASH(data). Backends: ``PfxSigner`` (PKCS#12), ``PemSigner`` (PEM key + certificates, one
combined file or several) and ``Pkcs11Signer`` (a token through python-pkcs11, e.g. SoftHSM2).

Certificate selection (``select_certificate``) mirrors ``--certificate-fingerprint`` (spec §7.1): 40 hex
digits are SHA-1 (accepted with warning NU3043), 64/96/128 are SHA-256/384/512, anything else is an error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from nuseal.codes import NuCode
from nuseal.enums import HashAlgorithmName
from nuseal.errors import CertificateError, SigningError
from nuseal.findings import Finding, Severity
from nuseal.record import Struct, field
from nuseal.sign import pfx

_HASHES: dict[HashAlgorithmName, type[hashes.HashAlgorithm]] = {
    HashAlgorithmName.SHA256: hashes.SHA256,
    HashAlgorithmName.SHA384: hashes.SHA384,
    HashAlgorithmName.SHA512: hashes.SHA512,
}
_FINGERPRINT_HASHES = {40: "sha1", 64: "sha256", 96: "sha384", 128: "sha512"}


class Signer(Protocol):
    """What a key backend supplies: the certificate, the chain to embed and raw RSA signing."""

    @property
    def certificate(self) -> x509.Certificate: ...

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """Certificates to embed, leaf first (the leaf included)."""
        ...

    def sign_raw(self, data: bytes, hash_algorithm: HashAlgorithmName) -> bytes:
        """RSA PKCS#1 v1.5 signature over HASH(data)."""
        ...


def fingerprint(certificate: x509.Certificate, algorithm: str = "sha256") -> str:
    """Upper-case hex fingerprint of the certificate's DER, as NuGet prints it."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    return hashlib.new(algorithm, der).hexdigest().upper()


def check_signature(
    certificate: x509.Certificate, data: bytes, signature: bytes, hash_algorithm: HashAlgorithmName
) -> None:
    """Verify a fresh raw signature against the certificate: catches a key that does not match (NU3001)."""
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise CertificateError(
            f"the signing certificate {fingerprint(certificate)} does not have an RSA key", NuCode.NU3014
        )
    try:
        public_key.verify(signature, data, padding.PKCS1v15(), _HASHES[hash_algorithm]())
    except InvalidSignature as exc:
        raise SigningError(
            f"the private key does not match the signing certificate {fingerprint(certificate)}",
            NuCode.NU3001,
        ) from exc


# --- certificate selection -----------------------------------------------------------------------------


class Selection(Struct, frozen=True):
    """The chosen certificate plus any warnings that choosing it produced (NU3043 for SHA-1)."""

    certificate: x509.Certificate
    warnings: tuple[Finding, ...] = ()


def fingerprint_algorithm(text: str) -> str:
    """hashlib name a fingerprint's length selects; ``SigningError`` NU3043 when invalid."""
    cleaned = text.strip()
    algorithm = _FINGERPRINT_HASHES.get(len(cleaned))
    if algorithm is None or any(ch not in "0123456789abcdefABCDEF" for ch in cleaned):
        raise SigningError(
            f"Invalid certificate fingerprint {text!r}: expected 64, 96 or 128 hexadecimal characters "
            "(SHA-256, SHA-384 or SHA-512).",
            NuCode.NU3043,
        )
    return algorithm


def select_certificate(
    candidates: Sequence[x509.Certificate],
    *,
    public_key: rsa.RSAPublicKey | None,
    wanted_fingerprint: str | None,
    source: str,
) -> Selection:
    """Pick the signing certificate among ``candidates`` (all certificates found in ``source``).

    Without a fingerprint: the certificate whose public key matches the private key. With one: the first
    certificate with that fingerprint (case-insensitive). Raises ``SigningError`` NU3001 naming the source.
    """
    warnings: list[Finding] = []
    if wanted_fingerprint is not None:
        algorithm = fingerprint_algorithm(wanted_fingerprint)
        if algorithm == "sha1":
            # NuGet 6.12 deprecates SHA-1 fingerprints with a warning (6.13+ makes it an error); we warn.
            warnings.append(
                Finding(
                    NuCode.NU3043,
                    Severity.WARNING,
                    "The SHA-1 certificate fingerprint option is deprecated and will be removed in a "
                    "future version: use a SHA-256, SHA-384 or SHA-512 fingerprint.",
                )
            )
        matches = [c for c in candidates if fingerprint(c, algorithm) == wanted_fingerprint.strip().upper()]
        if not matches:
            raise SigningError(
                f"No certificate with fingerprint {wanted_fingerprint} was found in {source}.", NuCode.NU3001
            )
        chosen = matches[0]
        if public_key is not None and not _same_key(chosen, public_key):
            raise SigningError(
                f"The certificate with fingerprint {wanted_fingerprint} in {source} does not match its "
                "private key.",
                NuCode.NU3001,
            )
        return Selection(chosen, tuple(warnings))
    if public_key is None:
        if not candidates:
            raise SigningError(f"No certificate was found in {source}.", NuCode.NU3001)
        return Selection(candidates[0])
    for candidate in candidates:
        if _same_key(candidate, public_key):
            return Selection(candidate)
    raise SigningError(f"No certificate matching the private key was found in {source}.", NuCode.NU3001)


def _same_key(certificate: x509.Certificate, public_key: rsa.RSAPublicKey) -> bool:
    return bool(certificate.public_key() == public_key)


def order_chain(leaf: x509.Certificate, pool: Sequence[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    """``leaf`` then its issuers found in ``pool``, following issuer names and signatures, up to a root."""
    chain = [leaf]
    current = leaf
    while current.issuer != current.subject:
        issuer = next(
            (c for c in pool if c.subject == current.issuer and c not in chain and _issued(current, c)), None
        )
        if issuer is None:
            break
        chain.append(issuer)
        current = issuer
    return tuple(chain)


def _issued(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


# --- in-memory key -------------------------------------------------------------------------------------


class KeySigner(Struct, frozen=True):
    """A signer over an in-memory RSA private key (what PFX and PEM files load into)."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    warnings: tuple[Finding, ...] = field(default=())

    def sign_raw(self, data: bytes, hash_algorithm: HashAlgorithmName) -> bytes:
        return self.key.sign(data, padding.PKCS1v15(), _HASHES[hash_algorithm]())

    def __reduce__(self) -> tuple[Any, ...]:
        # For worker processes that do not inherit memory (sign_batch under forkserver/spawn): cryptography's keys
        # and certificates do not pickle, so they travel as DER over the pool's local pipe.
        key = self.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        ders = tuple(c.public_bytes(serialization.Encoding.DER) for c in (self.certificate, *self.chain))
        return (_rebuild_key_signer, (key, ders, self.warnings))


def _rebuild_key_signer(key: bytes, ders: tuple[bytes, ...], warnings: tuple[Finding, ...]) -> KeySigner:
    certificates = [x509.load_der_x509_certificate(d) for d in ders]
    loaded = serialization.load_der_private_key(key, password=None)
    return KeySigner(_require_rsa(loaded, "a pickled signer"), certificates[0], tuple(certificates[1:]), warnings)


def _require_rsa(key: object, source: str) -> rsa.RSAPrivateKey:
    if not isinstance(key, rsa.RSAPrivateKey):
        # NuGet requires RSA >= 2048 (NU3014); an EC/Ed key cannot meet that.
        raise CertificateError(
            f"The private key in {source} is not an RSA key: NuGet signatures need RSA (2048 bits or more).",
            NuCode.NU3014,
        )
    return key


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise SigningError(f"The certificate file {path} was not found.", NuCode.NU3001) from exc
    except OSError as exc:
        raise SigningError(
            f"The certificate file {path} could not be read: {exc.strerror}.", NuCode.NU3001
        ) from exc


class PfxSigner:
    """Loads a PKCS#12 (``.pfx``/``.p12``) file: key, certificate and any extra chain certificates."""

    @staticmethod
    def load(path: Path, password: str | None = None, *, fingerprint: str | None = None) -> KeySigner:
        """``SigningError`` NU3001 for a missing file, a wrong password or no usable key/certificate."""
        data = _read(path)
        try:
            # Without cryptography's RSA prime tests for the usual file (sign.pfx: ~45 ms of start-up); the key is
            # checked against the certificate by its first signature (sign.common.sign_raw_checked).
            key, cert, extra = pfx.load_key_and_certificates(
                data, password.encode() if password is not None else None
            )
        except ValueError as exc:
            raise SigningError(
                f"The certificate file {path} could not be opened: the password is incorrect or the "
                "file is not a valid PKCS#12 (PFX) file.",
                NuCode.NU3001,
            ) from exc
        if key is None:
            raise SigningError(f"The certificate file {path} does not contain a private key.", NuCode.NU3001)
        rsa_key = _require_rsa(key, str(path))
        pool = ([cert] if cert is not None else []) + list(extra)
        selection = select_certificate(
            pool, public_key=rsa_key.public_key(), wanted_fingerprint=fingerprint, source=str(path)
        )
        return KeySigner(
            rsa_key, selection.certificate, order_chain(selection.certificate, pool), selection.warnings
        )


class PemSigner:
    """Loads PEM files: one combined file (key + certificates) or a key file plus certificate/chain files."""

    @staticmethod
    def load(
        paths: Sequence[Path], password: str | None = None, *, fingerprint: str | None = None
    ) -> KeySigner:
        """Every file may hold any mix of PEM keys and certificates; exactly one private key is expected."""
        keys: list[rsa.RSAPrivateKey] = []
        pool: list[x509.Certificate] = []
        for path in paths:
            data = _read(path)
            if b"PRIVATE KEY-----" in data:
                keys.append(_load_pem_key(data, password, path))
            if b"-----BEGIN CERTIFICATE-----" in data:
                try:
                    pool.extend(x509.load_pem_x509_certificates(data))
                except ValueError as exc:
                    raise SigningError(
                        f"The certificates in {path} could not be read: {exc}.", NuCode.NU3001
                    ) from exc
        source = ", ".join(str(p) for p in paths)
        if len(keys) != 1:
            raise SigningError(
                f"Expected exactly one private key in {source}, found {len(keys)}.", NuCode.NU3001
            )
        selection = select_certificate(
            pool, public_key=keys[0].public_key(), wanted_fingerprint=fingerprint, source=source
        )
        return KeySigner(
            keys[0], selection.certificate, order_chain(selection.certificate, pool), selection.warnings
        )


def _load_pem_key(data: bytes, password: str | None, path: Path) -> rsa.RSAPrivateKey:
    try:
        # No RSA prime tests (~45 ms): the key is checked against its certificate by its first signature.
        key = serialization.load_pem_private_key(data, password.encode() if password is not None else None,
                                                 unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError) as exc:
        raise SigningError(
            f"The private key in {path} could not be read: the password is incorrect or missing, "
            "or the key is not valid PEM.",
            NuCode.NU3001,
        ) from exc
    return _require_rsa(key, str(path))


# --- PKCS#11 -------------------------------------------------------------------------------------------

_PKCS11_MECHANISMS = {
    HashAlgorithmName.SHA256: "SHA256_RSA_PKCS",
    HashAlgorithmName.SHA384: "SHA384_RSA_PKCS",
    HashAlgorithmName.SHA512: "SHA512_RSA_PKCS",
}


class Pkcs11Config(Struct, frozen=True):
    """Where the key lives: module path, token label, key label or hex id, and the user PIN."""

    module: Path
    token_label: str
    pin: str
    key_label: str | None = None
    key_id: bytes | None = None


class Pkcs11Signer:
    """Signs on a PKCS#11 token (the private key never leaves it). One session per signer; call ``close()``.

    The certificate comes from the token (same label/id as the key) unless certificates are given.
    """

    def __init__(
        self,
        config: Pkcs11Config,
        *,
        certificates: Sequence[x509.Certificate] = (),
        fingerprint: str | None = None,
    ) -> None:
        import pkcs11  # optional dependency: only needed for this backend
        from pkcs11 import Attribute, ObjectClass

        self._pkcs11 = pkcs11
        where = f"PKCS#11 token {config.token_label!r} ({config.module})"
        try:
            lib = pkcs11.lib(str(config.module))
            token = lib.get_token(token_label=config.token_label)
            self._session = token.open(user_pin=config.pin)
        except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
            raise SigningError(f"Cannot open {where}: {type(exc).__name__} {exc}.", NuCode.NU3001) from exc
        query: dict[Any, Any] = {}
        if config.key_label is not None:
            query[Attribute.LABEL] = config.key_label
        if config.key_id is not None:
            query[Attribute.ID] = config.key_id
        try:
            self._key = self._session.get_key(object_class=ObjectClass.PRIVATE_KEY, **_key_args(query))
        except (pkcs11.PKCS11Error, KeyError) as exc:
            self.close()
            raise SigningError(
                f"No unique private key {_describe(config)} on {where}: {type(exc).__name__}.", NuCode.NU3001
            ) from exc
        pool = list(certificates)
        if not pool:
            pool = [
                x509.load_der_x509_certificate(obj[Attribute.VALUE])
                for obj in self._session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE})
            ]
        # The token's RSA private key object carries its modulus and exponent: match the certificate by key.
        public_key = rsa.RSAPublicNumbers(
            int.from_bytes(self._key[Attribute.PUBLIC_EXPONENT], "big"),
            int.from_bytes(self._key[Attribute.MODULUS], "big"),
        ).public_key()
        try:
            selection = select_certificate(
                pool, public_key=public_key, wanted_fingerprint=fingerprint, source=where
            )
        except SigningError:
            self.close()
            raise
        self._certificate = selection.certificate
        self._chain = order_chain(selection.certificate, pool)
        self.warnings = selection.warnings

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._chain

    def sign_raw(self, data: bytes, hash_algorithm: HashAlgorithmName) -> bytes:
        mechanism = getattr(self._pkcs11.Mechanism, _PKCS11_MECHANISMS[hash_algorithm])
        signature = self._key.sign(data, mechanism=mechanism)  # type: ignore[attr-defined]
        assert isinstance(signature, bytes)
        return signature

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Pkcs11Signer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _key_args(query: dict[Any, Any]) -> dict[str, Any]:
    from pkcs11 import Attribute

    args: dict[str, Any] = {}
    if Attribute.LABEL in query:
        args["label"] = query[Attribute.LABEL]
    if Attribute.ID in query:
        args["id"] = query[Attribute.ID]
    return args


def _describe(config: Pkcs11Config) -> str:
    parts = []
    if config.key_label is not None:
        parts.append(f"label {config.key_label!r}")
    if config.key_id is not None:
        parts.append(f"id {config.key_id.hex()}")
    return " and ".join(parts) or "(no label or id given)"
