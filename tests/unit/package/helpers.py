"""Shared facts about the vectors for the package-layer tests (read from ../shared/vectors, never copied)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import cms
from tests.conftest import VECTORS

from nuseal.package.zipformat import find_signature_entry, read_layout, read_signature_bytes

_HASH_OIDS = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}


@dataclass(frozen=True)
class ManifestRow:
    path: Path
    kind: str
    package_id: str
    package_version: str
    package_hash: str  # "sha256:<base64>" or ""
    unsigned_content_sha256: str
    integrity: str


def manifest() -> list[ManifestRow]:
    with open(VECTORS / "real" / "MANIFEST.tsv", newline="") as f:
        return [
            ManifestRow(
                path=VECTORS / "real" / row["file"],
                kind=row["primary_kind"],
                package_id=row["package_id"],
                package_version=row["package_version"],
                package_hash=row["package_hash"],
                unsigned_content_sha256=row["unsigned_content_sha256"],
                integrity=row["integrity"],
            )
            for row in csv.DictReader(f, delimiter="\t")
        ]


def signed_rows() -> list[ManifestRow]:
    return [r for r in manifest() if r.kind in ("author", "repository")]


def unsigned_rows() -> list[ManifestRow]:
    return [r for r in manifest() if r.kind == "unsigned"]


def signed_packages() -> list[Path]:
    """Every signed .nupkg vector (real and NuGet fixtures)."""
    fixtures = sorted((VECTORS / "fixtures").glob("*.nupkg"))
    return [r.path for r in signed_rows()] + fixtures


def embedded_hash(package: Path) -> tuple[str, bytes]:
    """(algorithm, raw digest) from the signature's signed content, parsed independently of nuseal.cms."""
    import base64

    with open(package, "rb") as f:
        layout = read_layout(f)
        der = read_signature_bytes(f, find_signature_entry(f, layout))
    content = cms.ContentInfo.load(der)["content"]["encap_content_info"]["content"].native
    for line in content.decode("utf-8").splitlines():
        key, _, value = line.partition(":")
        if key.endswith("-Hash"):
            return _HASH_OIDS[key[: -len("-Hash")]], base64.b64decode(value)
    raise AssertionError(f"no hash line in the signed content of {package}")


def ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]
