"""The verification pipeline of NuGet's ``PackageSignatureVerifier`` (spec §6.3-6.5).

Order: is it signed (level 1) → load the primary signature (NU3005, NU3003, NU3009-NU3011, NU3000, NU3007) →
providers: integrity (NU3008), each allow list (NU3034), then trust and validity per signature (timestamps,
certificate checks, chain, expiry, repository countersignature fallback). The package is valid iff at least one
provider ran and every provider's status is Valid. Severity of every finding comes from the policy here; the
checks below it only say what they saw. Nothing here prints, reads the clock or the environment.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from datetime import datetime
from enum import Flag, auto
from pathlib import Path
from typing import BinaryIO

from cryptography import x509

from nuseal import oids
from nuseal.cms.parse import PrimarySignature, RepositoryCountersignature, SignerView, load_primary_signature
from nuseal.cms.parse import verify_signer_signature as check_cms_signature
from nuseal.codes import IssueCode, Messages, NuCode
from nuseal.enums import RevocationMode, SignatureKind
from nuseal.errors import NusealError, PackageFormatError, SignatureEntryError, SignatureFormatError, TimestampError
from nuseal.package import hashing, nuspec, zipformat
from nuseal.record import Struct, field, replace
from nuseal.timestamp.token import Timestamp, check_timestamp, load_timestamp
from nuseal.verify.policy import (
    AllowList,
    AllowListEntry,
    CountersignatureBehavior,
    Placement,
    VerificationPolicy,
)
from nuseal.verify.result import (
    Finding,
    PackageVerdict,
    Severity,
    SignatureVerdict,
    Status,
    TimestampSummary,
)
from nuseal.x509 import certs
from nuseal.x509.chain import ChainResult, ChainStatus, build_chain, status_of
from nuseal.x509.revocation import RevocationChecker
from nuseal.x509.roots import TrustStore


class _Flags(Flag):
    """NuGet ``SignatureVerificationStatusFlags`` that decide a signature's status (spec §6.3)."""

    NONE = 0
    NO_CERTIFICATE = auto()
    SIGNATURE_CHECK_FAILED = auto()
    SIGNATURE_ALGORITHM_UNSUPPORTED = auto()
    CERTIFICATE_PUBLIC_KEY_INVALID = auto()
    HAS_LIFETIME_SIGNING_EKU = auto()
    CERTIFICATE_VALIDITY_IN_THE_FUTURE = auto()
    CERTIFICATE_EXPIRED = auto()
    CHAIN_BUILDING_FAILURE = auto()
    UNKNOWN_REVOCATION = auto()
    UNTRUSTED_ROOT = auto()
    CERTIFICATE_REVOKED = auto()
    NO_VALID_TIMESTAMP = auto()
    MULTIPLE_TIMESTAMPS = auto()


_SUSPECT = _Flags.CERTIFICATE_REVOKED
_ILLEGAL = (_Flags.NO_CERTIFICATE | _Flags.SIGNATURE_CHECK_FAILED | _Flags.SIGNATURE_ALGORITHM_UNSUPPORTED
            | _Flags.CERTIFICATE_PUBLIC_KEY_INVALID | _Flags.HAS_LIFETIME_SIGNING_EKU
            | _Flags.CERTIFICATE_VALIDITY_IN_THE_FUTURE)
_UNTRUSTED = (_Flags.CERTIFICATE_EXPIRED | _Flags.CHAIN_BUILDING_FAILURE | _Flags.UNKNOWN_REVOCATION
              | _Flags.UNTRUSTED_ROOT)
_CERT_CHECK_FLAGS = {
    NuCode.NU3013: _Flags.SIGNATURE_ALGORITHM_UNSUPPORTED,
    NuCode.NU3014: _Flags.CERTIFICATE_PUBLIC_KEY_INVALID,
    NuCode.NU3015: _Flags.HAS_LIFETIME_SIGNING_EKU,
    NuCode.NU3017: _Flags.CERTIFICATE_VALIDITY_IN_THE_FUTURE,
}
#: Chain statuses NuGet handles itself; anything else is a "chain building issue" (NU3012 / NU3028).
_HANDLED_CHAIN_STATUS = (ChainStatus.NOT_TIME_VALID | ChainStatus.NOT_TIME_NESTED | ChainStatus.REVOKED
                         | ChainStatus.REVOCATION_STATUS_UNKNOWN | ChainStatus.OFFLINE_REVOCATION
                         | ChainStatus.UNTRUSTED_ROOT)
