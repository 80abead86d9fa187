"""Removing signatures (spec §1.4): the whole ``.signature.p7s`` entry, or only repository signatures."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path

from nuseal import oids
from nuseal.cms import build
from nuseal.codes import Messages, NuCode
from nuseal.errors import SigningError
from nuseal.package import archive
from nuseal.sign.repository import read_signature


class Removal(StrEnum):
    """What ``remove_signature`` did."""

    SIGNATURE_REMOVED = "signature-removed"
    COUNTERSIGNATURES_REMOVED = "countersignatures-removed"
    NOTHING_TO_REMOVE = "nothing-to-remove"


def remove_signature(
    path: Path, *, repository_only: bool = False, dst: Path | None = None, now: datetime | None = None
) -> Removal:
    """Remove the signature of ``path`` (written to ``dst``, default in place, via temp file + rename).

    ``repository_only`` follows NuGet's ``RemoveRepositorySignaturesAsync``: a repository primary signature is
    removed entirely; an author signature loses its repository countersigners and is re-encoded, which needs
    ``now`` (the re-inserted entry's local DOS time). ``SigningError`` NU3004 if the package is unsigned.
    """
    path = Path(path)
    target = Path(dst) if dst is not None else path
    signature = read_signature(path)
    if signature is None:
        raise SigningError(f"{Messages.NOT_SIGNED} ({path})", NuCode.NU3004)
    if not repository_only:
        archive.remove_signature(path, target)
        return Removal.SIGNATURE_REMOVED
    if oids.PROOF_OF_RECEIPT in build.primary_commitments(signature):
        archive.remove_signature(path, target)
        return Removal.SIGNATURE_REMOVED
    if build.repository_countersigner_count(signature) == 0:
        return Removal.NOTHING_TO_REMOVE
    if now is None:
        raise ValueError("now is required to re-insert the re-encoded signature")
    signature = build.strip_repository_countersignatures(signature)
    archive.insert_signature(path, target, signature, when=now, replace_signature=True)
    return Removal.COUNTERSIGNATURES_REMOVED
