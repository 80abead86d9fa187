"""``install``: resolve, download, verify every package, and only then extract into the output folder.

Layout (NuGet's global packages folder): ``{out}/{id-lower}/{version-lower}/`` holding
``{id}.{version}.nupkg``, ``{id}.{version}.nupkg.sha512`` (base64 SHA-512 of the file), ``{id}.nuspec``,
the content files and ``.nupkg.metadata`` (``{"version": 2, "contentHash": ..., "source": ...}``).

All-or-nothing: everything is downloaded and extracted inside a staging folder in ``{out}``; version folders
are renamed into place only once every package verified and extracted. A package folder that already has
``.nupkg.metadata`` is left alone (NuGet does not re-verify extracted packages).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from nuseal.client.extract import ExtractionLimits, UnsafePackageError, extract_content
from nuseal.client.resolve import Dependency, Nuspec, ResolveError, read_nuspec, resolve
from nuseal.client.source import FeedSource, ProgressCallback
from nuseal.codes import IssueCode
from nuseal.errors import FetchError, NusealError
from nuseal.findings import Finding, Severity
from nuseal.package.hashing import file_sha512_base64
from nuseal.record import replace
from nuseal.trust.policy_builder import apply_repository_info
from nuseal.verify.batch import accepted, verify_guarded
from nuseal.verify.engine import TrustContext
from nuseal.verify.policy import VerificationPolicy
from nuseal.verify.result import PackageVerdict
from nuseal.versioning import NuGetVersion, highest

METADATA_FILE = ".nupkg.metadata"
DEFAULT_LIMITS = ExtractionLimits()
_STAGING_PREFIX = ".nuseal-install-"

#: ``progress_for("Id 1.0.0")`` gives the callback for that package's download (the CLI draws bars).
ProgressFactory = Callable[[str], ProgressCallback]


@dataclass(frozen=True)
class InstallRequest:
    package_id: str
    version: str | None = None
    prerelease: bool = False
    ignore_dependencies: bool = False


@dataclass(frozen=True)
class InstalledPackage:
    id: str
    version: str
    source: str
    path: Path
    content_hash: str | None
    already_installed: bool = False
    warnings: tuple[Finding, ...] = ()
    verdict: PackageVerdict | None = None

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "version": self.version, "source": self.source, "path": str(self.path),
                "contentHash": self.content_hash, "alreadyInstalled": self.already_installed,
                "warnings": [{"code": w.code.value, "message": w.message} for w in self.warnings],
                "verdict": self.verdict.to_dict() if self.verdict else None}


class InstallError(NusealError):
    """The install failed and left nothing behind; ``findings`` holds every line to print (error level first as
    restore logs them, each message in restore's ``Package '{id} {version}' from source '{source}': `` form)."""

    def __init__(self, findings: Sequence[Finding], verdicts: Sequence[PackageVerdict] = ()) -> None:
        super().__init__("\n".join(f.message for f in findings))
        self.findings = tuple(findings)
        self.verdicts = tuple(verdicts)


def prefix(package_id: str, version: str, source: str) -> str:
    """NuGet restore's prefix for signature messages (spec §6.6, ``PackageExtractor.UpdateSignatureLog``)."""
    return f"Package '{package_id} {version}' from source '{source}': "


def restore_finding(finding: Finding, package_id: str, version: str, source: str) -> Finding:
    """A verification finding as restore logs it: the message becomes the whole line after the level,
    ``Package '{id} {version}' from source '{source}': NUxxxx: {message}``; code, severity and target are kept."""
    return replace(finding, message=f"{prefix(package_id, version, source)}{finding}")


def _install_error(code: IssueCode, message: str) -> InstallError:
    return InstallError([Finding(code, Severity.ERROR, message)])


@dataclass
class _Downloaded:
    source: FeedSource
    path: Path
    nuspec: Nuspec


@dataclass
class _Catalog:
    """Versions across sources (first source listing a version serves it) and downloads, cached."""

    sources: Sequence[FeedSource]
    staging: Path
    progress_for: ProgressFactory | None
    ignore_dependencies: bool
    root_key: str
    _versions: dict[str, dict[NuGetVersion, FeedSource]] = field(default_factory=dict)
    _downloads: dict[tuple[str, NuGetVersion], _Downloaded] = field(default_factory=dict)

    def versions(self, package_id: str) -> dict[NuGetVersion, FeedSource]:
        key = package_id.lower()
        if key not in self._versions:
            found: dict[NuGetVersion, FeedSource] = {}
            for source in self.sources:
                for version in source.versions(package_id):
                    found.setdefault(version, source)
            self._versions[key] = found
        return self._versions[key]

    def available(self, package_id: str) -> list[NuGetVersion]:
        return list(self.versions(package_id))

    def download(self, package_id: str, version: NuGetVersion) -> _Downloaded:
        key = (package_id.lower(), version)
        if key not in self._downloads:
            source = self.versions(package_id)[version]
            label = f"{package_id} {version}"
            handle, name = tempfile.mkstemp(prefix=f"{package_id.lower()}.", suffix=".nupkg.part",
                                            dir=self.staging)
            os.close(handle)
            path = Path(name)
            source.download(package_id, version, path, self.progress_for(label) if self.progress_for else None)
            nuspec = read_nuspec(path)
            if nuspec.identity.id.lower() != package_id.lower() or \
                    NuGetVersion.parse(nuspec.identity.version) != version:
                raise FetchError(f"'{source.package_url(package_id, version)}' holds "
                                 f"'{nuspec.identity.id} {nuspec.identity.version}', not '{label}'.")
            self._downloads[key] = _Downloaded(source, path, nuspec)
        return self._downloads[key]

    def dependencies(self, package_id: str, version: NuGetVersion) -> tuple[Dependency, ...]:
        downloaded = self.download(package_id, version)
        if self.ignore_dependencies:
            return ()
        return downloaded.nuspec.dependencies


def _root_version(request: InstallRequest, catalog: _Catalog) -> NuGetVersion:
    versions = catalog.versions(request.package_id)
    where = ", ".join(f"'{s.url}'" for s in catalog.sources)
    if request.version is not None:
        try:
            wanted = NuGetVersion.parse(request.version)
        except ValueError as exc:
            raise ResolveError(str(exc)) from None
        if wanted not in versions:
            raise ResolveError(f"Unable to find package '{request.package_id}' with version '{wanted}' in {where}.")
        return wanted
    best = highest(versions, prerelease=request.prerelease)
    if best is None:
        kind = "" if request.prerelease or not versions else " (only prerelease versions exist; use --prerelease)"
        raise ResolveError(f"Unable to find package '{request.package_id}' in {where}{kind}.")
    return best


def install(request: InstallRequest, *, sources: Sequence[FeedSource], output: Path, policy: VerificationPolicy,
            trust: TrustContext, now: datetime, progress_for: ProgressFactory | None = None,
            limits: ExtractionLimits = DEFAULT_LIMITS) -> list[InstalledPackage]:
    """Install ``request`` and its dependencies into ``output``. ``InstallError`` (nothing written) when a
    package fails verification or extraction; ``FetchError`` / ``ResolveError`` for feed problems."""
    if not sources:
        raise FetchError("No package sources: pass --source or add packageSources to nuget.config.")
    created_output = not output.exists()
    output.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=output))
    succeeded = False
    try:
        catalog = _Catalog(sources, staging, progress_for, request.ignore_dependencies, request.package_id.lower())
        root = _root_version(request, catalog)
        graph = resolve(request.package_id, root, catalog.available, catalog.dependencies)
        packages = [catalog.download(p.id, p.version) for p in graph]
        results = _verify_all(packages, output, policy, trust, now)
        staged = [_stage(d, verdict, staging, limits) for d, verdict in results if verdict is not None]
        _commit(staged, output)
        succeeded = True
        return [_outcome(d, verdict, output) for d, verdict in results]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created_output and not succeeded:
            shutil.rmtree(output, ignore_errors=True)  # it held nothing but our staging folder


