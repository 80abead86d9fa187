# ruff: noqa: E501  (expected XML reads better unwrapped)
"""``nuseal trust`` end to end: real nuget.config files, real packages from the vectors, and a static V3 feed
with a RepositorySignatures/5.0.0 resource served over HTTP on 127.0.0.1 (spec §7.3, §7.4, §8)."""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tests.support.cli import run
from tests.unit.trust.nuget_org_document import NUGET_ORG_CERTIFICATES, repository_signatures_document

from nuseal.trust.nuget_config import USER_CONFIG_RELATIVE


class StaticFeed:
    """A tiny V3 feed: ``/v3/index.json`` and ``/v3/repository-signatures/index.json``, editable by tests."""

    def __init__(self) -> None:
        self.documents: dict[str, bytes] = {}
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.index_url = f"{self.base}/v3/index.json"
        self.set_certificates(NUGET_ORG_CERTIFICATES)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set_certificates(self, certificates: list[tuple[str, str, str, str]]) -> None:
        index = {"version": "3.0.0", "resources": [
            {"@id": f"{self.base}/v3/flatcontainer/", "@type": "PackageBaseAddress/3.0.0"},
            {"@id": f"{self.base}/v3/repository-signatures/index.json", "@type": "RepositorySignatures/5.0.0"},
        ]}
        doc = repository_signatures_document(certificates=certificates, content_base=f"{self.base}/certs")
        self.documents = {"/v3/index.json": json.dumps(index).encode(),
                          "/v3/repository-signatures/index.json": json.dumps(doc).encode()}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = feed.documents.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def feed() -> Iterator[StaticFeed]:
    server = StaticFeed()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and a fresh home, so only the files a test writes are read."""
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def config(workdir: Path) -> Path:
    path = workdir / "nuget.config"
    path.write_text('<?xml version="1.0" encoding="utf-8"?>\n<configuration>\n</configuration>\n')
    return path


def trust(*args: str) -> tuple[int, str, str]:
    code, out, err = run("trust", *args)
    return code, out, err


def _expected(vectors: Path, name: str) -> dict[str, str]:
    with (vectors / "EXPECTED.tsv").open() as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if row["path"] == name:
                return row
    raise AssertionError(name)


# -- source / sync against a real HTTP feed ----------------------------------------------------------


def test_trust_source_writes_the_repository_nuget_writes(feed: StaticFeed, config: Path) -> None:
    code, _, err = trust("source", "nuget.org", "--source-url", feed.index_url, "--owners", "microsoft;nuget",
                           "--allow-insecure-loopback", "--configfile", str(config))
    assert (code, err) == (0, "")
    # Fingerprints are written as the feed lists them (lowercase here), one <certificate> per listed
    # SHA-256, allowUntrustedRoot="false"; owners joined with ';'; spec §7.3/§7.4.
    certificates = "".join(
        f'      <certificate fingerprint="{fp}" hashAlgorithm="SHA256" allowUntrustedRoot="false" />\n'
        for fp, _, _, _ in NUGET_ORG_CERTIFICATES
    )
    assert config.read_text() == (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        "<configuration>\n"
        "  <trustedSigners>\n"
        f'    <repository name="nuget.org" serviceIndex="{feed.index_url}">\n'
        f"{certificates}"
        "      <owners>microsoft;nuget</owners>\n"
        "    </repository>\n"
        "  </trustedSigners>\n"
        "</configuration>\n"
    )


def test_trust_source_by_configured_source_name(feed: StaticFeed, config: Path) -> None:
    config.write_text(f'<configuration>\n  <packageSources>\n    <add key="Local" value="{feed.index_url}" />\n'
                      "  </packageSources>\n</configuration>\n")
    code, _, err = trust("source", "local", "--allow-insecure-loopback", "--configfile", str(config))
    assert (code, err) == (0, "")
    assert f'<repository name="local" serviceIndex="{feed.index_url}">' in config.read_text()


def test_trust_source_refuses_plain_http_without_the_opt_in(feed: StaticFeed, config: Path) -> None:
    code, _, err = trust("source", "x", "--source-url", feed.index_url, "--configfile", str(config))
    assert code == 1
    assert f"The repository service index '{feed.index_url}' is not a valid HTTPS url." in err


def test_trust_source_duplicates_fail_with_nuget_wording(feed: StaticFeed, config: Path) -> None:
    args = ("--allow-insecure-loopback", "--configfile", str(config))
    assert trust("source", "one", "--source-url", feed.index_url, *args)[0] == 0
    before = config.read_bytes()
    code, _, err = trust("source", "one", "--source-url", feed.index_url, *args)
    assert code == 1 and "A trusted signer 'one' already exists." in err
    code, _, err = trust("source", "two", "--source-url", feed.index_url.upper().replace("HTTP:", "http:"), *args)
    assert code == 1
    assert "A trusted repository with the service index" in err and "already exists." in err
    assert config.read_bytes() == before


def test_trust_source_without_resource_or_certificates(feed: StaticFeed, config: Path) -> None:
    args = ("--allow-insecure-loopback", "--configfile", str(config))
    feed.set_certificates([])
    code, _, err = trust("source", "empty", "--source-url", feed.index_url, *args)
    assert code == 1
    assert f"The repository with the service index '{feed.index_url}' does not list any trusted certificates." in err
    del feed.documents["/v3/repository-signatures/index.json"]
    feed.documents["/v3/index.json"] = b'{"version": "3.0.0", "resources": []}'
    code, _, err = trust("source", "none", "--source-url", feed.index_url, *args)
    assert code == 1 and f"Invalid certificate information from the service index '{feed.index_url}'." in err


def test_trust_sync_replaces_certificates_and_keeps_the_rest(feed: StaticFeed, config: Path) -> None:
    args = ("--allow-insecure-loopback", "--configfile", str(config))
    assert trust("source", "nuget.org", "--source-url", feed.index_url, "--owners", "microsoft", *args)[0] == 0
    text = config.read_text().replace("<trustedSigners>", "<trustedSigners>\n    <!-- keep me -->")
    config.write_text(text)
    feed.set_certificates(NUGET_ORG_CERTIFICATES[2:])
    code, _, err = trust("sync", "nuget.org", *args)
    assert (code, err) == (0, "")
    text = config.read_text()
    assert "<!-- keep me -->" in text and "<owners>microsoft</owners>" in text
    assert NUGET_ORG_CERTIFICATES[2][0] in text
    assert NUGET_ORG_CERTIFICATES[0][0] not in text and NUGET_ORG_CERTIFICATES[1][0] not in text
    code, _, err = trust("sync", "missing", *args)
    assert code == 1 and "A trusted repository 'missing' does not exist." in err


# -- from packages ---------------------------------------------------------------------------------------


def test_trust_author_from_an_author_signed_package(vectors: Path, config: Path) -> None:
    name = "real/Newtonsoft.Json.13.0.1.nupkg"
    code, _, err = trust("author", "jamesnk", str(vectors / name), "--allow-untrusted-root", "--configfile", str(config))
    assert (code, err) == (0, "")
    fp = _expected(vectors, name)["signer_sha256"].upper()
    assert (f'    <author name="jamesnk">\n'
            f'      <certificate fingerprint="{fp}" hashAlgorithm="SHA256" allowUntrustedRoot="true" />\n'
            "    </author>\n") in config.read_text()


def test_trust_repository_from_a_countersigned_package(vectors: Path, config: Path) -> None:
    name = "real/Newtonsoft.Json.13.0.1.nupkg"
    code, _, err = trust("repository", "nuget.org", str(vectors / name), "--owners", "jamesnk;newtonsoft",
                         "--configfile", str(config))
    assert (code, err) == (0, "")
    row = _expected(vectors, name)
    text = config.read_text()
    assert f'<repository name="nuget.org" serviceIndex="{row["service_index_url"]}">' in text
    assert f'fingerprint="{row["countersigner_sha256"].upper()}"' in text
    assert "<owners>jamesnk;newtonsoft</owners>" in text


def test_trust_repository_from_a_repository_signed_package(vectors: Path, config: Path) -> None:
    name = "real/Antlr.3.5.0.2.nupkg"
    assert trust("repository", "nuget.org", str(vectors / name), "--configfile", str(config))[0] == 0
    assert f'fingerprint="{_expected(vectors, name)["signer_sha256"].upper()}"' in config.read_text()


def test_trust_author_and_repository_refuse_the_wrong_signature(vectors: Path, config: Path) -> None:
    code, _, err = trust("author", "x", str(vectors / "real/Antlr.3.5.0.2.nupkg"), "--configfile", str(config))
    assert code == 1 and "Unable to add trusted author. The package is not author signed." in err
    code, _, err = trust("repository", "x", str(vectors / "fixtures/TestPackage.AuthorSigned.1.0.0.nupkg"),
                         "--configfile", str(config))
    assert code == 1
    assert "Unable to add trusted repository. The package is not repository signed or countersigned." in err
    code, _, err = trust("author", "x", str(vectors / "real/NUnit.2.6.4__unsigned.nupkg"), "--configfile", str(config))
    assert code == 1 and "The package is not signed." in err


# -- certificate / list / remove -------------------------------------------------------------------------


def test_certificate_list_and_remove(config: Path) -> None:
    fp1, fp2 = "AA" * 32, "bb" * 48
    assert trust("certificate", "contoso", fp1, "--configfile", str(config))[0] == 0
    assert trust("certificate", "contoso", fp2, "--algorithm", "sha384", "--allow-untrusted-root",
                 "--configfile", str(config))[0] == 0
    code, _, err = trust("certificate", "contoso", fp1, "--configfile", str(config))
    assert code == 1 and "already in the certificate fingerprint list" in err
    code, _, err = trust("certificate", "contoso", fp1, "--algorithm", "MD5", "--configfile", str(config))
    assert code == 2 and "'MD5' is not a supported hash algorithm." in err

    code, out, _ = trust("list", "--configfile", str(config))
    assert code == 0
    assert out == (
        "Registered trusted signers:\n\n\n"
        " 1.   contoso [author]\n"
        "      Certificate fingerprint(s):\n"
        f"        SHA256 - {fp1}\n"
        f"        [U] SHA384 - {fp2}\n\n"
    )
    # The stored fingerprint keeps the case it was typed in (spec §7.3).
    assert f'fingerprint="{fp2}" hashAlgorithm="SHA384" allowUntrustedRoot="true"' in config.read_text()

    code, out, _ = trust("list", "--json", "--configfile", str(config))
    listed = json.loads(out)["trustedSigners"]
    assert listed[0]["certificates"][1] == {"fingerprint": fp2, "hashAlgorithm": "SHA384", "allowUntrustedRoot": True}

    code, out, _ = trust("remove", "CONTOSO", "--configfile", str(config))
    assert (code, out) == (0, "Successfully removed the trusted signer 'CONTOSO'.\n")
    code, out, _ = trust("remove", "contoso", "--configfile", str(config))
    assert (code, out) == (0, "No trusted signers with the name: 'contoso' were found.\n")
    code, out, _ = trust("--configfile", str(config))
    assert (code, out) == (0, "There are no trusted signers.\n")


def test_list_shows_repositories_with_service_index_and_owners(config: Path) -> None:
    config.write_text(
        "<configuration><trustedSigners>"
        '<repository name="nuget.org" serviceIndex="https://api.nuget.org/v3/index.json">'
        '<certificate fingerprint="0E5F" hashAlgorithm="SHA256" allowUntrustedRoot="false"/>'
        "<owners>microsoft;aspnet</owners></repository></trustedSigners></configuration>")
    code, out, _ = trust("--configfile", str(config))
    assert code == 0
    assert out == (
        "Registered trusted signers:\n\n\n"
        " 1.   nuget.org [repository]\n"
        "      Service Index: https://api.nuget.org/v3/index.json\n"
        "      Trusted owners: microsoft; aspnet\n"
        "      Certificate fingerprint(s):\n"
        "        SHA256 - 0E5F\n\n"
    )


def test_without_configfile_the_user_config_is_written(workdir: Path) -> None:
    assert trust("certificate", "mine", "CC" * 32)[0] == 0
    user = Path.home() / USER_CONFIG_RELATIVE
    text = user.read_text()
    assert '<add key="nuget.org" value="https://api.nuget.org/v3/index.json" protocolVersion="3" />' in text
    assert '<author name="mine">' in text
    code, out, _ = trust()
    assert code == 0 and " 1.   mine [author]" in out


def test_invalid_config_is_reported_with_its_path(config: Path) -> None:
    config.write_text('<configuration><trustedSigners><author name="x"/></trustedSigners></configuration>')
    code, _, err = trust("list", "--configfile", str(config))
    assert code == 1 and str(config) in err and "at least one certificate" in err
