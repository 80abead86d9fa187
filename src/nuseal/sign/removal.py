"""Removing signatures (spec §1.4): the whole ``.signature.p7s`` entry, or only repository signatures."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path

from nuseal import oids
from nuseal.cms import build, countersign
from nuseal.codes import Messages, NuCode
from nuseal.errors import SigningError
from nuseal.package import archive
from nuseal.sign.repository import read_signature_entry


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
    removed entirely; an author signature loses its repository countersigners (and the certificates only they
    used) and the entry is rewritten with its DOS time kept, so a package countersigned by nuseal comes back
    byte for byte as it was author-signed. ``now`` stamps the entry only when its old time is not a valid date
    (default: the local time now). ``SigningError`` NU3004 if the package is unsigned.
    """
    path = Path(path)
    target = Path(dst) if dst is not None else path
    found = read_signature_entry(path)
    if found is None:
        raise SigningError(f"{Messages.NOT_SIGNED} ({path})", NuCode.NU3004)
    signature, entry_time = found
    if not repository_only:
        archive.remove_signature(path, target)
        return Removal.SIGNATURE_REMOVED
    if oids.PROOF_OF_RECEIPT in build.primary_commitments(signature):
        archive.remove_signature(path, target)
        return Removal.SIGNATURE_REMOVED
    if build.repository_countersigner_count(signature) == 0:
        return Removal.NOTHING_TO_REMOVE
    signature = countersign.strip_repository_countersignatures(signature)
    when = entry_time if entry_time is not None else now
    archive.insert_signature(path, target, signature, when=when, replace_signature=True)
    return Removal.COUNTERSIGNATURES_REMOVED