_UNKNOWN_REVOCATION = ChainStatus.REVOCATION_STATUS_UNKNOWN | ChainStatus.OFFLINE_REVOCATION
# The same as ints: a chain's status is tested a dozen times per signature, and ``Flag`` arithmetic costs
# microseconds per operation (``status_of`` turns a value back into a ``ChainStatus`` where one is needed).
_HANDLED, _UNKNOWN = _HANDLED_CHAIN_STATUS.value, _UNKNOWN_REVOCATION.value
_REVOKED, _UNTRUSTED_ROOT = ChainStatus.REVOKED.value, ChainStatus.UNTRUSTED_ROOT.value
_OFFLINE_REVOCATION = ChainStatus.OFFLINE_REVOCATION.value


def _status_from_flags(flags: _Flags) -> Status:
    """NuGet ``VerificationUtility.GetSignatureVerificationStatus``."""
    if flags == _Flags.NONE:
        return Status.VALID
    if flags & _SUSPECT:
        return Status.SUSPECT
    if not flags & ~(_ILLEGAL | _UNTRUSTED | _Flags.NO_VALID_TIMESTAMP | _Flags.MULTIPLE_TIMESTAMPS):
        return Status.DISALLOWED
    return Status.UNKNOWN


class TrustContext(Struct, frozen=True):
    """Where trust comes from: root bundles and a revocation checker (online or offline)."""

    trust_store: TrustStore
    revocation: RevocationChecker


class _Log(Struct):
    """Findings in the order NuGet would log them."""

    findings: list[Finding] = field(default_factory=list)

    def add(self, code: NuCode, as_error: bool, message: str, target: str, subject: str | None = None) -> None:
        severity = Severity.ERROR if as_error else Severity.WARNING
        self.findings.append(Finding(code, severity, message, target, subject))

    def info(self, code: NuCode, message: str, target: str, subject: str | None = None) -> None:
        self.findings.append(Finding(code, Severity.INFO, message, target, subject))


def _friendly(kind: SignatureKind, placement: str) -> str:
    if placement == "countersignature":
        return "repository countersignature"
    return {SignatureKind.AUTHOR: "author primary signature",
            SignatureKind.REPOSITORY: "repository primary signature"}.get(kind, "primary signature")


def verify_package(path: Path, *, policy: VerificationPolicy, trust: TrustContext, now: datetime,
                   compute_content_hash: bool = False, read_identity: bool = True) -> PackageVerdict:
    """Verify one package file under ``policy`` as of ``now``. Never raises for a bad package: a file that is
    not a readable zip gives a verdict with ``error`` set (invalid); everything else is findings.

    Every damaged input is judged by the checks themselves (the load boundaries turn parser errors into NU codes).
    An exception that still escapes them is a bug in nuseal or in a library: it becomes this package's verdict
    (invalid, ``error`` and an NU3003 finding naming the exception and where it was raised, and
    ``extra["internal_error"]``) so that a batch goes on with the next package. Tests assert that the marker never
    appears, so such bugs are found and fixed rather than hidden.

    ``read_identity=False`` leaves the verdict's ``package_id`` and ``version`` None: a caller that knows which
    package it verifies (a feed re-signing its own) skips reading the nuspec, which judges nothing.
    """
    path = Path(path)
    try:
        with certs.quiet():
            return _verify_path(path, policy, trust, now, compute_content_hash, read_identity)
    except Exception as exc:  # last resort for one package, see the docstring
        return _internal_error(path, exc)


def _verify_path(path: Path, policy: VerificationPolicy, trust: TrustContext, now: datetime,
                 compute_content_hash: bool, read_identity: bool = True) -> PackageVerdict:
    try:
        with path.open("rb") as f:
            layout = zipformat.read_layout(f)
            return _verify_open(f, layout, path, policy, trust, now, compute_content_hash, read_identity)
    except PackageFormatError as exc:
        return PackageVerdict(str(path), None, None, False, (), error=f"'{path}' is not a valid package file: "
                                                                     f"{exc.message}")
    except OSError as exc:
        return PackageVerdict(str(path), None, None, False, (), error=f"'{path}' cannot be read: {exc.strerror}")


#: Frames in this folder are nuseal's own (a checkout's folder may be called "nuseal" too: its tests are not).
_PACKAGE_FOLDER = str(Path(__file__).resolve().parent.parent) + os.sep


