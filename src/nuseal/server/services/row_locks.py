"""Row locks that order a push's judgement against the governance changes it depends on (PostgreSQL).

A push judges the signer rules inside the transaction that stores its version, holding *shared* locks on the
rows the judgement reads: the package registration (its owners and required signer) and the accounts whose
certificates count. Whatever changes those facts (registering or removing a certificate, setting the required
signer, adding or removing an owner) takes an *exclusive* lock on the same row first. So a removal either
commits before the push's judgement reads (the push is judged without the certificate) or waits until the push
has committed (the version was accepted before the removal): no push slips through judged on a state that was
already gone.

On PostgreSQL these are ``FOR SHARE`` and ``FOR NO KEY UPDATE`` (the latter still lets foreign-key checks of
concurrent inserts through, which take ``FOR KEY SHARE``). SQLite has no row locks: its write transactions
(``BEGIN IMMEDIATE``) already run one at a time, so the statements are plain reads there.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from nuseal.server.db.models import Account, PackageRegistration


def share_accounts(session: Session, account_ids: Iterable[int]) -> None:
    ids = sorted(set(account_ids))  # one order everywhere: no lock-order deadlock between two pushes
    if ids:
        session.execute(select(Account.id).where(Account.id.in_(ids)).order_by(Account.id)
                        .with_for_update(read=True))  # fmt: skip


def lock_account(session: Session, account: Account) -> None:
    session.execute(select(Account.id).where(Account.id == account.id).with_for_update(key_share=True))


def lock_registration(session: Session, registration: PackageRegistration) -> None:
    session.execute(select(PackageRegistration.id).where(PackageRegistration.id == registration.id)
                    .with_for_update(key_share=True))  # fmt: skip
