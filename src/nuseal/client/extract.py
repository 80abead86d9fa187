"""Safe extraction of a verified package into NuGet's global-packages layout.

Entry names are checked before anything is written: absolute paths, drive letters, ``..`` segments, NUL
characters and symlink entries are refused. Sizes are counted on the bytes actually inflated (declared sizes
may lie): a total limit and a per-entry compression-ratio limit stop zip bombs. Errors name the entry.
"""

from __future__ import annotations

import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

from nuseal.errors import PackageFormatError

DEFAULT_MAX_TOTAL_BYTES = 4 * 1024**3
#: Deflate tops out near 1032:1; real package files stay far below 200:1 except for tiny or empty-ish files,
#: so the ratio is enforced only past ``RATIO_FLOOR_BYTES`` of output.
DEFAULT_MAX_RATIO = 200
RATIO_FLOOR_BYTES = 1024 * 1024
_CHUNK = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
# OPC plumbing and the signature are package metadata, not content (NuGet's PackageHelper.IsPackageFile).
_SKIPPED_PREFIXES = ("_rels/", "package/")
_SKIPPED_NAMES = ("[content_types].xml", ".signature.p7s")


class UnsafePackageError(PackageFormatError):
    """A package entry would escape the target folder, is a link, or inflates beyond the limits."""


@dataclass(frozen=True)
class ExtractionLimits:
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    max_ratio: int = DEFAULT_MAX_RATIO


def safe_relative_path(name: str) -> PurePosixPath:
    """The relative path an entry name maps to, or ``UnsafePackageError`` naming the entry.

    NuGet quirk: entry names are OPC part names, percent-encoded (``a%20b.txt``); NuGet unescapes them when
    extracting. We do too, and check the name both before and after unescaping.
    """
    for candidate in (name, unquote(name)):
        if "\x00" in candidate:
            raise UnsafePackageError(f"Package entry '{name}' contains a NUL character.")
        normalized = candidate.replace("\\", "/")
        if normalized.startswith("/") or _DRIVE.match(normalized):
            raise UnsafePackageError(f"Package entry '{name}' has an absolute path.")
        parts = normalized.split("/")
        if ".." in parts:
            raise UnsafePackageError(f"Package entry '{name}' contains a '..' path segment.")
    parts = [p for p in unquote(name).replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts:
        raise UnsafePackageError(f"Package entry '{name}' has an empty path.")
    return PurePosixPath(*parts)


def is_package_file(name: str) -> bool:
    """False for the OPC and signing plumbing NuGet does not extract."""
    lower = name.replace("\\", "/").lower()
    return not (lower.startswith(_SKIPPED_PREFIXES) or lower in _SKIPPED_NAMES)


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return info.create_system == 3 and stat.S_ISLNK(mode)


def extract_content(package: Path, target: Path, *, skip: frozenset[str] = frozenset(),
                    limits: ExtractionLimits | None = None) -> list[PurePosixPath]:
    """Write every content file of ``package`` under ``target`` (which must exist). ``skip`` holds entry
    names handled by the caller (the nuspec). Returns the relative paths written."""
    limits = limits or ExtractionLimits()
    written: list[PurePosixPath] = []
    total = 0
    with zipfile.ZipFile(package) as archive:
        infos = archive.infolist()
        planned: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
        for info in infos:  # validate every name before writing anything
            if _is_symlink(info):
                raise UnsafePackageError(f"Package entry '{info.filename}' is a symbolic link.")
            relative = safe_relative_path(info.filename)
            if info.is_dir() or info.filename in skip or not is_package_file(info.filename):
                continue
            planned.append((info, relative))
        for info, relative in planned:
            destination = target.joinpath(*relative.parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            size = 0
            with archive.open(info) as source, destination.open("wb") as out:
                while chunk := source.read(_CHUNK):
                    size += len(chunk)
                    total += len(chunk)
                    if total > limits.max_total_bytes:
                        raise UnsafePackageError(
                            f"Package entry '{info.filename}' takes the package past {limits.max_total_bytes} "
                            "uncompressed bytes.")
                    if size > RATIO_FLOOR_BYTES and size > limits.max_ratio * max(info.compress_size, 1):
                        raise UnsafePackageError(
                            f"Package entry '{info.filename}' inflates more than {limits.max_ratio}:1 "
                            f"({info.compress_size} compressed bytes).")
                    out.write(chunk)
            written.append(relative)
    return written