def _internal_error(path: Path, exc: Exception) -> PackageVerdict:
    import traceback  # only for a bug's verdict

    frames = traceback.extract_tb(exc.__traceback__)
    site = next((f"{Path(frame.filename).name}:{frame.lineno} ({frame.name})" for frame in reversed(frames)
                 if str(Path(frame.filename).resolve()).startswith(_PACKAGE_FOLDER)), "?")
    what = f"{type(exc).__name__}: {exc}"
    message = (f"{Messages.SIGNATURE_INVALID} (internal error in nuseal while verifying '{path}': {what}, "
               f"raised at {site}; please report it)")
    finding = Finding(NuCode.NU3003, Severity.ERROR, message, "package")
    return PackageVerdict(str(path), None, None, False, (Status.UNKNOWN,), findings=(finding,), error=message,
                          extra={"internal_error": f"{what} at {site}"})


def _identity(f: BinaryIO, layout: zipformat.ArchiveLayout, path: Path) -> tuple[str | None, str | None]:
    try:
        data = _root_nuspec(f, layout, path)
    except OSError:
        data = None  # zipfile reads it, and words whatever fails, as before
    try:
        identity = nuspec.parse_identity(*data) if data is not None else nuspec.read_identity(path)
    except NusealError:
        return None, None
    return identity.id, identity.version


def _root_nuspec(f: BinaryIO, layout: zipformat.ArchiveLayout, path: Path) -> tuple[bytes, str] | None:
    """The root nuspec's bytes and where-label exactly as ``nuspec.read_identity`` would read them with zipfile,
    from the layout already read (``zipformat.zipfile_names``); None when that cannot be vouched for, or when
    ``nuspec`` would refuse the archive (no, several or an oversized root nuspec): then ``read_identity`` decides.
    The candidates are chosen by ``nuspec.is_root_nuspec_name``, as ``read_identity`` chooses them; a test compares
    both readings on every vector and on archives built to differ."""
    names = zipformat.zipfile_names(f, layout)
    if names is None:
        return None
    found = [index for index, name in enumerate(names) if nuspec.is_root_nuspec_name(name)]
    if len(found) != 1:
        return None
    data = zipformat.read_entry_as_zipfile(f, layout, found[0], nuspec.MAX_NUSPEC_BYTES)
    if data is None:
        return None
    return data, f"{path}!{names[found[0]]}"


def _verify_open(f: BinaryIO, layout: zipformat.ArchiveLayout, path: Path, policy: VerificationPolicy,
                 trust: TrustContext, now: datetime, compute_content_hash: bool,
                 read_identity: bool = True) -> PackageVerdict:
    package_id, version = _identity(f, layout, path) if read_identity else (None, None)
    log = _Log()
    base = PackageVerdict(str(path), package_id, version, False, ())
    if not zipformat.has_signature_entry(layout):
        whole_file_hash = hashing.content_hash(path) if compute_content_hash else None
        if policy.allow_unsigned:
            return replace(base, statuses=(Status.VALID,), content_hash=whole_file_hash)
        log.add(NuCode.NU3004, True, policy.unsigned_message, "package")
        return replace(base, statuses=(Status.DISALLOWED,), findings=tuple(log.findings),
                       content_hash=whole_file_hash)

    base = replace(base, signed=True)
    try:
        entry = zipformat.find_signature_entry(f, layout)
        signature = load_primary_signature(zipformat.read_signature_bytes(f, entry))
    except (SignatureEntryError, SignatureFormatError) as exc:
        code = exc.code or NuCode.NU3003
        log.add(code, not policy.allow_illegal, exc.message, "primary")
        status = Status.VALID if policy.allow_illegal else Status.DISALLOWED
        return replace(base, statuses=(status,), findings=tuple(log.findings))

    # Steps 2 and 3 run before step 1 but are logged after it, in NuGet's order: a package hash started ahead
    # (``hashing.prefetch``, the CLI does so for a large package) then finishes on another core meanwhile.
    countersignature, counter_error = _countersignature(signature)
    checks = _Log()
    # 2. Allow lists, in the order the policy lists them.
    list_statuses = [_check_allow_list(allow_list, signature, countersignature, policy, checks)
                     for allow_list in policy.allow_lists]
    # 3. Trust and validity of the signatures.
    verdicts, trust_status = _trust_and_validity(signature, countersignature, counter_error, policy, trust, now,
                                                 checks)

    statuses: list[Status] = []
    # 1. Integrity: the package hash over the package without its signature entry (spec §2.2).
    digest_name = signature.content.hash_name
    actual: bytes | None = None
    content_hash: str | None = None
    try:
        if compute_content_hash:
            # One pass for both: the signed hash and NuGet's SHA-512 content hash (.nupkg.metadata).
            plan = hashing.unsigned_view_plan(f, layout, entry)
            actual, content_digest = hashing.plan_digests(f, plan, (digest_name, "sha512"))
            content_hash = base64.b64encode(content_digest).decode("ascii")
        else:
            actual = hashing.package_hash(f, layout, entry, digest_name)
    except (PackageFormatError, OSError):
        pass  # NuGet: any exception while hashing is an integrity failure (spec §2.2)
    if actual != signature.content.hash_value:
        log.add(NuCode.NU3008, True, Messages.INTEGRITY_FAILED, "package")
        statuses.append(Status.SUSPECT)
    else:
        statuses.append(Status.VALID)
    statuses += [*list_statuses, trust_status]
    log.findings.extend(checks.findings)
    return replace(base, statuses=tuple(statuses), signatures=tuple(verdicts), findings=tuple(log.findings),
                   content_hash=content_hash)


