"""Trust roots: the bundled .NET SDK fallback bundles and user-supplied roots files (spec §7.2).

On Linux ``dotnet nuget verify`` trusts ``trustedroots/codesignctl.pem`` for code signing and
``trustedroots/timestampctl.pem`` for timestamping (``X509TrustStore.InitializeForDotNetSdk``). nuseal ships
byte-identical copies in ``nuseal/x509/roots/`` (provenance and checksums in ``roots/README.md``), so its default
verdicts match the official client's out of the box.

NuGet quirk: on Linux the code-signing bundle is replaced by ``/etc/pki/ca-trust/extracted/pem/objsign-ca-bundle.pem``
when that file exists. We never look at the system: the core does not read the environment, and a verdict that depends
on the host's files is not reproducible. Callers that want that file pass it to :func:`trust_store_from_files`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from cryptography import x509

from nuseal.errors import TrustConfigError

__all__ = [
    "TrustStore", "default_trust_store", "load_pem_bundle", "load_roots_file", "parse_pem_bundle",
    "trust_store_from_files",
]

CODE_SIGNING_BUNDLE = "codesignctl.pem"
TIMESTAMPING_BUNDLE = "timestampctl.pem"

_BEGIN = b"-----BEGIN CERTIFICATE-----"
_END = b"-----END CERTIFICATE-----"


@dataclass(frozen=True)
class TrustStore:
    """Root certificates trusted for code signing (author/repository signers) and for timestamping (TSAs)."""

    code_signing: tuple[x509.Certificate, ...]
    timestamping: tuple[x509.Certificate, ...]


def parse_pem_bundle(data: bytes, source: str) -> tuple[x509.Certificate, ...]:
    """Every ``CERTIFICATE`` block of a PEM bundle, in file order; ``source`` names the bundle in errors.

    Text outside the blocks (comments such as ``# Subject: ...``) is ignored, as OpenSSL does.
    """
    with warnings.catch_warnings():
        # Some long-lived roots carry non-positive serial numbers; cryptography warns but still parses them.
        warnings.simplefilter("ignore")
        try:
            # Fast path (one call for ~300 roots); the block-by-block scan below only runs to explain a failure.
            bulk = x509.load_pem_x509_certificates(data)
        except ValueError:
            bulk = []
        if bulk and len(bulk) == data.count(_BEGIN):
            return tuple(bulk)
        return _parse_blocks(data, source)


def _parse_blocks(data: bytes, source: str) -> tuple[x509.Certificate, ...]:
    certificates: list[x509.Certificate] = []
    start = data.find(_BEGIN)
    index = 0
    while start != -1:
        index += 1
        line = data.count(b"\n", 0, start) + 1
        end = data.find(_END, start)
        following = data.find(_BEGIN, start + len(_BEGIN))
        if end == -1 or (following != -1 and following < end):
            raise TrustConfigError(f"{source}: certificate #{index} (PEM block at line {line}) has no END line")
        block = data[start : end + len(_END)]
        try:
            certificates.append(x509.load_pem_x509_certificate(block))
        except ValueError as exc:
            raise TrustConfigError(
                f"{source}: certificate #{index} (PEM block at line {line}) is not a valid certificate: {exc}"
            ) from exc
        start = following
    if not certificates:
        raise TrustConfigError(f"{source}: no PEM certificate ('-----BEGIN CERTIFICATE-----') found")
    return tuple(certificates)


def load_pem_bundle(path: Path) -> tuple[x509.Certificate, ...]:
    """Read a PEM bundle file; :class:`TrustConfigError` naming the file (and certificate index) when it is bad."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TrustConfigError(f"cannot read certificate bundle {path}: {exc.strerror or exc}") from exc
    return parse_pem_bundle(data, str(path))


def load_roots_file(path: Path) -> tuple[x509.Certificate, ...]:
    """Read roots from a PEM bundle or from one DER certificate (the ``.cer`` that ``nuseal cert create --cer``
    and Windows export); :class:`TrustConfigError` naming the file when it is neither.

    The format is told by the content, as .NET's ``X509Certificate2Collection.Import`` does: a file with a PEM
    ``BEGIN CERTIFICATE`` line is a bundle, anything else must be a DER certificate.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TrustConfigError(f"cannot read certificate file {path}: {exc.strerror or exc}") from exc
    if _BEGIN in data:
        return parse_pem_bundle(data, str(path))
    if not data.strip():
        raise TrustConfigError(f"{path}: the file is empty; expected a PEM bundle or a DER certificate")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # non-positive serial numbers, as in parse_pem_bundle
            return (x509.load_der_x509_certificate(data),)
    except ValueError as exc:
        raise TrustConfigError(
            f"{path}: neither a PEM bundle ('-----BEGIN CERTIFICATE-----') nor a DER certificate: {exc}"
        ) from exc


def _bundled(name: str) -> tuple[x509.Certificate, ...]:
    resource = resources.files("nuseal.x509").joinpath("roots", name)
    return parse_pem_bundle(resource.read_bytes(), f"nuseal/x509/roots/{name}")


@lru_cache(maxsize=1)
def default_trust_store() -> TrustStore:
    """The .NET SDK fallback bundles shipped with nuseal, parsed once per process (the same object every call)."""
    return TrustStore(code_signing=_bundled(CODE_SIGNING_BUNDLE), timestamping=_bundled(TIMESTAMPING_BUNDLE))


def trust_store_from_files(code_signing: Path | None, timestamping: Path | None) -> TrustStore:
    """Replace either part of the default store with a roots file (PEM bundle or DER certificate, see
    :func:`load_roots_file`); ``None`` keeps that part of the default."""
    default = default_trust_store()
    return TrustStore(
        code_signing=default.code_signing if code_signing is None else load_roots_file(code_signing),
        timestamping=default.timestamping if timestamping is None else load_roots_file(timestamping),
    )
