"""A declarative test PKI, built once per pytest session with ``cryptography``.

Shape (all backdated so that validation at a past moment works, spec/stack.md §3)::

    root ─┬─ intermediate ─┬─ leaf                (code signing; CDP + AIA-OCSP on loopback)
          │                ├─ tsa                 (critical timeStamping EKU)
          │                ├─ ocsp                (OCSPSigning EKU + id-pkix-ocsp-nocheck)
          │                └─ expired_leaf, not_yet_valid_leaf, revoked_leaf, weak_key_leaf (1024 bit),
          │                   wrong_eku_leaf (serverAuth), lifetime_eku_leaf, sha1_leaf, expired_tsa
    untrusted_root ── untrusted_leaf               (a second root that is not in the trust set)
    self_issued                                    (self-signed code-signing certificate)

The CRL / OCSP / caIssuers URLs embedded in the certificates point at loopback ports that are *reserved*
here (a socket bound to ``127.0.0.1:0`` per server) before any certificate is issued;
``tests.support.servers`` takes those sockets over. Revocation state is plain data in
:class:`RevocationRegistry`, so the OCSP responder and the CRL server answer from it and a test can revoke
a certificate at runtime (preferably one it minted itself with :meth:`TestPki.issue_leaf`, so that
session-wide certificates keep their state).
"""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import algos, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    NameOID,
    ObjectIdentifier,
)

CODE_SIGNING = ExtendedKeyUsageOID.CODE_SIGNING
TIME_STAMPING = ExtendedKeyUsageOID.TIME_STAMPING
OCSP_SIGNING = ExtendedKeyUsageOID.OCSP_SIGNING
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
LIFETIME_SIGNING = ObjectIdentifier("1.3.6.1.4.1.311.10.3.13")