def _countersignature(
    signature: PrimarySignature,
) -> tuple[RepositoryCountersignature | None, SignatureFormatError | None]:
    try:
        return signature.countersignature(), None
    except SignatureFormatError as exc:
        return None, exc


# --- allow lists (spec §6.5) ------------------------------------------------------------------------------------

def _fingerprint(certificate: x509.Certificate | None, entry: AllowListEntry) -> str | None:
    if certificate is None:
        return None
    return certs.fingerprint(certificate, entry.algorithm.hashlib_name)


def _owners_match(entry: AllowListEntry, owners: Sequence[str]) -> bool:
    # NuGet: a repository entry with owners requires the signature's owners to intersect (ordinal).
    return not entry.owners or bool(set(entry.owners) & set(owners))


def _entry_matches(entry: AllowListEntry, signature: PrimarySignature,
                   countersignature: RepositoryCountersignature | None) -> bool:
    if entry.placement & Placement.PRIMARY and signature.kind in entry.targets:
        fp = _fingerprint(signature.signer_certificate, entry)
        if fp is not None and fp == entry.fingerprint.upper() and (
                signature.kind is not SignatureKind.REPOSITORY or _owners_match(entry, signature.owners)):
            return True
    if (entry.placement & Placement.COUNTERSIGNATURE and countersignature is not None
            and SignatureKind.REPOSITORY in entry.targets):
        fp = _fingerprint(countersignature.signer_certificate, entry)
        if fp is not None and fp == entry.fingerprint.upper() and _owners_match(entry, countersignature.owners):
            return True
    return False


def _check_allow_list(allow_list: AllowList, signature: PrimarySignature,
                      countersignature: RepositoryCountersignature | None, policy: VerificationPolicy,
                      log: _Log) -> Status:
    if not allow_list.entries:
        if allow_list.require_non_empty:
            log.add(NuCode.NU3034, True, allow_list.empty_message, "package")
            return Status.DISALLOWED
        return Status.VALID
    if any(_entry_matches(entry, signature, countersignature) for entry in allow_list.entries):
        return Status.VALID
    log.add(NuCode.NU3034, not policy.allow_untrusted, allow_list.no_match_message, "primary")
    return Status.VALID if policy.allow_untrusted else Status.DISALLOWED


# --- trust and validity (spec §5.4, §6.4) ------------------------------------------------------------------------

class _SignatureOutcome(Struct):
    verdict: SignatureVerdict
    flags: _Flags
    status: Status
    timestamp: Timestamp | None
    findings: list[Finding]


