"""Repository signing keys: the key-encryption secret, sealed keys in the database, and opening a signer.

Every worker, on any machine, must be able to sign with the feed's active certificate, so the key lives where all
of them look: the database. A PFX/PEM key is stored *sealed*: its PKCS#12 (key and chain, unencrypted inside) is
encrypted with AES-256-GCM under a key derived (scrypt, a random salt per key) from the key-encryption secret,
with the certificate's SHA-256 as associated data, so a database dump alone signs nothing and a sealed key cannot
be moved to another certificate's row. The secret comes from the settings (``NUSEAL_REPOSITORY_KEY_SECRET``);
with the embedded SQLite database it defaults to a random one generated once into the data folder (mode 0600).
A key on a PKCS#11 token is stored as a reference (module, token, key label or id); its PIN comes from the
settings of each worker (``NUSEAL_REPOSITORY_PKCS11_PIN``) and is never stored.

:class:`Keyring` is the per-process cache workers sign through: opened signers (one PKCS#11 session per thread),
timestampers (one keep-alive HTTP client per thread and URL) and the signing threads a re-sign batch runs on.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import stat
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.serialization import pkcs12

from nuseal.errors import NusealError
from nuseal.server.db.models import RepositoryCertificate, RepositoryKeyKind
from nuseal.server.settings import ServerSettings, env_var
from nuseal.sign.signers import KeySigner, Pkcs11Config, Pkcs11Signer, Signer, order_chain
from nuseal.timestamp.client import HttpTimestamper
from nuseal.x509 import certs
from nuseal.x509.roots import TrustStore, trust_store_from_files

SECRET_FILE: Final = "repository-key.secret"
_MAGIC: Final = b"NSK1"
_SALT_BYTES: Final = 16
_NONCE_BYTES: Final = 12
# scrypt at N=2^15, r=8 (~32 MiB, ~0.1 s): the secret may be an operator's passphrase, so the derivation is
# deliberately slow; it runs once per key and process (cached).
_SCRYPT_N: Final = 2**15
_SCRYPT_R: Final = 8
#: Packages a worker process signs at once: the signing itself holds the GIL, so more threads only help to overlap
#: the waits (TSA round trips, blob downloads and uploads, each thread on its own keep-alive connection).
SIGNING_THREADS: Final = 4


class RepositoryKeyError(NusealError):
    """A repository signing key cannot be stored or opened: no secret, wrong secret, token unreachable."""


# --- the key-encryption secret ----------------------------------------------------------------------------------


def key_secret(settings: ServerSettings) -> bytes:
    """The key-encryption secret: the setting, else (embedded SQLite only) the data folder's generated one."""
    if settings.repository_key_secret is not None:
        return settings.repository_key_secret.encode()
    path = settings.data_dir / SECRET_FILE
    if not settings.uses_embedded_database and not path.exists():
        raise RepositoryKeyError(
            f"set {env_var('repository_key_secret')} (the same value on every server and worker): repository "
            "signing keys are stored encrypted in the database and a shared database needs a shared secret"
        )
    return _secret_file(path)


def _secret_file(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # made earlier (or by a process starting at the same time): read it below
    except OSError as exc:
        raise RepositoryKeyError(f"cannot create the repository key secret '{path}': {exc.strerror}") from None
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
            out.flush()
            os.fsync(out.fileno())
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as exc:
        raise RepositoryKeyError(f"cannot read the repository key secret '{path}': {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise RepositoryKeyError(
            f"the repository key secret '{path}' is accessible to other users (mode {stat.S_IMODE(mode):04o}): "
            f"chmod 600 it"
        )
    if len(text) < 16:
        # Written by os.open + fsync above, so a short file was put there by hand (or truncated).
        raise RepositoryKeyError(f"the repository key secret '{path}' is shorter than 16 characters")
    return text.encode()


# --- sealing --------------------------------------------------------------------------------------------------

_derived: dict[tuple[bytes, bytes], bytes] = {}
_derived_lock = threading.Lock()


def _key_for(secret: bytes, salt: bytes) -> bytes:
    with _derived_lock:
        cached = _derived.get((secret, salt))
    if cached is not None:
        return cached
    key = Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=_SCRYPT_R, p=1).derive(secret)
    with _derived_lock:
        _derived[(secret, salt)] = key
    return key


