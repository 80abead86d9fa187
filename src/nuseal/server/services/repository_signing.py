"""The feed's repository signing step: ``sign_for_feed`` (server.md §B.2 step 4, §B.5), used by the validation job
(next wave) and by re-signing after a rotation or revocation.

What it does to a package, in order:
1. reads its signature (unsigned, author, or repository primary; anything else is refused, as nuget.org's
   ``OnlyAuthorSignaturesSupported``);
2. keeps an existing repository signature only when it is this feed's: its ``nuget-v3-service-index-url`` is this
   feed's service index, its certificate is the one we sign with, and it verifies under the feed's repository
   policy; any other repository primary signature or repository countersignature (several, foreign, forged,
   copied from another feed, made with an older certificate) is stripped;
3. signs: a repository **countersignature** on an author-signed package, a repository **primary** signature on an
   unsigned one, with proof-of-receipt, the feed's service index URL, the owners (sorted case-insensitively) and
   a timestamp from the certificate's TSA (``nuseal.sign.repository``, which writes the entry as NuGet requires);
4. re-verifies the output with ``nuseal.verify`` under ``feed_repository_policy`` (repository signature only,
   trusted chain, exactly one valid timestamp, certificate on the list), trusting the feed's roots plus the
   certificate's own root, and checks that an author signature came through untouched (same signer, same
   signature value, same signed content);
5. returns facts: what was done, the certificate's SHA-256, the output's SHA-512 (NuGet's package hash) and size.

The author signature is never altered: countersigning only adds an unsigned attribute to the author SignerInfo.
Errors are :class:`RepositorySigningError` with the findings that explain them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from nuseal.cms import der
from nuseal.cms.build import check_service_index_url
from nuseal.cms.countersign import strip_repository_countersignatures
from nuseal.cms.parse import PrimarySignature, load_primary_signature
from nuseal.codes import NuCode
from nuseal.enums import RevocationMode, SignatureKind
from nuseal.errors import NusealError, PackageFormatError, SignatureEntryError, SignatureFormatError
from nuseal.findings import Finding, Severity
from nuseal.package import hashing
from nuseal.server.services.repository_keys import RepositoryCert
from nuseal.sign.common import SignOptions, Timestamper
from nuseal.sign.repository import ReadSignature, RepositorySignRequest, read_signature_entry, repo_sign_package
from nuseal.trust.policy_builder import feed_repository_policy
from nuseal.verify.engine import verify_package
from nuseal.verify.result import PackageVerdict
from nuseal.verify.setup import VerificationSetup
from nuseal.x509 import certs

#: nuget.org's message for a primary signature that is neither author nor repository (ValidationIssueCode 4).
ONLY_AUTHOR_SIGNATURES = (
    "Signed packages must only have an author signature. Other signature types are not supported."
)


class RepositorySigningError(NusealError):
    """The package cannot be repository-signed, or the signed result did not verify; ``findings`` say why."""

    def __init__(self, message: str, code: NuCode | None = None, findings: Iterable[Finding] = ()) -> None:
        super().__init__(message, code)
        self.findings = tuple(findings)


class FeedSignatureAction(StrEnum):
    PRIMARY = "repository-primary"
    COUNTERSIGNATURE = "repository-countersignature"
    KEPT = "kept"  # the package already carried this feed's valid repository signature: bytes unchanged


@dataclass(frozen=True)
class FeedSignature:
    """What ``sign_for_feed`` did and what the output is."""

    action: FeedSignatureAction
    cert_sha256: str  # lower-case hex
    sha512: str  # base64 SHA-512 of the output file (NuGet's packageHash)
    size: int
    author_signed: bool
    stripped: tuple[str, ...] = ()  # the repository signatures removed first, described

    @property
    def signature_kind(self) -> str:
        """The ``package_versions.signature_kind`` of the output: its outermost signature is a repository one."""
        return SignatureKind.REPOSITORY.value


def service_index_url(base_url: str) -> str:
    """The service index a feed at ``base_url`` serves, which its repository signatures name."""
    return f"{base_url.rstrip('/')}/v3/index.json"


def http_signing_warning(base_url: str) -> str | None:
    """The start-up warning of a feed whose public URL is not https (None when it is)."""
    if service_index_url(base_url).startswith("https://"):
        return None
    return (f"The public URL {base_url} is not https: NuGet accepts a repository signature only when its "
            "nuget-v3-service-index-url is https, so this feed cannot repository-sign packages. Serve TLS "
            "(--tls-cert/--tls-key) or set --public-url https://... behind a TLS proxy.")  # fmt: skip


def sort_owners(owners: Iterable[str]) -> tuple[str, ...]:
    """Owners as nuget.org writes them into ``nuget-package-owners``: sorted case-insensitively (ordinal upper)."""
    return tuple(sorted(dict.fromkeys(owners), key=lambda name: (name.upper(), name)))


def check_feed_url(url: str) -> None:
    """:class:`RepositorySigningError` unless ``url`` can go into ``nuget-v3-service-index-url`` (absolute https)."""
    try:
        check_service_index_url(url)
    except ValueError as exc:
        raise RepositorySigningError(
            f"cannot repository-sign for the service index '{url}': NuGet requires an https URL there "
            f"(set the public URL to https://...): {exc}"
        ) from None


def sign_for_feed(
    src_path: Path,
    dst_path: Path,
    *,
    owners: Iterable[str],
    service_index_url: str,
    repo_cert: RepositoryCert,
    timestamper: Timestamper,
    now: datetime,
) -> FeedSignature:
    """Repository-sign ``src_path`` into ``dst_path`` for this feed (see the module docstring).

    ``dst_path`` is written through a temporary file and a rename (never half-written); it may equal ``src_path``.
    """
    src, dst = Path(src_path), Path(dst_path)
    check_feed_url(service_index_url)
    owner_list = sort_owners(owners)
    if not owner_list:
        raise RepositorySigningError("a repository signature names the package owners: the package has none")
    raw, primary, entry_time = _read_primary(src)
    stripped: tuple[str, ...] = ()
    if primary is not None:
        if primary.kind is SignatureKind.UNKNOWN:
            raise RepositorySigningError(ONLY_AUTHOR_SIGNATURES)
        found = _repository_signature(primary)
        if found is not None:
            if _is_ours(found, service_index_url, repo_cert) and _verify(src, repo_cert, now).valid:
                if src != dst:
                    _copy_atomically(src, dst)
                return FeedSignature(FeedSignatureAction.KEPT, repo_cert.sha256, hashing.content_hash(dst),
                                     dst.stat().st_size, primary.kind is SignatureKind.AUTHOR)  # fmt: skip
            stripped = (found.description,)
    # durable=False: the output is a working copy; the blob store's publish is what makes the bytes durable.
    request = RepositorySignRequest(repo_cert.signer, service_index_url, owner_list,
                                    SignOptions(overwrite=True, durable=False))  # fmt: skip
    try:
        # overwrite: an existing repository primary signature is replaced and repository countersignatures are
        # stripped in the same pass (nuget.org strips, then ScanAndSign signs: the same bytes).
        read = None if raw is None or primary is None else ReadSignature.of(raw, entry_time, primary)
        result = repo_sign_package(src, dst, request, timestamper=timestamper, now=now, read=read)
    except (PackageFormatError, SignatureEntryError, SignatureFormatError) as exc:
        raise RepositorySigningError(f"cannot repository-sign the package: {exc}", exc.code) from None
    verdict = _verify(dst, repo_cert, now)
    if not verdict.valid:
        problems = verdict.errors or verdict.findings
        detail = "; ".join(f"{f.code.value}: {f.message}" for f in problems) or verdict.error or "not valid"
        raise RepositorySigningError(f"the repository-signed package did not verify: {detail}",
                                     findings=problems)  # fmt: skip
    if raw is not None and primary is not None and primary.kind is SignatureKind.AUTHOR:
        _check_author_signature_intact(raw, result.signature)
    action = (FeedSignatureAction.COUNTERSIGNATURE if result.kind == "repository-countersignature"
              else FeedSignatureAction.PRIMARY)  # fmt: skip
    return FeedSignature(action, repo_cert.sha256, verdict.content_hash or hashing.content_hash(dst),
                         dst.stat().st_size, primary is not None and primary.kind is SignatureKind.AUTHOR,
                         stripped)  # fmt: skip


def _read_primary(path: Path) -> tuple[bytes | None, PrimarySignature | None, datetime | None]:
    """The package's signature entry, its primary signature and the entry's DOS time, read once (all None when
    unsigned); signing is handed what it needs of them (:class:`ReadSignature`)."""
    try:
        found = read_signature_entry(path)
        if found is None:
            return None, None, None
        return found[0], load_primary_signature(found[0]), found[1]
    except (PackageFormatError, SignatureEntryError, SignatureFormatError) as exc:
        raise RepositorySigningError(f"cannot read the package signature: {exc}", exc.code) from None


@dataclass(frozen=True)
class _FoundSignature:
    placement: str
    sha256: str | None
    url: str | None
    count: int

    @property
    def description(self) -> str:
        if self.count > 1:
            return f"{self.count} repository countersignatures"
        return (f"repository {self.placement} signature by certificate {self.sha256 or '(none)'} for "
                f"'{self.url or '(no service index)'}'")  # fmt: skip


def _repository_signature(primary: PrimarySignature) -> _FoundSignature | None:
    """The package's repository signature, if any (several countersignatures count as one foreign finding)."""
    if primary.kind is SignatureKind.REPOSITORY:
        return _FoundSignature("primary", _sha256(primary.signer_certificate), primary.service_index_url, 1)
    try:
        counter = primary.countersignature()
    except SignatureFormatError:  # NU3032 (several) or NU3031 (malformed): stripped like a foreign one
        return _FoundSignature("counter", None, None, 2)
    if counter is None:
        return None
    return _FoundSignature("counter", _sha256(counter.signer_certificate), counter.service_index_url, 1)