def _trust_and_validity(signature: PrimarySignature, countersignature: RepositoryCountersignature | None,
                        counter_error: SignatureFormatError | None, policy: VerificationPolicy, trust: TrustContext,
                        now: datetime, log: _Log) -> tuple[list[SignatureVerdict], Status]:
    """NuGet ``SignatureTrustAndValidityVerificationProvider``: the policy's verification targets and placement
    pick the signatures to verify; the countersignature behaviour decides when the countersignature counts."""
    primary: _SignatureOutcome | None = None
    if policy.signature_placement & Placement.PRIMARY and signature.kind in policy.verification_targets:
        primary = _verify_signer(signature.signer, signature.content_bytes, "primary", signature, policy, trust, now,
                                 service_index=signature.service_index_url, owners=signature.owners)
    # NuGet's settings refuse a countersignature placement without the repository target, and the "never" behaviour
    # with it; nuseal derives instead: the countersignature is verified only when all three allow it.
    counter_requested = (SignatureKind.REPOSITORY in policy.verification_targets
                         and bool(policy.signature_placement & Placement.COUNTERSIGNATURE)
                         and policy.repository_countersignature is not CountersignatureBehavior.NEVER)
    status = primary.status if primary is not None else Status.UNKNOWN
    primary_findings = primary.findings if primary is not None else []
    verdicts = [primary.verdict if primary is not None
                else _describe_only(signature.signer, "primary", signature.kind)]
    counter_findings: list[Finding] = []
    if counter_error is not None:
        counter_findings.append(Finding(counter_error.code or NuCode.NU3031,
                                        Severity.ERROR if not policy.allow_illegal else Severity.WARNING,
                                        counter_error.message, "countersignature"))
        if not policy.allow_illegal:
            status = min(status, Status.DISALLOWED)
    behavior = policy.repository_countersignature
    counter_verified = False
    if countersignature is None:
        if behavior is CountersignatureBehavior.ALWAYS and counter_requested and counter_error is None:
            counter_findings.append(Finding(NuCode.NU3038, Severity.ERROR, Messages.COUNTERSIGNATURE_REQUIRED,
                                            "countersignature"))
            status = min(status, Status.DISALLOWED) if primary is not None else Status.DISALLOWED
    elif (signature.kind is not SignatureKind.REPOSITORY and counter_requested
          and _should_check_countersignature(behavior, primary)):
        counter = _verify_signer(countersignature.signer, countersignature.primary_signature_value,
                                 "countersignature", signature, policy, trust, now,
                                 service_index=countersignature.service_index_url, owners=countersignature.owners)
        counter_verified = True
        verdicts.append(counter.verdict)
        counter_findings.extend(counter.findings)
        if primary is None:
            status = counter.status
        else:
            if counter.status is Status.VALID:
                primary_findings, status = _fallback(primary, counter, signature, status)
            status = min(status, counter.status)
    else:
        verdicts.append(_describe_only(countersignature.signer, "countersignature", SignatureKind.REPOSITORY))
    if primary is None and not counter_verified and status is Status.UNKNOWN:
        # NuGet returns Unknown without a word; nuseal says why the package cannot be valid.
        log.findings.append(Finding(IssueCode.NO_VERIFIABLE_SIGNATURE, Severity.ERROR,
                                    _not_a_target_message(signature, policy), "primary"))
    log.findings.extend(primary_findings)
    log.findings.extend(counter_findings)
    return verdicts, status


def _not_a_target_message(signature: PrimarySignature, policy: VerificationPolicy) -> str:
    targets = ", ".join(sorted(kind.value for kind in policy.verification_targets)) or "none"
    placements = ", ".join(name for flag, name in ((Placement.PRIMARY, "primary"),
                                                   (Placement.COUNTERSIGNATURE, "countersignature"))
                           if flag & policy.signature_placement) or "none"
    return (f"The package has a {signature.kind.value} primary signature, and the verification policy verifies none "
            f"of its signatures (signature kinds: {targets}; placements: {placements}).")


def _should_check_countersignature(behavior: CountersignatureBehavior, primary: _SignatureOutcome | None) -> bool:
    if behavior in (CountersignatureBehavior.IF_EXISTS, CountersignatureBehavior.ALWAYS):
        return True
    if behavior is CountersignatureBehavior.NEVER:
        return False
    if primary is None:  # only the countersignature can give a verdict
        return True
    untrusted = bool(primary.flags & _Flags.UNTRUSTED_ROOT) and primary.status is not Status.VALID
    return untrusted or bool(primary.flags & _Flags.CERTIFICATE_EXPIRED)