BACKDATE = timedelta(days=60)
TEST_PASSWORD = "nuseal-test"


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def new_rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@dataclass(eq=False)
class IssuedCert:
    """One certificate of the test PKI with its key and its chain (leaf first, root last)."""

    name: str
    cert: x509.Certificate
    key: rsa.RSAPrivateKey
    issuer: IssuedCert | None

    @property
    def chain(self) -> list[x509.Certificate]:
        chain = [self.cert]
        node = self.issuer
        while node is not None and node is not self:
            chain.append(node.cert)
            node = node.issuer
        return chain

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    @property
    def sha256_fingerprint(self) -> str:
        """Upper-case hex, no separators, as NuGet prints it."""
        return hashlib.sha256(self.der).hexdigest().upper()

    @property
    def sha1_fingerprint(self) -> str:
        return hashlib.sha1(self.der).hexdigest().upper()

    @property
    def serial(self) -> int:
        return self.cert.serial_number

    def pfx_bytes(self, password: str | None = TEST_PASSWORD) -> bytes:
        """Modern PKCS#12 (PBES2 / AES-256-CBC, HMAC-SHA256): key, certificate and the rest of the chain."""
        if password is None:
            encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
        else:
            encryption = (
                serialization.PrivateFormat.PKCS12.encryption_builder()
                .kdf_rounds(2048)
                .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
                .hmac_hash(hashes.SHA256())
                .build(password.encode())
            )
        return pkcs12.serialize_key_and_certificates(
            self.name.encode(), self.key, self.cert, self.chain[1:] or None, encryption
        )

    def write_pfx(self, path: Path | str, password: str | None = TEST_PASSWORD) -> Path:
        path = Path(path)
        path.write_bytes(self.pfx_bytes(password))
        return path

    def write_pem_key_and_chain(self, directory: Path | str) -> PemFiles:
        """Write ``<name>.key.pem`` (PKCS#8, clear), ``<name>.pem`` and ``<name>.chain.pem`` (leaf..root)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        files = PemFiles(
            key=directory / f"{self.name}.key.pem",
            cert=directory / f"{self.name}.pem",
            chain=directory / f"{self.name}.chain.pem",
        )
        files.key.write_bytes(self.key_pem)
        files.cert.write_bytes(self.pem)
        files.chain.write_bytes(self.chain_pem)
        return files

    def write_cert(self, path: Path | str, *, pem: bool = True) -> Path:
        path = Path(path)
        path.write_bytes(self.pem if pem else self.der)
        return path


@dataclass(frozen=True)
class PemFiles:
    key: Path
    cert: Path
    chain: Path


@dataclass(frozen=True)
class Revocation:
    when: datetime
    reason: x509.ReasonFlags


class RevocationRegistry:
    """Which serials each CA has revoked (thread-safe: the loopback servers read it from their threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revoked: dict[tuple[bytes, int], Revocation] = {}
        self._unknown: set[tuple[bytes, int]] = set()

    @staticmethod
    def _key(cert: x509.Certificate) -> tuple[bytes, int]:
        return cert.issuer.public_bytes(), cert.serial_number

    def revoke(
        self,
        cert: x509.Certificate,
        when: datetime,
        reason: x509.ReasonFlags = x509.ReasonFlags.key_compromise,
    ) -> None:
        with self._lock:
            self._revoked[self._key(cert)] = Revocation(when, reason)

    def unrevoke(self, cert: x509.Certificate) -> None:
        with self._lock:
            self._revoked.pop(self._key(cert), None)

    def mark_unknown(self, cert: x509.Certificate, unknown: bool = True) -> None:
        """Make the OCSP responder answer ``unknown`` for this certificate (CRLs are unaffected)."""
        with self._lock:
            (self._unknown.add if unknown else self._unknown.discard)(self._key(cert))

    def revocation_of(self, issuer_name_der: bytes, serial: int) -> Revocation | None:
        with self._lock:
            return self._revoked.get((issuer_name_der, serial))

    def is_marked_unknown(self, issuer_name_der: bytes, serial: int) -> bool:
        with self._lock:
            return (issuer_name_der, serial) in self._unknown

    def revoked_by(self, issuer_name_der: bytes) -> list[tuple[int, Revocation]]:
        with self._lock:
            return [(serial, r) for (name, serial), r in self._revoked.items() if name == issuer_name_der]


class PortReservation:
    """Loopback ports bound now (so that URLs can go into certificates) and handed to the servers later."""

    def __init__(self, names: Iterable[str]) -> None:
        self.sockets: dict[str, socket.socket] = {}
        for name in names:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            self.sockets[name] = sock
        self.ports: dict[str, int] = {n: s.getsockname()[1] for n, s in self.sockets.items()}

    def take(self, name: str) -> socket.socket:
        """Hand the bound (not yet listening) socket over; the caller owns it from now on."""
        return self.sockets.pop(name)

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nuseal tests"),
        ]
    )


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _resign_with_sha1(cert: x509.Certificate, signer_key: rsa.RSAPrivateKey) -> x509.Certificate:
    """cryptography 48 refuses to build SHA-1 certificates: rewrite the algorithm fields, re-sign by hand."""
    parsed = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    sha1_rsa = algos.SignedDigestAlgorithm({"algorithm": "sha1_rsa", "parameters": core.Null()})
    tbs = parsed["tbs_certificate"]
    tbs["signature"] = sha1_rsa
    tbs_der = tbs.dump(force=True)
    signature = signer_key.sign(tbs_der, padding.PKCS1v15(), hashes.SHA1())
    rebuilt = asn1_x509.Certificate(
        {
            "tbs_certificate": asn1_x509.TbsCertificate.load(tbs_der),
            "signature_algorithm": sha1_rsa,
            "signature_value": signature,
        }
    )
    return x509.load_der_x509_certificate(rebuilt.dump())


