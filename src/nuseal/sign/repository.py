"""Repository signing (spec §4.6, §7.1 ``reposign``): a repository primary signature on an unsigned package,
or a repository countersignature on an author-signed one.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from nuseal import oids
from nuseal.cms import build, countersign
from nuseal.cms.parse import PrimarySignature
from nuseal.codes import Messages, NuCode
from nuseal.enums import SignatureKind
from nuseal.errors import SigningError
from nuseal.package import archive, zipformat
from nuseal.record import Struct, field, replace
from nuseal.sign.common import (
    SignOptions,
    SignResult,
    Timestamper,
    sign_primary,
    sign_raw_checked,
    signer_warnings,
    timestamp_value,
)
from nuseal.sign.signers import Signer


class RepositorySignRequest(Struct, frozen=True):
    """A repository signer, its v3 service index URL (absolute https) and optional package owners."""

    signer: Signer
    service_index_url: str
    owners: tuple[str, ...] = ()
    options: SignOptions = field(default_factory=SignOptions)

    def checked(self) -> RepositorySignRequest:
        """Validate URL and owners (NU3001 naming the bad value); an empty owners list means none."""
        try:
            build.check_service_index_url(self.service_index_url)
            if self.owners:
                build.check_owners(self.owners)
        except ValueError as exc:
            raise SigningError(str(exc), NuCode.NU3001) from exc
        return self


class ReadSignature(Struct, frozen=True):
    """A package's signature entry as a caller already read and parsed it (``sign_for_feed`` loads it whole to
    judge the package first): :func:`repo_sign_package` then neither reads nor parses it again."""

    raw: bytes
    entry_time: datetime | None  # the entry's DOS time, kept on a countersigned package
    facts: build.PrimaryFacts

    @classmethod
    def of(cls, raw: bytes, entry_time: datetime | None, primary: PrimarySignature) -> ReadSignature:
        """From the signature as ``load_primary_signature`` read it: its kind stands for the commitment types (it
        refuses both together) and a countersigner of kind repository is one with proof-of-receipt."""
        commitments = {SignatureKind.AUTHOR: (oids.PROOF_OF_ORIGIN,),
                       SignatureKind.REPOSITORY: (oids.PROOF_OF_RECEIPT,)}.get(primary.kind, ())  # fmt: skip
        repository = sum(1 for kind in primary.countersignature_kinds if kind is SignatureKind.REPOSITORY)
        return cls(raw, entry_time, build.PrimaryFacts(commitments, repository, primary.signature_value))


def read_signature(path: Path) -> bytes | None:
    """The ``.signature.p7s`` bytes, or None when the package is unsigned (NU3005 errors propagate)."""
    found = read_signature_entry(path)
    return None if found is None else found[0]


def read_signature_entry(path: Path) -> tuple[bytes, datetime | None] | None:
    """The ``.signature.p7s`` bytes and the entry's local DOS time (None when it is not a valid date), or None
    when the package is unsigned (NU3005 errors propagate)."""
    with open(path, "rb") as f:
        layout = zipformat.read_layout(f)
        if not zipformat.has_signature_entry(layout):
            return None
        entry = zipformat.find_signature_entry(f, layout)
        return zipformat.read_signature_bytes(f, entry), _entry_time(entry.central.dos_date, entry.central.dos_time)


def _entry_time(dos_date: int, dos_time: int) -> datetime | None:
    """The naive local time a DOS date/time stands for; writing it back gives the same two fields."""
    try:
        return datetime(1980 + (dos_date >> 9), (dos_date >> 5) & 0xF, dos_date & 0x1F,
                        dos_time >> 11, (dos_time >> 5) & 0x3F, (dos_time & 0x1F) * 2)  # fmt: skip
    except ValueError:
        return None


def repo_sign_package(
    src: Path, dst: Path, request: RepositorySignRequest, *, timestamper: Timestamper | None, now: datetime,
    read: ReadSignature | None = None,
) -> SignResult:
    """Repository-sign ``src`` into ``dst``: primary signature if unsigned, countersignature if author-signed.

    Refuses a package whose primary signature is already a repository signature (NU3033) or that already has a
    repository countersignature (NU3032), unless ``options.overwrite``: then the repository primary signature
    is replaced, or the old countersignature is stripped first. Other errors as in ``sign_package``.
    ``read``: ``src``'s signature entry, already read by the caller (it must be ``src``'s; None: read here).
    """
    request = request.checked()
    src, dst = Path(src), Path(dst)
    archive.check_signable(src, replace_signature=True)  # NU3006 / NU3039 before anything else
    if read is None:
        found = read_signature_entry(src)
        existing, entry_time = found if found is not None else (None, None)
    else:
        existing, entry_time = read.raw, read.entry_time
    overwrite = request.options.overwrite
    if existing is not None:
        # One parse for the checks and the countersignature.
        facts = read.facts if read is not None else build.primary_facts(existing)
        commitments = facts.commitments
        if oids.PROOF_OF_RECEIPT in commitments and not overwrite:
            raise SigningError(
                f"{Messages.REPO_PRIMARY_WITH_COUNTER} ({src} is repository signed)", NuCode.NU3033
            )
        if oids.PROOF_OF_ORIGIN in commitments and oids.PROOF_OF_RECEIPT not in commitments:
            return _countersign(src, dst, existing, facts, request, timestamper=timestamper, now=now,
                                entry_time=entry_time)  # fmt: skip
        if not overwrite:
            raise SigningError(f"{Messages.ALREADY_SIGNED} ({src})", NuCode.NU3001)
    primary = build.PrimarySignatureBuilder.repository_signature(request.service_index_url, request.owners)
    return sign_primary(
        src, dst, primary, request.signer, _overwriting(request.options), timestamper=timestamper, now=now,
        kind="repository",
    )  # fmt: skip


def _overwriting(options: SignOptions) -> SignOptions:
    return replace(options, overwrite=True)


def _countersign(
    src: Path,
    dst: Path,
    primary: bytes,
    facts: build.PrimaryFacts,
    request: RepositorySignRequest,
    *,
    timestamper: Timestamper | None,
    now: datetime,
    entry_time: datetime | None,
) -> SignResult:
    if facts.repository_countersigners > 0:
        if not request.options.overwrite:
            raise SigningError(
                "The package already contains a repository countersignature. Please remove the existing "
                f"signature before adding a new signature ({src}).",
                NuCode.NU3032,
            )
        primary = countersign.strip_repository_countersignatures(primary)
    signer = request.signer
    options = request.options
    warnings = signer_warnings(signer, now, timestamper, options.trust_store)
    builder = (
        build.CountersignatureBuilder.repository(request.service_index_url, request.owners)
        .with_signer(signer.certificate, signer.chain)
        .with_hash_algorithm(options.hash_algorithm.hashlib_name)
        .with_signing_time(now)
    )
    # Stripping countersignatures leaves the primary SignerInfo's signature value as it was.
    primary_value = facts.signature_value
    value = sign_raw_checked(signer, builder.signed_attributes(primary_value), options.hash_algorithm)
    # The countersignature's own timestamp covers the countersignature value and sits inside it (spec §4.6).
    token = timestamp_value(timestamper, value, options.timestamp_hash_algorithm, now, options.trust_store)
    countersigner = builder.build(primary_value, value, timestamp=token)
    signature = countersign.add_countersignature(primary, countersigner, builder.embedded_chain())
    # The package hash is unchanged: only the signature entry is swapped. It keeps its DOS time (NuGet stamps
    # it now; nothing reads it), so removing the countersignature gives back the author-signed bytes.
    when = entry_time if entry_time is not None else now
    archive.insert_signature(src, dst, signature, when=when, replace_signature=True, durable=options.durable)
    return SignResult(dst, "repository-countersignature", signature, token is not None, tuple(warnings))