def _fallback(primary: _SignatureOutcome, counter: _SignatureOutcome, signature: PrimarySignature,
              status: Status) -> tuple[list[Finding], Status]:
    """A valid repository countersignature stands in for an untrusted or expired author signature (§6.4 step 3)."""
    findings = primary.findings
    untrusted = bool(primary.flags & _Flags.UNTRUSTED_ROOT)
    expired = bool(primary.flags & _Flags.CERTIFICATE_EXPIRED)
    if not untrusted and not expired:
        return findings, status
    remaining = primary.flags
    if untrusted:
        findings = [f for f in findings if f.code is not NuCode.NU3018]
        remaining &= ~_Flags.UNTRUSTED_ROOT
    counter_ts = counter.timestamp
    if (expired and counter_ts is not None and signature.signer_certificate is not None
            and _valid_at(signature.signer_certificate, counter_ts.lower_limit, counter_ts.upper_limit)):
        findings = [f for f in findings if f.code is not NuCode.NU3037]
        remaining &= ~_Flags.CERTIFICATE_EXPIRED
    return findings, _status_from_flags(remaining)


def _valid_at(certificate: x509.Certificate, lower: datetime, upper: datetime) -> bool:
    """NuGet's strict inequalities (spec §5.4): ``lower > NotBefore and upper < NotAfter``."""
    return lower > certs.not_before(certificate) and upper < certs.not_after(certificate)


def _describe_only(signer: SignerView, placement: str, kind: SignatureKind) -> SignatureVerdict:
    """A signature the policy did not verify: its facts, status Unknown."""
    certificate = signer.certificate
    return SignatureVerdict(
        kind=kind, placement=placement,
        certificate=certs.summarize(certificate) if certificate is not None else None,
        hash_algorithm=_hash_label(signer), timestamps=(),
        service_index_url=signer.service_index_url, owners=signer.owners,
        status=Status.UNKNOWN,
    )


def _hash_label(signer: SignerView) -> str:
    return oids.SHA2_HASHES.get(signer.digest_algorithm_oid, signer.digest_algorithm_oid).upper()


def _verify_signer(signer: SignerView, signed_content: bytes, placement: str, signature: PrimarySignature,
                   policy: VerificationPolicy, trust: TrustContext, now: datetime, *, service_index: str | None,
                   owners: tuple[str, ...]) -> _SignatureOutcome:
    """NuGet ``VerifyValidityAndTrust`` for one signer (primary or countersigner)."""
    kind = signer.kind if placement == "primary" else SignatureKind.REPOSITORY
    name = _friendly(kind, placement)
    findings = _Log()
    certificate = signer.certificate
    summary = certs.summarize(certificate) if certificate is not None else None
    bag = signature.certificates

    def outcome(flags: _Flags, timestamps: tuple[TimestampSummary, ...], timestamp: Timestamp | None,
                chain: ChainResult | None = None, status: Status | None = None) -> _SignatureOutcome:
        final = status if status is not None else _status_from_flags(flags)
        verdict = SignatureVerdict(
            kind=kind, placement=placement, certificate=summary, hash_algorithm=_hash_label(signer),
            timestamps=timestamps, service_index_url=service_index, owners=owners, status=final,
            chain=tuple(certs.summarize(c) for c in chain.certificates) if chain else (),
            findings=tuple(findings.findings))
        return _SignatureOutcome(verdict, flags, final, timestamp, findings.findings)

    # Step 1: timestamp (spec §5.4). Its findings are logged after the signature's, as NuGet concatenates them.
    timestamp_log = _Log()
    timestamp, timestamp_summaries, ts_ok = _valid_timestamp(signer, name, placement, policy, trust, now, bag,
                                                            timestamp_log)
    result = _verify_signature(signer, signed_content, placement, name, timestamp, policy, trust, now, bag,
                               findings)
    flags, chain = result
    findings.findings.extend(timestamp_log.findings)
    if not ts_ok and not policy.allow_ignore_timestamp:
        # NuGet: the signature is still verified (as of now) so its issues are reported, but the verdict is
        # Disallowed with NoValidTimestamp only (so no countersignature fallback applies).
        return outcome(_Flags.NO_VALID_TIMESTAMP, timestamp_summaries, None, chain, status=Status.DISALLOWED)
    return outcome(flags, timestamp_summaries, timestamp, chain)


