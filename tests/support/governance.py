"""Test helpers for the signing governance (issue 10): packages with a chosen id and version, signed with the test
PKI and an in-process TSA at ``pki.now``; the PKI's certificates as upload variants (PEM, PFX, trailing bytes, ...);
a service context that trusts the PKI's root and verifies offline, on a clock relative to the PKI.
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

from nuseal.enums import RevocationMode
from nuseal.server.services.context import ServiceContext
from nuseal.sign.author import AuthorSignRequest, sign_package
from nuseal.sign.repository import RepositorySignRequest, repo_sign_package
from nuseal.timestamp.client import InProcessTimestamper
from nuseal.timestamp.tsa import TimestampAuthority
from tests.support.pki import IssuedCert, TestPki
from tests.unit.sign.helpers import signer_for

FEED = "https://feed.example/v3/index.json"


def write_nupkg(path: Path, package_id: str, version: str) -> Path:
    """A small unsigned package with the given identity."""
    nuspec = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">\n'
        f"  <metadata><id>{package_id}</id><version>{version}</version><authors>nuseal</authors>\n"
        "  <description>governance test</description></metadata>\n</package>\n"
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{package_id}.nuspec", nuspec, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("lib/net8.0/readme.txt", f"{package_id} {version}\n" * 20, compress_type=zipfile.ZIP_STORED)
    return path


def timestamper(pki: TestPki) -> InProcessTimestamper:
    authority = TimestampAuthority(pki.tsa.cert, pki.tsa.key, pki.tsa.chain[1:], clock=lambda: pki.now)
    return InProcessTimestamper(authority, clock=lambda: pki.now)


def signed_nupkg(path: Path, package_id: str, version: str, leaf: IssuedCert, pki: TestPki) -> Path:
    """An author-signed, timestamped package."""
    write_nupkg(path, package_id, version)
    sign_package(path, path, AuthorSignRequest(signer_for(leaf)), timestamper=timestamper(pki), now=pki.now)
    return path


def repository_signed_nupkg(path: Path, package_id: str, version: str, leaf: IssuedCert, pki: TestPki) -> Path:
    """A package with a repository *primary* signature (from some other feed)."""
    write_nupkg(path, package_id, version)
    repo_sign_package(path, path, RepositorySignRequest(signer_for(leaf), FEED, ("someone",)),
                      timestamper=timestamper(pki), now=pki.now)  # fmt: skip
    return path


def trusting_context(ctx: ServiceContext, pki: TestPki, folder: Path) -> ServiceContext:
    """``ctx`` with the PKI's root as the feed's code-signing and timestamping roots, revocation offline."""
    root = folder / "pki-root.pem"
    root.write_bytes(pki.root.pem)
    settings = dataclasses.replace(ctx.settings, trust_roots=root, timestamp_roots=root,
                                   revocation_mode=RevocationMode.OFFLINE)  # fmt: skip
    return dataclasses.replace(ctx, settings=settings)

