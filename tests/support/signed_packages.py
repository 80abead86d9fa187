"""Packages signed with the test PKI, one per situation a verification policy can judge differently.

Every time is relative to the PKI (``pki.now``): the in-process TSA stamps ``pki.now`` and verification runs a
minute later, so nothing depends on today's date. Revocation is offline (no network in unit tests): the PKI's
certificates carry OCSP/CRL URLs, so the chain's revocation status is "unknown (offline)".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from asn1crypto import cms

from nuseal import oids
from nuseal.enums import RevocationMode
from nuseal.package import archive
from nuseal.sign.author import AuthorSignRequest, sign_package
from nuseal.sign.repository import RepositorySignRequest, read_signature, repo_sign_package
from nuseal.timestamp.client import InProcessTimestamper
from nuseal.timestamp.tsa import TimestampAuthority
from nuseal.verify.engine import TrustContext
from nuseal.x509.revocation import RevocationChecker
from nuseal.x509.roots import TrustStore
from tests.support.pki import IssuedCert, TestPki
from tests.support.tamper import randomize_signature
from tests.unit.sign.helpers import make_package, signer_for

FEED = "https://feed.example/v3/index.json"


@dataclass(frozen=True)
class Packages:
    """One file per situation a policy field can change the verdict of."""

    unsigned: Path
    author: Path  # trusted leaf, one valid timestamp
    author_no_timestamp: Path
    untrusted: Path  # leaf under a root that is not trusted, timestamped
    two_timestamps: Path  # ``author`` with its timestamp token twice
    countersigned: Path  # ``author`` plus a repository countersignature
    corrupt_signature: Path  # ``author`` with random bytes as its signature
    now: datetime  # the moment to verify at


def trust_for(pki: TestPki, *, timestamping: tuple[IssuedCert, ...] | None = None) -> TrustContext:
    """The PKI's root for both purposes (or the given timestamping roots), revocation offline."""
    roots = (pki.root.cert,)
    stamps = roots if timestamping is None else tuple(c.cert for c in timestamping)
    return TrustContext(TrustStore(code_signing=roots, timestamping=stamps), RevocationChecker(RevocationMode.OFFLINE))


def _timestamper(pki: TestPki) -> InProcessTimestamper:
    authority = TimestampAuthority(pki.tsa.cert, pki.tsa.key, pki.tsa.chain[1:], clock=lambda: pki.now)
    return InProcessTimestamper(authority, clock=lambda: pki.now)


def _sign(path: Path, leaf: IssuedCert, pki: TestPki, *, timestamped: bool = True) -> Path:
    make_package(path)
    sign_package(path, path, AuthorSignRequest(signer_for(leaf)),
                 timestamper=_timestamper(pki) if timestamped else None, now=pki.now)
    return path


def _with_timestamp_twice(src: Path, dst: Path) -> Path:
    """Copy ``src`` with its timestamp attribute repeated: unsigned attributes are outside the signature."""
    signature = read_signature(src)
    assert signature is not None
    info = cms.ContentInfo.load(signature)
    signer = info["content"]["signer_infos"][0]
    attributes = list(signer["unsigned_attrs"])
    stamp = next(a for a in attributes if a["type"].dotted == oids.SIGNATURE_TIMESTAMP_TOKEN)
    signer["unsigned_attrs"] = cms.CMSAttributes([*attributes, cms.CMSAttribute.load(stamp.dump())])
    archive.insert_signature(src, dst, info.dump(), replace_signature=True)
    return dst


def build_packages(pki: TestPki, folder: Path) -> Packages:
    author = _sign(folder / "author.nupkg", pki.leaf, pki)
    countersigned = folder / "countersigned.nupkg"
    repo_sign_package(author, countersigned, RepositorySignRequest(signer_for(pki.leaf), FEED, ("alice",)),
                      timestamper=_timestamper(pki), now=pki.now)
    corrupt = folder / "corrupt.nupkg"
    randomize_signature(author, corrupt)
    return Packages(
        unsigned=make_package(folder / "unsigned.nupkg"),
        author=author,
        author_no_timestamp=_sign(folder / "no-timestamp.nupkg", pki.leaf, pki, timestamped=False),
        untrusted=_sign(folder / "untrusted.nupkg", pki.untrusted_leaf, pki),
        two_timestamps=_with_timestamp_twice(author, folder / "two-timestamps.nupkg"),
        countersigned=countersigned,
        corrupt_signature=corrupt,
        now=pki.now + timedelta(minutes=1),
    )