def _verify_signature(signer: SignerView, signed_content: bytes, placement: str, name: str,
                      timestamp: Timestamp | None, policy: VerificationPolicy, trust: TrustContext, now: datetime,
                      bag: Sequence[x509.Certificate], findings: _Log) -> tuple[_Flags, ChainResult | None]:
    """NuGet ``Signature.Verify``: CMS check, certificate checks, chain, revocation, expiry (spec §6.4 step 2)."""
    certificate = signer.certificate
    # Step 2: the signature itself.
    if certificate is None:
        findings.add(NuCode.NU3010, not policy.allow_illegal, Messages.NO_SIGNING_CERT, placement)
        return _Flags.NO_CERTIFICATE, None
    fingerprint = certs.fingerprint(certificate)
    if check_cms_signature(signer, signed_content) is not None:
        findings.add(NuCode.NU3012, not policy.allow_illegal, Messages.VALIDATION_FAILED.format(name), placement,
                     fingerprint)
        return _Flags.SIGNATURE_CHECK_FAILED, None
    flags = _Flags.NONE
    for code, message in certs.check_certificate(certificate, now, name):
        findings.add(code, not policy.allow_illegal, message, placement, fingerprint)
        flags |= _CERT_CHECK_FLAGS[code]
    if flags:
        return flags, None

    verification_time = timestamp.upper_limit if timestamp else now
    chain = build_chain(certificate, extra_certificates=bag, trust_anchors=trust.trust_store.code_signing,
                        usage_eku=oids.CODE_SIGNING_EKU, verification_time=verification_time,
                        revocation=trust.revocation)
    status = chain.status.value
    other = status & ~_HANDLED
    if other:
        for message in _messages_for(chain, status_of(other)):
            findings.add(NuCode.NU3012, not policy.allow_illegal, Messages.CHAIN_ISSUE.format(name, message),
                         placement, fingerprint)
        flags |= _Flags.CHAIN_BUILDING_FAILURE
    if status & _REVOKED:
        for message in _messages_for(chain, ChainStatus.REVOKED):
            findings.add(NuCode.NU3012, True, Messages.CHAIN_ISSUE.format(name, message), placement, fingerprint)
        return flags | _Flags.CERTIFICATE_REVOKED, chain
    if status & _UNTRUSTED_ROOT:
        # NuGet quirk: the allowUntrustedRoot lookup is ordinal against uppercase hex; we compare uppercase on both
        # sides so that a lowercase fingerprint in nuget.config still works (documented in docs/decisions).
        allowed_root = fingerprint in {fp.upper() for fp in policy.allow_untrusted_root_fingerprints}
        if not allowed_root:
            findings.add(NuCode.NU3018, not policy.allow_untrusted, Messages.UNTRUSTED_ROOT.format(name),
                         placement, fingerprint)
            root = chain.root
            findings.add(NuCode.NU3042, False, _root_not_in_bundle_message(root), placement, certs.fingerprint(root))
            if not policy.allow_untrusted:
                flags |= _Flags.UNTRUSTED_ROOT
    if status & _UNKNOWN and policy.report_unknown_revocation:
        message = _revocation_message(chain, name)
        # The checker's mode is authoritative: it is what actually decided whether the network was asked.
        if trust.revocation.mode is RevocationMode.ONLINE:
            findings.add(NuCode.NU3018, not policy.allow_unknown_revocation, message, placement, fingerprint)
        else:
            findings.info(NuCode.NU3018, message, placement, fingerprint)
        if not policy.allow_unknown_revocation:
            flags |= _Flags.UNKNOWN_REVOCATION
    lower = timestamp.lower_limit if timestamp else now
    upper = timestamp.upper_limit if timestamp else now
    if not _valid_at(certificate, lower, upper):
        findings.add(NuCode.NU3037, not policy.allow_untrusted, Messages.CERT_EXPIRED.format(name), placement,
                     fingerprint)
        flags |= _Flags.CERTIFICATE_EXPIRED
    return flags, chain


def _messages_for(chain: ChainResult, statuses: ChainStatus) -> list[str]:
    key = (chain.status.value, statuses.value)
    found = _messages_by_status.get(key)
    if found is None:  # ``Flag`` arithmetic is slow and there are few status values: each pair is worked out once
        names = [s.dotnet_name for s in statuses.flags()]
        found = tuple(m for m in chain.status_messages() if any(m.startswith(name) for name in names))
        found = found or (", ".join(names),)
        if len(_messages_by_status) < 1024:
            _messages_by_status[key] = found
    return list(found)


_messages_by_status: dict[tuple[int, int], tuple[str, ...]] = {}