def _sha256(certificate: object) -> str | None:
    from cryptography import x509

    return certs.fingerprint(certificate).lower() if isinstance(certificate, x509.Certificate) else None


def _is_ours(found: _FoundSignature, url: str, repo_cert: RepositoryCert) -> bool:
    return found.count == 1 and found.url == url and found.sha256 == repo_cert.sha256


def _verify(path: Path, repo_cert: RepositoryCert, now: datetime) -> PackageVerdict:
    # Offline revocation: this checks that the feed's own signature is well-formed, trusted and timestamped;
    # whether the feed's certificate is revoked is the operator's call (``nuseal admin repo-cert revoke``).
    setup = VerificationSetup(feed_repository_policy([repo_cert.sha256]), repo_cert.trust_store,
                              RevocationMode.OFFLINE)  # fmt: skip
    with setup.open() as trust:
        # read_identity=False: the feed knows the package (the nuspec's id and version judge nothing here).
        return verify_package(path, policy=setup.policy, trust=trust, now=now, compute_content_hash=True,
                              read_identity=False)  # fmt: skip


_AuthorParts = tuple[bytes, bytes, bytes, bytes, frozenset[bytes]]


def _author_parts(signature: bytes) -> _AuthorParts:
    """What a repository countersignature must leave alone, as DER: the primary signer's identifier, signed
    attributes and signature value, the signed content, and the certificates (countersigning only adds some).

    Read with the DER walker (offsets, no objects: ~20 times cheaper than asn1crypto's lazy parse, which this took
    ~0.3 ms per call with): the output was verified as a whole just before, so this only has to see that the
    author's part is byte-identical, not parse it again. The two sides of a comparison are always read the same way
    (see :func:`_check_author_signature_intact`)."""
    signed_data = der.contents_of(der.tlvs(der.contents_of(signature, 0x30))[1], 0xA0)  # ContentInfo's [0] content
    fields = der.tlvs(der.contents_of(signed_data, 0x30))
    version, _digests, encap, *middle, signer_infos = fields
    der.contents_of(version, 0x02)
    certificates = next((der.tlvs(der.contents_of(f)) for f in middle if f[:1] == b"\xa0"), [])
    signer = der.tlvs(der.contents_of(der.tlvs(der.contents_of(signer_infos, 0x31))[0], 0x30))
    signed_attrs = next((f for f in signer[3:4] if f[:1] == b"\xa0"), b"")
    signature_value = signer[5 if signed_attrs else 4]
    return (signer[1], signed_attrs, der.contents_of(signature_value, 0x04), encap, frozenset(certificates))


