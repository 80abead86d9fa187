"""The stored required signer of a package (table ``package_required_signers``: 0 or 1 row; none = "Any").

Only storage and the one rule owner removal needs live here, so that :mod:`packages` (owner removal) and
:mod:`signing_rules` (everything else about signers) can both use it without importing each other.

Decision (nuget.org leaves a stale signer, spec §A.5): when the account that is the required signer stops being an
owner, the signer goes back to "Any" in the same transaction, audited as ``package:signer:reset``. A stale signer
would keep deciding who must sign a package it no longer owns.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from nuseal.server.db.models import Account, PackageRegistration, PackageRequiredSigner
from nuseal.server.services import audit
from nuseal.server.services.permissions import Actor

#: How "no required signer" is shown and typed (nuget.org's "Any").
ANY = "Any"


def signer_of(session: Session, registration: PackageRegistration) -> Account | None:
    """The required signer's account, or None for "Any"."""
    row = session.get(PackageRequiredSigner, registration.id)
    return None if row is None else row.account


def store(session: Session, registration: PackageRegistration, account: Account | None) -> None:
    """Make ``account`` the required signer (None: "Any") in the caller's transaction; no audit here."""
    row = session.get(PackageRequiredSigner, registration.id)
    if account is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(PackageRequiredSigner(registration_id=registration.id, account_id=account.id))
    else:
        row.account_id = account.id
        session.expire(row, ["account"])
    session.flush()


def reset_if_signer(
    session: Session, actor: Actor, registration: PackageRegistration, removed: Account, *, at: datetime
) -> bool:
    """Called when ``removed`` stops being an owner: if it was the required signer, go back to "Any" and audit
    it. Returns whether the signer was reset."""
    row = session.get(PackageRequiredSigner, registration.id)
    if row is None or row.account_id != removed.id:
        return False
    session.delete(row)
    session.flush()
    audit.record(session, actor, audit.SIGNER_RESET, registration.package_id, at=at,
                 before={"required_signer": removed.name},
                 after={"required_signer": ANY, "reason": f"{removed.name} is no longer an owner"})  # fmt: skip
    return True
