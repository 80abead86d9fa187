"""What author and repository signing share: options, the result type, and the primary-signature flow.

The flow (spec §1.3, §2.1, §4.2, §5): refuse zip64 (NU3006) / too many entries (NU3039) / already signed
without overwrite (NU3001); hash the unsigned file in one streaming pass; build the signed attributes;
raw-sign; check the signature against the certificate; timestamp the signature value; assemble; insert
the ``.signature.p7s`` entry through a temporary file that is renamed into place. The unchanged entries are
written to that file by the same pass that hashes them (``archive.SignedPackageWriter``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from nuseal.cms.build import PrimarySignatureBuilder
from nuseal.cms.content import SignatureContent
from nuseal.codes import Messages, NuCode
from nuseal.enums import HashAlgorithmName
from nuseal.findings import Finding, Severity
from nuseal.package import archive
from nuseal.record import Struct
from nuseal.sign.checks import check_signing_certificate, check_timestamp_token
from nuseal.sign.signers import KeySigner, Signer, check_signature
from nuseal.timestamp.client import HttpTimestamper, InProcessTimestamper

if TYPE_CHECKING:
    from nuseal.x509.roots import TrustStore


class Timestamper(Protocol):
    """Structural twin of ``nuseal.timestamp.client.Timestamper``: token DER over HASH(data)."""

    def timestamp(self, data: bytes, hash_algorithm: HashAlgorithmName) -> bytes: ...


class SignOptions(Struct, frozen=True):
    """Hash algorithms, overwrite behaviour, (optionally) the roots to build chains against at sign time, and
    whether outputs are fsynced before ``sign_package`` returns (``durable``; docs/decisions.md "Durable outputs":
    turn it off only where something else is the durability point, such as a feed's database commit).
    ``sync_folder=False`` (with ``durable``) leaves the fsync of the output's folder, which makes the rename
    durable, to the caller: ``sign_batch``'s workers fsync each folder once per run of packages, before reporting
    them."""

    hash_algorithm: HashAlgorithmName = HashAlgorithmName.SHA256
    timestamp_hash_algorithm: HashAlgorithmName = HashAlgorithmName.SHA256
    overwrite: bool = False
    trust_store: TrustStore | None = None
    durable: bool = True
    sync_folder: bool = True


class SignResult(Struct, frozen=True):
    """What was written: the output path, which signature was added, its bytes, warnings to log."""

    path: Path
    kind: str  # "author", "repository" or "repository-countersignature"
    signature: bytes
    timestamped: bool
    warnings: tuple[Finding, ...]


NO_TIMESTAMPER_WARNING = Finding(NuCode.NU3002, Severity.WARNING, Messages.NO_TIMESTAMPER)


def signer_warnings(
    signer: Signer, now: datetime, timestamper: Timestamper | None, trust_store: TrustStore | None = None
) -> list[Finding]:
    """Certificate checks (errors raise) plus the signer's own warnings and NU3002 when not timestamping."""
    warnings = list(getattr(signer, "warnings", ()))
    warnings += check_signing_certificate(signer.chain, now, trust_store)
    if timestamper is None:
        warnings.append(NO_TIMESTAMPER_WARNING)
    return warnings


def sign_raw_checked(signer: Signer, data: bytes, hash_algorithm: HashAlgorithmName) -> bytes:
    """Raw-sign and verify the result against the certificate (a mismatched key is NU3001, not a bad file).

    An in-memory key (``KeySigner``) is checked on its first signature only: whether a key matches a certificate
    is a property of the pair, and OpenSSL already checks every RSA-CRT result against the public key before
    returning it (a faulty computation never leaves the library). A PKCS#11 token (or any other backend) is
    checked on every signature: its key and its computation are outside this process.
    """
    value = signer.sign_raw(data, hash_algorithm)
    if not (isinstance(signer, KeySigner) and _matched_key(signer)):
        check_signature(signer.certificate, data, value, hash_algorithm)
        if isinstance(signer, KeySigner):
            _remember_match(signer)
    return value


#: In-memory keys whose first signature verified against their certificate, by the identity of (key, certificate);
#: the objects are kept so that their ids are not reused. Bounded: a process signs with a handful of keys.
_MATCHED: dict[tuple[int, int], tuple[object, object]] = {}
_MATCHED_LIMIT = 16


def _matched_key(signer: KeySigner) -> bool:
    known = _MATCHED.get((id(signer.key), id(signer.certificate)))
    return known is not None and known[0] is signer.key and known[1] is signer.certificate


def _remember_match(signer: KeySigner) -> None:
    if len(_MATCHED) >= _MATCHED_LIMIT:
        _MATCHED.clear()
    _MATCHED[(id(signer.key), id(signer.certificate))] = (signer.key, signer.certificate)


def timestamp_value(
    timestamper: Timestamper | None,
    value: bytes,
    hash_algorithm: HashAlgorithmName,
    now: datetime,
    trust_store: TrustStore | None = None,
) -> bytes | None:
    """Timestamp a signature value (imprint = HASH_ts(value), spec §5.1); check the token (errors raise)."""
    if timestamper is None:
        return None
    token = timestamper.timestamp(value, hash_algorithm)
    # nuseal's own clients already ran the token checks on the response: do not run them twice.
    self_checking = isinstance(timestamper, HttpTimestamper | InProcessTimestamper)
    check_timestamp_token(token, value, now, already_checked=self_checking, trust_store=trust_store)
    return token


def sign_primary(
    src: Path,
    dst: Path,
    builder: PrimarySignatureBuilder,
    signer: Signer,
    options: SignOptions,
    *,
    timestamper: Timestamper | None,
    now: datetime,
    kind: str,
) -> SignResult:
    """The primary-signature flow for ``builder`` (author or repository). ``dst`` may equal ``src``."""
    # Path(p) parses p again even when it is a Path already (~5 us each, several per signature in a batch).
    src = src if isinstance(src, Path) else Path(src)
    dst = dst if isinstance(dst, Path) else Path(dst)
    warnings = signer_warnings(signer, now, timestamper, options.trust_store)
    algorithm = options.hash_algorithm.hashlib_name
    # Starts writing the unchanged entries to the output while the hash is computed. With overwrite, the
    # old signature is left out in the same pass (NuGet removes it first, then signs: same bytes).
    with archive.SignedPackageWriter(
        src, dst, replace_signature=options.overwrite, name_source=True, durable=options.durable,
        sync_folder=options.sync_folder,
    ) as writer:
        package_hash = writer.package_hash(algorithm)
        content = SignatureContent(options.hash_algorithm.oid, package_hash).to_bytes()
        ready = (
            builder.with_signer(signer.certificate, signer.chain)
            .with_hash_algorithm(algorithm)
            .with_signing_time(now)
            .with_content(content)
        )
        signed_attributes = ready.signed_attributes()
        value = sign_raw_checked(signer, signed_attributes, options.hash_algorithm)
        token = timestamp_value(timestamper, value, options.timestamp_hash_algorithm, now, options.trust_store)
        signature = ready.build(value, timestamp=token, signed_attributes=signed_attributes)
        writer.finish(signature, when=now)
    return SignResult(dst, kind, signature, token is not None, tuple(warnings))