def _author_parts_asn1(signature: bytes) -> _AuthorParts:
    """:func:`_author_parts` by asn1crypto, for what the walker cannot read (BER the pushed signature may carry)."""
    from asn1crypto import cms

    signed_data = cms.ContentInfo.load(signature)["content"]
    signer = signed_data["signer_infos"][0]
    certificates = frozenset(c.dump() for c in signed_data["certificates"] or ())
    return (signer["sid"].dump(), signer["signed_attrs"].dump(), signer["signature"].contents,
            signed_data["encap_content_info"].dump(), certificates)  # fmt: skip


def _check_author_signature_intact(before: bytes, after: bytes) -> None:
    """``after`` (the signature written) keeps the author signature of ``before`` (the one pushed) byte for byte.
    The certificates that only ``before``'s repository countersignatures needed go with them (they are replaced)."""
    try:
        stripped = strip_repository_countersignatures(before)
        try:
            parts = _author_parts(stripped), _author_parts(after)
        except der.DECODE_ERRORS:
            parts = _author_parts_asn1(stripped), _author_parts_asn1(after)
        (*kept, certificates), (*now, certificates_now) = parts
        intact = kept == now and certificates <= certificates_now
    except (ValueError, TypeError, KeyError, IndexError, SignatureFormatError):
        intact = False
    if not intact:
        # Cannot happen unless the signing library regresses: refuse to publish rather than serve it.
        raise RepositorySigningError("the author signature changed while repository-signing: not published",
                                     findings=[Finding(NuCode.NU3008, Severity.ERROR, "author signature altered")])