def _revocation_message(chain: ChainResult, name: str) -> str:
    if chain.status.value & _OFFLINE_REVOCATION:
        return Messages.REVOCATION_OFFLINE.format(name)
    return Messages.REVOCATION_UNKNOWN.format(name)


def _root_not_in_bundle_message(root: x509.Certificate) -> str:
    # NuGet also prints the root's PEM; we keep the message to one line (the PEM is in ``nuseal inspect``).
    return (f"The root certificate is not in the certificate bundle: subject '{certs.subject_string(root)}', "
            f"SHA-256 fingerprint {certs.fingerprint(root)}.")


def _valid_timestamp(signer: SignerView, name: str, placement: str, policy: VerificationPolicy,
                     trust: TrustContext, now: datetime, bag: Sequence[x509.Certificate], log: _Log
                     ) -> tuple[Timestamp | None, tuple[TimestampSummary, ...], bool]:
    """NuGet ``Signature.TryGetValidTimestamp``: returns (timestamp to use, summaries, usable-or-absent)."""
    tokens = signer.timestamp_tokens
    if not tokens:
        log.add(NuCode.NU3027, not policy.allow_no_timestamp, Messages.NO_TIMESTAMP.format(name), placement)
        return None, (), policy.allow_no_timestamp
    if len(tokens) > 1 and not policy.allow_multiple_timestamps:
        log.add(NuCode.NU3000, True, Messages.MULTIPLE_TIMESTAMPS, placement)
        return None, (), False
    treat_as_error = not policy.allow_ignore_timestamp
    target = f"{placement}-timestamp"
    try:
        timestamp = load_timestamp(tokens[0], name)
    except TimestampError as exc:
        log.add(exc.code or NuCode.NU3021, treat_as_error, exc.message, target)
        return None, (), False
    problems = check_timestamp(timestamp, signer.signature_value, now, name)
    for code, message in problems:
        log.add(code, treat_as_error, message, target)
    usable = not problems
    chain: ChainResult | None = None
    if usable:
        chain = build_chain(timestamp.signer_certificate,
                            extra_certificates=(*timestamp.certificates, *bag),
                            trust_anchors=trust.trust_store.timestamping, usage_eku=oids.TIME_STAMPING_EKU,
                            verification_time=timestamp.upper_limit, revocation=trust.revocation)
        usable = _timestamp_chain_ok(chain, name, target, policy, trust.revocation.mode, log)
    summary = TimestampSummary(
        time=timestamp.gen_time, lower_limit=timestamp.lower_limit, upper_limit=timestamp.upper_limit,
        certificate=certs.summarize(timestamp.signer_certificate),
        hash_algorithm=timestamp.imprint_algorithm_name.upper(), valid=usable,
        chain=tuple(certs.summarize(c) for c in chain.certificates) if chain else ())
    return (timestamp if usable else None), (summary,), usable


def _timestamp_chain_ok(chain: ChainResult, name: str, target: str, policy: VerificationPolicy,
                        mode: RevocationMode, log: _Log) -> bool:
    """The TSA chain rules of spec §5.3: untrusted root and revocation are always errors."""
    ok = True
    subject = certs.fingerprint(chain.certificates[0])
    status = chain.status.value
    if status & _UNTRUSTED_ROOT:
        log.add(NuCode.NU3028, True, Messages.TIMESTAMP_UNTRUSTED_ROOT.format(name), target, subject)
        ok = False
    if status & _REVOKED:
        for message in _messages_for(chain, ChainStatus.REVOKED):
            log.add(NuCode.NU3028, True, Messages.TIMESTAMP_CHAIN_ISSUE.format(name, message), target, subject)
        ok = False
    other = status & ~_HANDLED
    if other:
        for message in _messages_for(chain, status_of(other)):
            log.add(NuCode.NU3028, not policy.allow_ignore_timestamp,
                    Messages.TIMESTAMP_CHAIN_ISSUE.format(name, message), target, subject)
        ok = False
    if status & _UNKNOWN and not policy.allow_ignore_timestamp:
        reason = _messages_for(chain, status_of(status & _UNKNOWN))[0]
        message = Messages.TIMESTAMP_CHAIN_ISSUE.format(name, reason)
        if mode is RevocationMode.ONLINE:
            log.add(NuCode.NU3028, not policy.allow_unknown_revocation, message, target, subject)
        else:
            log.info(NuCode.NU3028, message, target, subject)
    return ok