def seal(plaintext: bytes, secret: bytes, associated: str) -> bytes:
    """``NSK1 | salt | nonce | AES-256-GCM(plaintext)`` bound to ``associated`` (the certificate's SHA-256)."""
    salt, nonce = os.urandom(_SALT_BYTES), os.urandom(_NONCE_BYTES)
    return _MAGIC + salt + nonce + AESGCM(_key_for(secret, salt)).encrypt(nonce, plaintext, associated.encode())


def unseal(sealed: bytes, secret: bytes, associated: str) -> bytes:
    """The plaintext of :func:`seal`; :class:`RepositoryKeyError` for a wrong secret or a damaged/moved key."""
    header = len(_MAGIC) + _SALT_BYTES + _NONCE_BYTES
    if not sealed.startswith(_MAGIC) or len(sealed) <= header:
        raise RepositoryKeyError(f"the stored key of repository certificate {associated} is not a sealed key")
    salt = sealed[len(_MAGIC) : len(_MAGIC) + _SALT_BYTES]
    nonce = sealed[len(_MAGIC) + _SALT_BYTES : header]
    try:
        return AESGCM(_key_for(secret, salt)).decrypt(nonce, sealed[header:], associated.encode())
    except InvalidTag:
        raise RepositoryKeyError(
            f"cannot decrypt the key of repository certificate {associated}: the key-encryption secret "
            f"({env_var('repository_key_secret')}) is not the one it was stored with"
        ) from None


def seal_signer(signer: KeySigner, secret: bytes, sha256: str) -> bytes:
    """The signer's key and chain as a sealed PKCS#12 (the PKCS#12 itself unencrypted: the seal protects it)."""
    from cryptography.hazmat.primitives.serialization import NoEncryption

    pfx = pkcs12.serialize_key_and_certificates(
        None, signer.key, signer.certificate, list(signer.chain[1:]) or None, NoEncryption()
    )
    return seal(pfx, secret, sha256)


# --- opening a signer ---------------------------------------------------------------------------------------


def chain_of(row: RepositoryCertificate) -> tuple[x509.Certificate, ...]:
    """The certificate then the issuers stored with it (leaf first)."""
    leaf = x509.load_der_x509_certificate(row.der)
    issuers = [x509.load_der_x509_certificate(base64.b64decode(item)) for item in row.chain]
    return order_chain(leaf, [leaf, *issuers])


def open_signer(row: RepositoryCertificate, settings: ServerSettings) -> Signer:
    """A signer for the certificate's key: unsealed from the row, or a session on its PKCS#11 token."""
    chain = chain_of(row)
    if row.key_kind == RepositoryKeyKind.SEALED_PFX.value:
        if row.sealed_key is None:
            raise RepositoryKeyError(f"repository certificate {row.sha256} has no stored key")
        pfx = unseal(row.sealed_key, key_secret(settings), row.sha256)
        key, certificate, _ = pkcs12.load_key_and_certificates(pfx, None)
        from cryptography.hazmat.primitives.asymmetric import rsa

        if not isinstance(key, rsa.RSAPrivateKey) or certificate is None:
            raise RepositoryKeyError(f"the stored key of repository certificate {row.sha256} is not an RSA key")
        return KeySigner(key, chain[0], chain)
    if settings.repository_pkcs11_pin is None:
        raise RepositoryKeyError(
            f"repository certificate {row.sha256} is on a PKCS#11 token: set {env_var('repository_pkcs11_pin')}"
        )
    assert row.pkcs11_module is not None and row.pkcs11_token is not None  # a check constraint's job, stored so
    config = Pkcs11Config(
        Path(row.pkcs11_module), row.pkcs11_token, settings.repository_pkcs11_pin,
        key_label=row.pkcs11_key_label, key_id=bytes.fromhex(row.pkcs11_key_id) if row.pkcs11_key_id else None,
    )  # fmt: skip
    try:
        return Pkcs11Signer(config, certificates=chain, fingerprint=row.sha256)
    except NusealError as exc:
        raise RepositoryKeyError(f"repository certificate {row.sha256}: {exc.message}") from None