def _final_dir(output: Path, nuspec: Nuspec) -> Path:
    return output / nuspec.identity.id.lower() / nuspec.identity.version.lower()


def _is_installed(output: Path, nuspec: Nuspec) -> bool:
    return (_final_dir(output, nuspec) / METADATA_FILE).is_file()


def _policy_for(source: FeedSource, policy: VerificationPolicy) -> VerificationPolicy:
    info = source.repository_signatures()
    return apply_repository_info(policy, info) if info is not None else policy


def _verify_all(packages: list[_Downloaded], output: Path, policy: VerificationPolicy, trust: TrustContext,
                now: datetime) -> list[tuple[_Downloaded, PackageVerdict | None]]:
    results: list[tuple[_Downloaded, PackageVerdict | None]] = []
    issues: list[Finding] = []
    failed: list[PackageVerdict] = []
    for downloaded in packages:
        if _is_installed(output, downloaded.nuspec):
            results.append((downloaded, None))
            continue
        verdict = verify_guarded(downloaded.path, policy=_policy_for(downloaded.source, policy), trust=trust,
                                 now=now, compute_content_hash=True)
        results.append((downloaded, verdict))
        if not accepted(verdict):
            failed.append(verdict)
            ident = downloaded.nuspec.identity
            issues.extend(restore_finding(f, ident.id, ident.version, downloaded.source.url)
                          for f in verdict.findings)
            error = verdict.error_finding
            if error is not None:
                where = prefix(ident.id, ident.version, downloaded.source.url)
                issues.append(replace(error, message=f"{where}{error.message}"))
    if failed:
        raise InstallError(issues, failed)
    return results


