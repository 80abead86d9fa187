"""The flat container (``PackageBaseAddress/3.0.0``): the versions index and the URLs of its files (§E.2).

``{@id}/{lower id}/index.json`` lists every version, unlisted ones included, normalized and lower-cased;
``{@id}/{lower id}/{lower version}/{lower id}.{lower version}.nupkg`` is the package and
``.../{lower id}.nuspec`` its manifest. Ids and versions are lower-cased with invariant rules.
"""

from __future__ import annotations

from typing import ClassVar

from nuseal.protocol.document import Document, LowerVersion
from nuseal.versioning import NuGetVersion


class PackageVersionsIndex(Document):
    """``{"versions": ["1.0.0", "2.0.0-beta.1"]}``; written lower-cased and normalized, as NuGet expects."""

    KIND: ClassVar[str] = "package versions"

    versions: list[LowerVersion]


def _base(base_url: str) -> str:
    return base_url if base_url.endswith("/") else base_url + "/"


def versions_url(base_url: str, package_id: str) -> str:
    return f"{_base(base_url)}{package_id.lower()}/index.json"


def package_url(base_url: str, package_id: str, version: NuGetVersion) -> str:
    lower_id = package_id.lower()
    return f"{_base(base_url)}{lower_id}/{version.lower}/{lower_id}.{version.lower}.nupkg"


def nuspec_url(base_url: str, package_id: str, version: NuGetVersion) -> str:
    lower_id = package_id.lower()
    return f"{_base(base_url)}{lower_id}/{version.lower}/{lower_id}.nuspec"