def verification_trust(settings: ServerSettings, chain: tuple[x509.Certificate, ...]) -> TrustStore:
    """What the feed re-verifies its own repository signatures against: its trust roots plus the self-issued root
    of the certificate's own chain (the operator vouched for it by adding the certificate), for code signing and
    for timestamping (a development feed's TSA is issued by the same root)."""
    base = trust_store_from_files(settings.trust_roots, settings.timestamp_roots)
    own = tuple(c for c in chain if certs.is_self_issued(c))
    return TrustStore(code_signing=base.code_signing + own, timestamping=base.timestamping + own)


@dataclass(frozen=True)
class RepositoryCert:
    """An opened repository certificate: what ``sign_for_feed`` signs with and re-verifies against."""

    sha256: str  # lower-case hex
    signer: Signer
    trust_store: TrustStore
    timestamper_url: str | None  # None: the data folder's development TSA


class Keyring:
    """Per-process cache of opened repository keys and timestampers, safe to share between worker threads.

    Sealed keys are unsealed once per process; PKCS#11 signers and HTTP timestampers are kept per thread (a
    token session and an HTTP connection are not shared between threads). ``local_tsa_url`` gives the URL of
    the development TSA for certificates that have no timestamper of their own.
    """

    def __init__(self, settings: ServerSettings, *, local_tsa_url: Callable[[], str] | None = None,
                 clock: Callable[[], datetime] | None = None, threads: int = SIGNING_THREADS) -> None:  # fmt: skip
        self.settings = settings
        self._local_tsa_url = local_tsa_url
        self._clock = clock
        self._threads = threads
        self._shared: dict[str, RepositoryCert] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._closers: list[Callable[[], None]] = []
        self._executor: ThreadPoolExecutor | None = None

    def executor(self) -> ThreadPoolExecutor:
        """The process's signing threads (started on first use, kept until :meth:`close`): long-lived, so each
        keeps its keep-alive connection to the TSA from one batch to the next."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="nuseal-sign")
            return self._executor

    @staticmethod
    def shareable(cert: RepositoryCert) -> bool:
        """Whether ``cert`` can sign from any thread (an in-memory key); a PKCS#11 session belongs to its thread."""
        return isinstance(cert.signer, KeySigner)

    def certificate(self, row: RepositoryCertificate) -> RepositoryCert:
        """The opened certificate of ``row`` (a sealed key is shared; a token session is this thread's)."""
        if row.key_kind == RepositoryKeyKind.PKCS11.value:
            per_thread: dict[str, RepositoryCert] = self._thread_cache("certificates")
            if row.sha256 not in per_thread:
                per_thread[row.sha256] = self._open(row)
            return per_thread[row.sha256]
        with self._lock:
            cached = self._shared.get(row.sha256)
        if cached is None:
            cached = self._open(row)
            with self._lock:
                self._shared.setdefault(row.sha256, cached)
        return cached

    def _open(self, row: RepositoryCertificate) -> RepositoryCert:
        signer = open_signer(row, self.settings)
        close = getattr(signer, "close", None)
        if close is not None:
            with self._lock:
                self._closers.append(close)
        return RepositoryCert(row.sha256, signer, verification_trust(self.settings, signer.chain),
                              row.timestamper_url)  # fmt: skip

    def timestamper(self, cert: RepositoryCert) -> HttpTimestamper:
        """This thread's timestamper for ``cert``: its TSA, or the development TSA."""
        url = cert.timestamper_url
        if url is None:
            if self._local_tsa_url is None:
                raise RepositoryKeyError(
                    f"repository certificate {cert.sha256} uses the development TSA, which this process cannot run"
                )
            url = self._local_tsa_url()
        per_thread: dict[str, HttpTimestamper] = self._thread_cache("timestampers")
        if url not in per_thread:
            stamper = HttpTimestamper(url, timeout=30.0, clock=self._clock)
            per_thread[url] = stamper
            with self._lock:
                self._closers.append(stamper.close)
        return per_thread[url]

    def _thread_cache(self, name: str) -> dict[str, Any]:
        cache = getattr(self._local, name, None)
        if cache is None:
            cache = {}
            setattr(self._local, name, cache)
        return cache

    def forget(self, sha256: str) -> None:
        """Drop a cached certificate (after it was revoked, say); later calls open it again."""
        with self._lock:
            self._shared.pop(sha256, None)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        with self._lock:
            closers, self._closers = self._closers, []
        for close in closers:
            with contextlib.suppress(Exception):  # closing is best effort at shutdown
                close()