def _copy_atomically(src: Path, dst: Path) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, temp)
        os.replace(temp, dst)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# --- a trial signature: the whole chain of signing on a throw-away package --------------------------------------

_TRIAL_NUSPEC = b"""<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">
  <metadata><id>Nuseal.RepositorySigningCheck</id><version>1.0.0</version><authors>nuseal</authors>
  <description>A throw-away package nuseal signs to check a repository certificate.</description></metadata>
</package>
"""


def trial_sign(
    *, service_index_url: str, repo_cert: RepositoryCert, timestamper: Timestamper, now: datetime
) -> FeedSignature:
    """Sign and re-verify a throw-away package: proves the key, the TSA and the trust settings work together before a
    certificate is accepted, and before a worker starts on real packages (a broken setup then fails once, clearly,
    instead of once per package)."""
    with tempfile.TemporaryDirectory(prefix="nuseal-trial-") as folder:
        src = Path(folder) / "trial.nupkg"
        with zipfile.ZipFile(src, "w") as archive:
            archive.writestr("Nuseal.RepositorySigningCheck.nuspec", _TRIAL_NUSPEC)
        return sign_for_feed(src, Path(folder) / "signed.nupkg", owners=["nuseal"],
                             service_index_url=service_index_url, repo_cert=repo_cert, timestamper=timestamper,
                             now=now)  # fmt: skip