@dataclass(frozen=True)
class _Staged:
    folder: Path
    final: Path


def _stage(downloaded: _Downloaded, verdict: PackageVerdict, staging: Path, limits: ExtractionLimits) -> _Staged:
    ident = downloaded.nuspec.identity
    lower_id, lower_version = ident.id.lower(), ident.version.lower()
    folder = staging / "extract" / lower_id / lower_version
    folder.mkdir(parents=True)
    try:
        extract_content(downloaded.path, folder, skip=frozenset({downloaded.nuspec.entry_name}), limits=limits)
    except (NusealError, zipfile.BadZipFile, OSError) as exc:
        detail = exc.message if isinstance(exc, NusealError) else str(exc)
        code = IssueCode.UNSAFE_PACKAGE_CONTENT if isinstance(exc, UnsafePackageError) else IssueCode.EXTRACTION_FAILED
        raise _install_error(code, f"{prefix(ident.id, ident.version, downloaded.source.url)}{detail}") from exc
    stem = f"{lower_id}.{lower_version}"
    (folder / f"{lower_id}.nuspec").write_bytes(downloaded.nuspec.data)
    (folder / f"{stem}.nupkg.sha512").write_text(file_sha512_base64(downloaded.path), encoding="ascii")
    metadata = {"version": 2, "contentHash": verdict.content_hash, "source": downloaded.source.url}
    os.replace(downloaded.path, folder / f"{stem}.nupkg")
    # Written last: its presence marks a complete package folder, as in NuGet.
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    return _Staged(folder, staging.parent / lower_id / lower_version)


def _commit(staged: list[_Staged], output: Path) -> None:
    """Rename every staged version folder into place; on failure undo the renames already done."""
    done: list[tuple[_Staged, bool]] = []
    try:
        for item in staged:
            created_parent = not item.final.parent.exists()
            item.final.parent.mkdir(parents=True, exist_ok=True)
            if item.final.exists():
                shutil.rmtree(item.final)  # an incomplete folder without .nupkg.metadata
            os.rename(item.folder, item.final)
            done.append((item, created_parent))
    except OSError as exc:
        for item, created_parent in reversed(done):
            shutil.rmtree(item.final, ignore_errors=True)
            if created_parent:
                shutil.rmtree(item.final.parent, ignore_errors=True)
        raise _install_error(IssueCode.INSTALL_COMMIT_FAILED,
                             f"Could not move the installed packages into '{output}': {exc}") from exc


def _outcome(downloaded: _Downloaded, verdict: PackageVerdict | None, output: Path) -> InstalledPackage:
    ident = downloaded.nuspec.identity
    warnings = tuple(restore_finding(f, ident.id, ident.version, downloaded.source.url)
                     for f in (verdict.warnings if verdict else ()))
    return InstalledPackage(ident.id, ident.version, downloaded.source.url, _final_dir(output, downloaded.nuspec),
                            verdict.content_hash if verdict else None, verdict is None, warnings, verdict)
