"""Packages to push to the feed in tests: any id, version, metadata and entries, unsigned or author-signed with the
test PKI (an in-process TSA stamps ``pki.now``, so verification a minute later never depends on today's date)."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from nuseal.sign.author import AuthorSignRequest, sign_package
from nuseal.timestamp.client import InProcessTimestamper
from nuseal.timestamp.tsa import TimestampAuthority
from tests.support.pki import IssuedCert, TestPki
from tests.unit.sign.helpers import signer_for

NS = "http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd"


def nuspec(package_id: str, version: str, *, description: str = "A test package.", authors: str = "nuseal",
           metadata: str = "", dependencies: Sequence[tuple[str | None, Sequence[tuple[str, str]]]] = (),
           min_client_version: str | None = None) -> bytes:
    """A nuspec; ``dependencies`` is ``[(target framework or None, [(id, range), ...]), ...]``; ``metadata`` is
    extra raw XML inside ``<metadata>``."""
    groups = "".join(
        f"<group{f' targetFramework={quoteattr(tfm)}' if tfm else ''}>"
        + "".join(f"<dependency id={quoteattr(dep)} version={quoteattr(rng)} />" for dep, rng in deps)
        + "</group>"
        for tfm, deps in dependencies
    )
    attrs = f" minClientVersion={quoteattr(min_client_version)}" if min_client_version else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><package xmlns="{NS}"><metadata{attrs}>'
        f"<id>{escape(package_id)}</id><version>{escape(version)}</version>"
        f"<authors>{escape(authors)}</authors><description>{escape(description)}</description>{metadata}"
        + (f"<dependencies>{groups}</dependencies>" if dependencies else "")
        + "</metadata></package>"
    ).encode()


def build_package(path: Path, package_id: str = "Contoso.Lib", version: str = "1.0.0", *,
                  manifest: bytes | None = None, files: Mapping[str, bytes] | None = None,
                  nuspec_name: str | None = None, **nuspec_options: object) -> Path:
    """A .nupkg at ``path`` with a root nuspec and ``files`` (default: one small dll)."""
    data = manifest if manifest is not None else nuspec(package_id, version, **nuspec_options)  # type: ignore[arg-type]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(nuspec_name or f"{package_id}.nuspec", data)
        default = {"lib/net8.0/Contoso.Lib.dll": b"MZ" + bytes(64)}
        for name, content in (files if files is not None else default).items():
            archive.writestr(name, content)
    return path


def sign(path: Path, pki: TestPki, *, leaf: IssuedCert | None = None) -> Path:
    """Author-sign ``path`` in place with ``leaf`` (default: the PKI's trusted leaf), timestamped at ``pki.now``."""
    authority = TimestampAuthority(pki.tsa.cert, pki.tsa.key, pki.tsa.chain[1:], clock=lambda: pki.now)
    timestamper = InProcessTimestamper(authority, clock=lambda: pki.now)
    sign_package(path, path, AuthorSignRequest(signer_for(leaf or pki.leaf)), timestamper=timestamper, now=pki.now)
    return path
