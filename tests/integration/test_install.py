"""``nuseal install`` end to end against a static V3 feed on 127.0.0.1 (spec §6.1-6.3, §8).

Real nuget.org packages from the vectors, synthetic unsigned packages built with zipfile; revocation offline.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.static_feed import NUGET_ORG_REPOSITORY_FINGERPRINTS, StaticFeed, serve_feed
from tests.support.tamper import append_to_entry
from typer.testing import CliRunner

from nuseal.cli.app import app
from nuseal.codes import Messages
from nuseal.package.archive import remove_signature

runner = CliRunner()

REQUIRE_NUGET_ORG = """<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <config><add key="signatureValidationMode" value="require" /></config>
  <trustedSigners>
    <repository name="nuget.org" serviceIndex="https://api.nuget.org/v3/index.json">
{certificates}
    </repository>
  </trustedSigners>
</configuration>
"""
ACCEPT = '<?xml version="1.0" encoding="utf-8"?>\n<configuration />\n'


def _require_config() -> str:
    certs = "\n".join(f'      <certificate fingerprint="{fp}" hashAlgorithm="SHA256" allowUntrustedRoot="false" />'
                      for fp in NUGET_ORG_REPOSITORY_FINGERPRINTS)
    return REQUIRE_NUGET_ORG.format(certificates=certs)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("NUGET_CERT_REVOCATION_MODE", raising=False)
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def feed(tmp_path: Path) -> Iterator[StaticFeed]:
    with serve_feed(tmp_path / "feed") as served:
        yield served


def write_config(workdir: Path, text: str) -> Path:
    path = workdir / "nuget.config"
    path.write_text(text)
    return path


def install(feed: StaticFeed, config: Path, out: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["install", *args, "--source", feed.index_url, "--allow-insecure-loopback",
                                 "--configfile", str(config), "-o", str(out), "--revocation-mode", "offline"])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def make_package(directory: Path, package_id: str, version: str, dependencies: list[tuple[str, str]] = (),  # type: ignore[assignment]
                 extra: dict[str, bytes] | None = None, grouped: bool = False) -> Path:
    """A minimal unsigned package, as ``nuget pack`` lays it out."""
    deps = "".join(f'<dependency id="{d}" version="{r}" />' for d, r in dependencies)
    if grouped and deps:
        deps = f'<group targetFramework="net462">{deps}</group><group targetFramework="netstandard2.0" />'
    nuspec = (f'<?xml version="1.0"?><package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">'
              f"<metadata><id>{package_id}</id><version>{version}</version><authors>t</authors>"
              f"<description>d</description><dependencies>{deps}</dependencies></metadata></package>")
    path = directory / f"{package_id}.{version}.nupkg"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("_rels/.rels", "<Relationships />")
        z.writestr(f"{package_id}.nuspec", nuspec)
        z.writestr(f"lib/netstandard2.0/{package_id}.dll", b"MZ" + package_id.encode())
        z.writestr("[Content_Types].xml", "<Types />")
        z.writestr("package/services/metadata/core-properties/x.psmdcp", "<coreProperties />")
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return path


def _sha512_b64(path: Path) -> str:
    return base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


# -- 1. real nuget.org packages in require mode ------------------------------------------------------------


@pytest.mark.parametrize(("name", "package_id", "version"), [
    ("Newtonsoft.Json.13.0.1.nupkg", "Newtonsoft.Json", "13.0.1"),
    ("Microsoft.Bcl.AsyncInterfaces.8.0.0.nupkg", "Microsoft.Bcl.AsyncInterfaces", "8.0.0"),
])
def test_require_mode_installs_nuget_org_package(vectors: Path, workdir: Path, feed: StaticFeed, tmp_path: Path,
                                                 name: str, package_id: str, version: str) -> None:
    feed.set_repository_signatures(NUGET_ORG_REPOSITORY_FINGERPRINTS, all_signed=True)
    source = vectors / "real" / name
    feed.add(source)
    out = workdir / "packages"
    # The real dependencies (Microsoft.CSharp, System.Threading.Tasks.Extensions, ...) are not on this feed.
    code, _stdout, stderr = install(feed, write_config(workdir, _require_config()), out, package_id,
                                   "--version", version, "--ignore-dependencies")
    assert code == 0, stderr
    # Offline revocation in require mode (reportUnknownRevocation) gives NU3018 warnings, nothing else.
    assert all(line.startswith("warn : ") and "NU3018" in line for line in stderr.splitlines()), stderr
    lower = package_id.lower()
    folder = out / lower / version
    nupkg = folder / f"{lower}.{version}.nupkg"
    assert nupkg.read_bytes() == source.read_bytes()
    assert (folder / f"{lower}.{version}.nupkg.sha512").read_text() == _sha512_b64(source)
    with zipfile.ZipFile(source) as z:
        nuspec_name = next(n for n in z.namelist() if n.endswith(".nuspec") and "/" not in n)
        assert (folder / f"{lower}.nuspec").read_bytes() == z.read(nuspec_name)
        for info in z.infolist():
            skipped = info.filename.startswith(("_rels/", "package/")) or info.filename in (
                "[Content_Types].xml", ".signature.p7s", nuspec_name)
            assert (folder / info.filename).exists() != skipped, info.filename
    unsigned = tmp_path / "unsigned.nupkg"
    remove_signature(source, unsigned)
    metadata = json.loads((folder / ".nupkg.metadata").read_text())
    assert metadata == {"version": 2, "contentHash": _sha512_b64(unsigned), "source": feed.index_url}
    assert sorted(p.name for p in out.iterdir()) == [lower]  # no staging leftovers


# -- 2. tampered package ---------------------------------------------------------------------------------------


def test_tampered_package_is_refused_and_leaves_nothing(vectors: Path, workdir: Path, feed: StaticFeed,
                                                        tmp_path: Path) -> None:
    feed.set_repository_signatures(NUGET_ORG_REPOSITORY_FINGERPRINTS, all_signed=True)
    tampered = tmp_path / "Newtonsoft.Json.13.0.1.nupkg"
    append_to_entry(vectors / "real/Newtonsoft.Json.13.0.1.nupkg", tampered, name="LICENSE.md")
    feed.add(tampered)
    out = workdir / "packages"
    code, _stdout, stderr = install(feed, write_config(workdir, _require_config()), out, "Newtonsoft.Json",
                                   "--ignore-dependencies")
    assert code == 1
    assert (f"Package 'Newtonsoft.Json 13.0.1' from source '{feed.index_url}': NU3008: "
            f"{Messages.INTEGRITY_FAILED}") in stderr
    assert not out.exists()


def test_unreadable_dependency_blocks_the_whole_install(workdir: Path, feed: StaticFeed, tmp_path: Path) -> None:
    # App is fine but its dependency is not a readable package: nothing is extracted, not even App.
    feed.add(make_package(tmp_path, "App", "1.0.0", [("Dep", "1.0.0")]))
    feed.add(make_package(tmp_path, "Dep", "1.0.0"))
    (feed.root / "v3/flatcontainer/dep/1.0.0/dep.1.0.0.nupkg").write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    out = workdir / "packages"
    out.mkdir()
    code, _, stderr = install(feed, write_config(workdir, ACCEPT), out, "App")
    assert code == 1, stderr
    assert list(out.iterdir()) == []


# -- 3. unsigned packages ------------------------------------------------------------------------------------------


def test_unsigned_installs_in_accept_mode_and_is_refused_in_require_mode(vectors: Path, workdir: Path,
                                                                         feed: StaticFeed) -> None:
    source = vectors / "real/NUnit.2.6.4__unsigned.nupkg"
    feed.add(source)
    out = workdir / "packages"
    code, _stdout, stderr = install(feed, write_config(workdir, ACCEPT), out, "NUnit")
    assert (code, stderr) == (0, "")
    metadata = json.loads((out / "nunit/2.6.4/.nupkg.metadata").read_text())
    assert metadata["contentHash"] == _sha512_b64(source)  # unsigned: SHA-512 of the whole file
    assert (out / "nunit/2.6.4/lib/nunit.framework.dll").is_file()

    out2 = workdir / "required"
    code, _, stderr = install(feed, write_config(workdir, _require_config()), out2, "NUnit")
    assert code == 1
    assert (f"Package 'NUnit 2.6.4' from source '{feed.index_url}': NU3004: {Messages.REQUIRE_MODE_UNSIGNED}"
            in stderr)
    assert not out2.exists()


# -- 4. allRepositorySigned -----------------------------------------------------------------------------------


def test_all_repository_signed_feed_refuses_unsigned(vectors: Path, workdir: Path, feed: StaticFeed) -> None:
    feed.set_repository_signatures(NUGET_ORG_REPOSITORY_FINGERPRINTS, all_signed=True)
    feed.add(vectors / "real/NUnit.2.6.4__unsigned.nupkg")
    out = workdir / "packages"
    code, _, stderr = install(feed, write_config(workdir, ACCEPT), out, "NUnit")
    assert code == 1
    assert (f"Package 'NUnit 2.6.4' from source '{feed.index_url}': NU3004: {Messages.REPO_ALL_SIGNED_UNSIGNED}"
            in stderr)
    assert not out.exists()


def test_accept_mode_untrusted_signature_installs_with_warning(vectors: Path, workdir: Path, feed: StaticFeed,
                                                               tmp_path: Path) -> None:
    # The feed lists a certificate that did not sign the package: NU3034 is a warning in accept mode.
    feed.set_repository_signatures(["ab" * 32], all_signed=False)
    feed.add(vectors / "real/Microsoft.Bcl.AsyncInterfaces.8.0.0.nupkg")
    out = workdir / "packages"
    code, _stdout, stderr = install(feed, write_config(workdir, ACCEPT), out, "Microsoft.Bcl.AsyncInterfaces",
                                   "--ignore-dependencies")
    assert code == 0, stderr
    assert (f"warn : Package 'Microsoft.Bcl.AsyncInterfaces 8.0.0' from source '{feed.index_url}': NU3034: "
            f"{Messages.REPO_CERT_NOT_LISTED}") in stderr
    assert (out / "microsoft.bcl.asyncinterfaces/8.0.0/.nupkg.metadata").is_file()


# -- 5. unsafe entries and dependency resolution -------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["../evil.txt", "lib/../../evil.txt", "/etc/evil.txt", "C:/evil.txt",
                                   "lib/%2e%2e/%2e%2e/evil.txt"])
def test_path_traversal_entry_is_refused(workdir: Path, feed: StaticFeed, tmp_path: Path, entry: str) -> None:
    feed.add(make_package(tmp_path, "Evil", "1.0.0", extra={entry: b"owned"}))
    out = workdir / "packages"
    code, _, stderr = install(feed, write_config(workdir, ACCEPT), out, "Evil")
    assert code == 1
    assert f"Package 'Evil 1.0.0' from source '{feed.index_url}': Package entry '{entry}'" in stderr
    assert not out.exists()
    assert not (workdir / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_zip_bomb_entry_is_refused(workdir: Path, feed: StaticFeed, tmp_path: Path) -> None:
    feed.add(make_package(tmp_path, "Bomb", "1.0.0", extra={"content/zeros.bin": b"\0" * (8 * 1024 * 1024)}))
    code, _, stderr = install(feed, write_config(workdir, ACCEPT), workdir / "packages", "Bomb")
    assert code == 1
    assert "Package entry 'content/zeros.bin' inflates more than 200:1" in stderr


def test_dependencies_resolve_to_lowest_applicable_version(workdir: Path, feed: StaticFeed, tmp_path: Path) -> None:
    # App -> Lib >= 1.1 (lowest applicable: 1.1.0, not 2.0.0), Lib 1.1.0 -> Util [2.0, 3.0) grouped by framework,
    # Util 2.5.0 -> App (a cycle); Util 3.0.0 and a 2.1.0-beta prerelease must not be picked.
    feed.add(make_package(tmp_path, "App", "1.0.0", [("Lib", "1.1")]))
    for version in ("1.0.0", "1.1.0", "2.0.0"):
        feed.add(make_package(tmp_path, "Lib", version, [("Util", "[2.0,3.0)")], grouped=True))
    feed.add(make_package(tmp_path, "Util", "2.1.0-beta", [("App", "1.0.0")]))
    feed.add(make_package(tmp_path, "Util", "2.5.0", [("App", "1.0.0")]))
    feed.add(make_package(tmp_path, "Util", "3.0.0"))
    out = workdir / "packages"
    code, stdout, stderr = install(feed, write_config(workdir, ACCEPT), out, "App", "--json")
    assert (code, stderr) == (0, "")
    installed = {(p["id"], p["version"]) for p in json.loads(stdout)["installed"]}
    assert installed == {("App", "1.0.0"), ("Lib", "1.1.0"), ("Util", "2.5.0")}
    assert sorted(p.name for p in out.iterdir()) == ["app", "lib", "util"]
    assert (out / "lib/1.1.0/lib/netstandard2.0/Lib.dll").is_file()


@pytest.mark.parametrize("page_size", [None, 2], ids=["inline-page", "linked-pages"])
def test_registration_fallback_and_highest_stable(workdir: Path, tmp_path: Path, page_size: int | None) -> None:
    with serve_feed(tmp_path / "regfeed", flat_container=False, registrations=True,
                    registration_page_size=page_size) as feed:
        feed.write_index()
        for version in ("1.0.0", "1.2.0", "2.0.0-rc.1"):
            feed.add(make_package(tmp_path, "Reg", version))
        out = workdir / "packages"
        code, _stdout, stderr = install(feed, write_config(workdir, ACCEPT), out, "Reg")
        assert (code, stderr) == (0, "")
        assert (out / "reg/1.2.0/reg.1.2.0.nupkg").is_file()
        code, _, stderr = install(feed, write_config(workdir, ACCEPT), out, "Reg", "--prerelease")
        assert (code, stderr) == (0, "")
        assert (out / "reg/2.0.0-rc.1/.nupkg.metadata").is_file()


def test_plain_http_refused_without_loopback_opt_in(workdir: Path, feed: StaticFeed, tmp_path: Path) -> None:
    feed.add(make_package(tmp_path, "App", "1.0.0"))
    result = runner.invoke(app, ["install", "App", "--source", feed.index_url, "--configfile",
                                 str(write_config(workdir, ACCEPT)), "-o", str(workdir / "p")])
    assert result.exit_code == 1
    assert f"'{feed.index_url}'" in result.stderr and "https" in result.stderr