class TestPki:
    """The session's PKI. Attributes are :class:`IssuedCert`; URLs point at ``tests.support.servers``."""

    __test__ = False  # not a pytest test class

    def __init__(self, *, ports: PortReservation | None = None, now: datetime | None = None) -> None:
        self.now = now or _now()
        self.ports = ports or PortReservation(["crl", "ocsp", "tsa"])
        self.crl_port = self.ports.ports["crl"]
        self.ocsp_port = self.ports.ports["ocsp"]
        self.tsa_port = self.ports.ports["tsa"]
        self.revocations = RevocationRegistry()
        self.by_name: dict[str, IssuedCert] = {}
        self._crl_numbers: dict[str, int] = {}
        self._lock = threading.Lock()
        n = self.now

        self.root = self._issue("root", issuer=None, ca=True, not_before=n - BACKDATE, days=3650)
        self.intermediate = self._issue(
            "intermediate", issuer=self.root, ca=True, not_before=n - BACKDATE, days=1825
        )
        self.untrusted_root = self._issue(
            "untrusted-root", issuer=None, ca=True, not_before=n - BACKDATE, days=3650
        )

        self.leaf = self.issue_leaf("leaf")
        self.tsa = self._issue(
            "tsa", issuer=self.intermediate, eku=[TIME_STAMPING], eku_critical=True, not_before=n - BACKDATE
        )
        self.expired_tsa = self._issue(
            "expired-tsa", issuer=self.intermediate, eku=[TIME_STAMPING], eku_critical=True,
            not_before=n - BACKDATE, not_after=n - timedelta(days=10),
        )  # fmt: skip
        self.ocsp = self._issue(
            "ocsp", issuer=self.intermediate, eku=[OCSP_SIGNING], ocsp_nocheck=True, revocation_urls=False,
            not_before=n - BACKDATE,
        )  # fmt: skip
        self.expired_leaf = self.issue_leaf(
            "expired-leaf", not_before=n - BACKDATE, not_after=n - timedelta(days=10)
        )
        self.not_yet_valid_leaf = self.issue_leaf("not-yet-valid-leaf", not_before=n + timedelta(days=10))
        self.revoked_leaf = self.issue_leaf("revoked-leaf")
        self.revoke(self.revoked_leaf, when=n - timedelta(days=5))
        self.weak_key_leaf = self.issue_leaf("weak-key-leaf", key=new_rsa_key(1024))
        self.wrong_eku_leaf = self.issue_leaf("wrong-eku-leaf", eku=[SERVER_AUTH])
        self.lifetime_eku_leaf = self.issue_leaf("lifetime-eku-leaf", eku=[CODE_SIGNING, LIFETIME_SIGNING])
        self.sha1_leaf = self.issue_leaf("sha1-leaf", hash_algorithm=hashes.SHA1())
        self.untrusted_leaf = self.issue_leaf("untrusted-leaf", issuer=self.untrusted_root)
        self.self_issued = self._issue(
            "self-issued", issuer=None, eku=[CODE_SIGNING], revocation_urls=False, not_before=n - BACKDATE
        )

    # --- URLs ----------------------------------------------------------------------------------------------

    @property
    def crl_base_url(self) -> str:
        return f"http://127.0.0.1:{self.crl_port}"

    @property
    def ocsp_url(self) -> str:
        return f"http://127.0.0.1:{self.ocsp_port}/"

    @property
    def tsa_url(self) -> str:
        return f"http://127.0.0.1:{self.tsa_port}/"

    def crl_url(self, ca: IssuedCert) -> str:
        return f"{self.crl_base_url}/{ca.name}.crl"

    def ca_issuers_url(self, ca: IssuedCert) -> str:
        return f"{self.crl_base_url}/{ca.name}.cer"

    # --- trust sets ----------------------------------------------------------------------------------------

    @property
    def trusted_roots(self) -> list[x509.Certificate]:
        """The trust set: ``root`` only (``untrusted_root`` and ``self_issued`` are deliberately absent)."""
        return [self.root.cert]

    @property
    def cas(self) -> list[IssuedCert]:
        return [self.root, self.intermediate, self.untrusted_root]

    # --- issuing -------------------------------------------------------------------------------------------

    def issue_leaf(
        self,
        name: str,
        *,
        issuer: IssuedCert | None = None,
        key: rsa.RSAPrivateKey | None = None,
        eku: list[ObjectIdentifier] | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        hash_algorithm: hashes.HashAlgorithm | None = None,
    ) -> IssuedCert:
        """A code-signing leaf (under ``intermediate`` unless told otherwise); usable at runtime by tests."""
        return self._issue(
            name,
            issuer=issuer or self.intermediate,
            key=key,
            eku=[CODE_SIGNING] if eku is None else eku,
            not_before=not_before or self.now - BACKDATE,
            not_after=not_after,
            hash_algorithm=hash_algorithm,
        )

    def issue_tsa(self, name: str, *, eku_critical: bool = True, **kwargs: object) -> IssuedCert:
        """A TSA certificate under ``intermediate`` (``eku_critical=False`` gives one a TSA must refuse)."""
        return self._issue(
            name, issuer=self.intermediate, eku=[TIME_STAMPING], eku_critical=eku_critical,
            not_before=self.now - BACKDATE, **kwargs,  # type: ignore[arg-type]
        )  # fmt: skip

    def _issue(
        self,
        name: str,
        *,
        issuer: IssuedCert | None,
        ca: bool = False,
        key: rsa.RSAPrivateKey | None = None,
        eku: list[ObjectIdentifier] | None = None,
        eku_critical: bool = False,
        ocsp_nocheck: bool = False,
        revocation_urls: bool = True,
        not_before: datetime,
        not_after: datetime | None = None,
        days: int = 365,
        hash_algorithm: hashes.HashAlgorithm | None = None,
    ) -> IssuedCert:
        if name in self.by_name:
            raise ValueError(f"test PKI already has a certificate named {name!r}")
        key = key or new_rsa_key()
        subject = _name(f"nuseal test {name}")
        signer_key = issuer.key if issuer else key
        public = key.public_key()
        ski = x509.SubjectKeyIdentifier.from_public_key(public)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.cert.subject if issuer else subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after or not_before + timedelta(days=days))
            .add_extension(ski, critical=False)
        )
        if issuer is not None:
            issuer_ski = issuer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False
            )
        if ca:
            builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            builder = builder.add_extension(_key_usage(cert_sign=True), critical=True)
        else:
            builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            builder = builder.add_extension(_key_usage(digital_signature=True), critical=True)
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=eku_critical)
        if ocsp_nocheck:
            builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
        if issuer is not None and revocation_urls:
            builder = builder.add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            [x509.UniformResourceIdentifier(self.crl_url(issuer))], None, None, None
                        )
                    ]
                ),
                critical=False,
            )
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(self.ocsp_url),
                        ),
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.CA_ISSUERS,
                            x509.UniformResourceIdentifier(self.ca_issuers_url(issuer)),
                        ),
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(signer_key, hashes.SHA256())
        if isinstance(hash_algorithm, hashes.SHA1):
            cert = _resign_with_sha1(cert, signer_key)
        elif hash_algorithm is not None:
            cert = builder.sign(signer_key, hash_algorithm)  # type: ignore[arg-type]
        issued = IssuedCert(name=name, cert=cert, key=key, issuer=issuer)
        with self._lock:
            self.by_name[name] = issued
        return issued

    def __getitem__(self, name: str) -> IssuedCert:
        return self.by_name[name]

    # --- revocation ----------------------------------------------------------------------------------------

    def revoke(
        self,
        issued: IssuedCert,
        *,
        when: datetime | None = None,
        reason: x509.ReasonFlags = x509.ReasonFlags.key_compromise,
    ) -> None:
        self.revocations.revoke(issued.cert, when or _now(), reason)

    def unrevoke(self, issued: IssuedCert) -> None:
        self.revocations.unrevoke(issued.cert)

    def ca_named(self, name: str) -> IssuedCert | None:
        ca = self.by_name.get(name)
        return ca if ca is not None and ca in self.cas else None

    def issuer_of(self, issuer_name_der: bytes) -> IssuedCert | None:
        return next((ca for ca in self.cas if ca.cert.subject.public_bytes() == issuer_name_der), None)

    def is_issued(self, issuer: IssuedCert, serial: int) -> bool:
        with self._lock:
            certs = list(self.by_name.values())
        return any(c.issuer is issuer and c.cert.serial_number == serial for c in certs)

    def crl_der(self, ca: IssuedCert, *, now: datetime | None = None) -> bytes:
        """A fresh DER CRL of ``ca`` listing what the registry says it revoked (thisUpdate 1 minute back)."""
        now = now or _now()
        with self._lock:
            number = self._crl_numbers.get(ca.name, 0) + 1
            self._crl_numbers[ca.name] = number
        ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.cert.subject)
            .last_update(now - timedelta(minutes=1))
            .next_update(now + timedelta(days=1))
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
            )
        )
        for serial, revocation in self.revocations.revoked_by(ca.cert.subject.public_bytes()):
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(revocation.when)
                .add_extension(x509.CRLReason(revocation.reason), critical=False)
                .build()
            )
            builder = builder.add_revoked_certificate(entry)
        return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    # --- files ---------------------------------------------------------------------------------------------

    def write_pems(self, directory: Path | str) -> Path:
        """Write every certificate as ``<name>.pem`` (and ``<name>.key.pem``) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for issued in list(self.by_name.values()):
            issued.write_cert(directory / f"{issued.name}.pem")
            (directory / f"{issued.name}.key.pem").write_bytes(issued.key_pem)
        return directory
