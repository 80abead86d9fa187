"""The embedded mode's development repository signing: a throw-away CA, a repository certificate and a TSA.

On the first start of the embedded mode (SQLite database) with no repository certificate at all,
:func:`ensure_development_certificate` makes a development root CA, a repository (code-signing) certificate and
a timestamping certificate under it (``nuseal.x509.tools``), stores the repository certificate and its sealed key
like any other, and activates it. The TSA's certificate and key stay in the data folder
(``dev-repository-signing/tsa.p12``, encrypted with the key-encryption secret); every process that signs with the
development certificate runs that TSA itself, in-process on loopback (:func:`local_tsa`), so no outside service
is needed. ``dev-repository-signing/root.crt`` is the root a test client can be told to trust.

Clients do not trust any of this: :func:`development_warning` is the loud start-up message saying so and how
to replace it (add a real certificate, activate it, retire the development one).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from sqlalchemy import func, select

from nuseal.server.db.models import RepositoryCertificate, RepositoryCertificateState
from nuseal.server.services import audit
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.permissions import Operator
from nuseal.server.services.repository_certificates import (
    CERTIFICATE_ACTIVATE,
    CERTIFICATE_ADD,
    _audit_state,
    _trial,
    new_row,
)
from nuseal.server.services.repository_keys import RepositoryKeyError, key_secret
from nuseal.server.settings import ServerSettings
from nuseal.sign.signers import KeySigner
from nuseal.timestamp.tsa import TimestampAuthority, make_server
from nuseal.x509 import certs, tools

_log = logging.getLogger(__name__)

DEV_FOLDER: Final = "dev-repository-signing"
ROOT_FILE: Final = "root.crt"
TSA_FILE: Final = "tsa.p12"
ROOT_SUBJECT: Final = "CN=nuseal development root (NOT TRUSTED), O=nuseal development"
REPOSITORY_SUBJECT: Final = "CN=nuseal development repository signing (NOT TRUSTED), O=nuseal development"
TSA_SUBJECT: Final = "CN=nuseal development timestamping (NOT TRUSTED), O=nuseal development"
_ROOT_DAYS, _REPOSITORY_DAYS, _TSA_DAYS = 3650, 3 * 365, 3650


def dev_folder(settings: ServerSettings) -> Path:
    return settings.data_dir / DEV_FOLDER


def ensure_development_certificate(ctx: ServiceContext, *, actor: Operator | None = None) -> bool:
    """Create and activate the development repository certificate if the embedded feed has no certificate at all.

    Returns True when it made one. Runs in one write transaction (SQLite: ``BEGIN IMMEDIATE``), so a server and a
    worker starting together make one certificate, not two. A feed that has any repository certificate (even a
    retired one) is left alone.
    """
    if not ctx.settings.uses_embedded_database:
        return False
    actor = actor or Operator("system")
    now = ctx.now()
    with ctx.db.transaction() as session:
        if session.scalar(select(func.count()).select_from(RepositoryCertificate)):
            return False
        root, root_key = tools.create_authority(ROOT_SUBJECT, now=now, days=_ROOT_DAYS)
        cert, key = tools.create_certificate(REPOSITORY_SUBJECT, now=now, days=_REPOSITORY_DAYS,
                                             issuer=(root, root_key))  # fmt: skip
        tsa_cert, tsa_key = tools.create_certificate(TSA_SUBJECT, now=now, days=_TSA_DAYS, timestamping=True,
                                                     issuer=(root, root_key))  # fmt: skip
        _write_files(ctx.settings, root, tsa_cert, tsa_key)
        signer = KeySigner(key, cert, (cert, root))
        sha256 = certs.fingerprint(cert).lower()
        _trial(ctx, signer, sha256, None, lambda: local_tsa(ctx.settings, ctx.clock).url, now)
        row = new_row(ctx, signer, sha256, timestamper_url=None, pkcs11=None, development=True)
        row.state = RepositoryCertificateState.ACTIVE.value
        row.activated_at = now
        session.add(row)
        audit.record(session, actor, CERTIFICATE_ADD, sha256, at=now, after=_audit_state(row))
        audit.record(session, actor, CERTIFICATE_ACTIVATE, sha256, at=now, before={"active": []},
                     after={"active": [sha256]})
    return True


def _write_files(settings: ServerSettings, root: x509.Certificate, tsa_cert: x509.Certificate,
                 tsa_key: rsa.RSAPrivateKey) -> None:  # fmt: skip
    folder = dev_folder(settings)
    folder.mkdir(parents=True, exist_ok=True)
    tools.write_atomically(folder / ROOT_FILE, root.public_bytes(serialization.Encoding.PEM))
    password = key_secret(settings).decode()
    tools.write_atomically(folder / TSA_FILE, tools.pfx_bytes(tsa_cert, tsa_key, password, extra=[root]))
    (folder / TSA_FILE).chmod(0o600)


def development_certificate(ctx: ServiceContext) -> RepositoryCertificate | None:
    """The development certificate while it still matters (published or active), else None."""
    with ctx.db.reading() as session:
        rows = session.scalars(select(RepositoryCertificate).where(RepositoryCertificate.is_development.is_(True)))
        for row in rows:
            if row.state == RepositoryCertificateState.ACTIVE.value or row.listed:
                return row
    return None


def development_warning(row: RepositoryCertificate, settings: ServerSettings) -> str:
    """The loud multi-line start-up warning while the development certificate signs or is published."""
    folder = dev_folder(settings)
    return "\n".join([
        "*" * 100,
        "WARNING: this feed repository-signs packages with a DEVELOPMENT certificate that NO CLIENT TRUSTS.",
        f"  certificate {row.sha256} ({row.subject}), state {row.state}",
        f"  issued by the development root {folder / ROOT_FILE}, timestamped by a TSA inside this process.",
        "  NuGet clients treat these repository signatures as untrusted (NU3018/NU3028; 'require' mode fails).",
        "  Replace it before real use:",
        "    nuseal admin repo-cert add FEED.pfx --password-stdin --timestamper https://TSA < password.txt",
        "    nuseal admin repo-cert activate NEW_SHA256",
        f"    nuseal admin repo-cert retire {row.sha256} --wait",
        "*" * 100,
    ])  # fmt: skip


# --- the development TSA ------------------------------------------------------------------------------------


class LocalTsa:
    """The development TSA over HTTP on 127.0.0.1 (a free port), served by a daemon thread of this process."""

    def __init__(self, authority: TimestampAuthority) -> None:
        self._server: ThreadingHTTPServer = make_server(authority, "127.0.0.1", 0)
        port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, name="nuseal-dev-tsa", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


_tsas: dict[Path, LocalTsa] = {}
_tsas_lock = threading.Lock()


def local_tsa(settings: ServerSettings, clock: Callable[[], datetime]) -> LocalTsa:
    """This process's development TSA for the data folder (started on first use)."""
    folder = dev_folder(settings)
    with _tsas_lock:
        running = _tsas.get(folder)
        if running is None:
            running = LocalTsa(_authority(settings, clock))
            _tsas[folder] = running
            _log.info("development TSA listening", extra={"fields": {"url": running.url}})
        return running


def _authority(settings: ServerSettings, clock: Callable[[], datetime]) -> TimestampAuthority:
    path = dev_folder(settings) / TSA_FILE
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RepositoryKeyError(
            f"the development TSA's key '{path}' cannot be read ({exc.strerror}): the development certificate "
            "only works with its data folder; add and activate a real repository certificate"
        ) from None
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, key_secret(settings))
    except ValueError:
        raise RepositoryKeyError(f"the development TSA's key '{path}' cannot be opened with the key-encryption "
                                 "secret it was written with") from None  # fmt: skip
    if not isinstance(key, rsa.RSAPrivateKey) or cert is None:
        raise RepositoryKeyError(f"'{path}' does not hold an RSA timestamping key and certificate")
    return TimestampAuthority(cert, key, list(extra), clock=clock)


def stop_local_tsas() -> None:
    """Stop every development TSA this process started (server and worker shutdown, tests)."""
    with _tsas_lock:
        running = list(_tsas.values())
        _tsas.clear()
    for tsa in running:
        tsa.close()
