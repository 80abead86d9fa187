"""The push pipeline over real HTTPS on both backends (issue 11 acceptance): a push is ``validating`` and unserved
until the validation job repository-signed it; unsigned pushes get a repository primary signature, author-signed
ones a repository countersignature with the owners and the service index while the author signature stays
byte-identical; both verify with ``nuseal verify`` (trusting the PKI root) and ``openssl cms -verify``; removing
the repository signature (``nuseal remove-signature --repository-only``) gives back the pushed bytes exactly. Foreign
repository signatures (a countersignature, a primary signature) are accepted at push and replaced by the feed's.
Plus: the service index advertises RepositorySignatures only over https, or over http with the development flag
(and a warning)."""

from __future__ import annotations

import secrets
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.feed_http import TIMEOUT, api_key, package_status, push, wait_available
from tests.support.feed_packages import build_package, sign
from tests.support.pipeline import OPERATOR, SigningServer, author, served_bytes, start_signing_server
from tests.support.pki import TestPki
from tests.support.repository_signing import signatures_of
from tests.support.server_factories import user
from tests.support.server_fixtures import BACKENDS, DatabaseFactory, TlsFiles, start_serve
from tests.unit.sign.helpers import signer_for

from nuseal.enums import SignatureKind
from nuseal.server.services import packages
from nuseal.sign.repository import RepositorySignRequest, repo_sign_package

NUSEAL = str(Path(sys.executable).with_name("nuseal"))


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, database_factory: DatabaseFactory, pki: TestPki, tls_files: TlsFiles,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningServer]:  # fmt: skip
    started = start_signing_server(database_factory, request.param, tmp_path_factory.mktemp("pipeline"), pki,
                                   tls_files)  # fmt: skip
    yield started
    started.stop()


@pytest.fixture(scope="module")
def alice(server: SigningServer, pki: TestPki) -> str:
    """An author with a registered certificate (her pushes must be signed with it)."""
    return author(server, pki, "alice")


@pytest.fixture(scope="module")
def carol(server: SigningServer) -> str:
    """An account without certificates (her pushes are unsigned)."""
    user(server.feed.ctx, "carol")
    return api_key(server.feed.ctx, "carol")


def _verify(path: Path, roots: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NUSEAL, "verify", str(path), "--trust-roots", str(roots), "--timestamp-roots", str(roots),
                           "--revocation-mode", "offline", "--parallel", "1", "-v", "detailed"],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def _openssl_verify(path: Path, roots: Path) -> subprocess.CompletedProcess[str]:
    signature = path.with_suffix(".p7s")
    with zipfile.ZipFile(path) as archive:
        signature.write_bytes(archive.read(".signature.p7s"))
    return subprocess.run(["openssl", "cms", "-verify", "-inform", "DER", "-in", str(signature), "-binary",
                           "-CAfile", str(roots), "-purpose", "any", "-out", str(path.with_suffix(".content"))],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def test_an_unsigned_push_is_served_with_a_repository_primary_signature(server: SigningServer, carol: str,
                                                                         tmp_path: Path) -> None:  # fmt: skip
    pushed = build_package(tmp_path / "u.nupkg", "Pipeline.Unsigned", "1.0.0")
    response = push(server.url, carol, pushed, wait=False, verify=server.verify)
    assert response.status_code == 201  # nuget.org's answer too while its validation runs
    first = package_status(server.url, "Pipeline.Unsigned", "1.0.0", verify=server.verify)
    assert first["status"] in ("validating", "available")
    if first["status"] == "validating":  # not served yet: not in the flat container, search or registrations
        flat = httpx.get(f"{server.url}/v3/flatcontainer/pipeline.unsigned/index.json", verify=server.verify,
                         timeout=TIMEOUT)  # fmt: skip
        assert flat.status_code in (200, 404)
        assert flat.status_code == 404 or b"1.0.0" in flat.content  # became available in between
    assert wait_available(server.url, "Pipeline.Unsigned", "1.0.0", verify=server.verify)["findings"] == []
    data = served_bytes(server, "Pipeline.Unsigned", "1.0.0")
    found = signatures_of(data, tmp_path)
    assert (found.primary, found.repository_cert, found.repository_signatures) == (
        SignatureKind.REPOSITORY, server.certificate, 1)
    assert found.owners == ("carol",) and found.service_index_url == server.service_index
    served = tmp_path / "served-unsigned.nupkg"
    served.write_bytes(data)
    verified = _verify(served, server.roots)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "Signature type: Repository" in verified.stdout
    checked = _openssl_verify(served, server.roots)
    assert checked.returncode == 0 and "Verification successful" in checked.stderr, checked.stderr
    assert served.with_suffix(".content").read_bytes().startswith(b"Version:1\n\n2.16.840.1.101.3.4.2.1-Hash:")
    # removing the repository signature gives back the pushed (unsigned) package's content
    removed = subprocess.run([NUSEAL, "remove-signature", str(served), "--repository-only"], capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
    assert removed.returncode == 0, removed.stderr
    assert served.read_bytes() == pushed.read_bytes()


def test_an_author_signed_push_is_countersigned_and_its_author_signature_kept(server: SigningServer, alice: str,
                                                                              pki: TestPki, tmp_path: Path) -> None:
    pushed = sign(build_package(tmp_path / "a.nupkg", "Pipeline.Signed", "1.0.0"), pki)
    original = pushed.read_bytes()
    assert push(server.url, alice, pushed, verify=server.verify).status_code == 201
    wait_available(server.url, "Pipeline.Signed", "1.0.0", verify=server.verify)
    data = served_bytes(server, "Pipeline.Signed", "1.0.0")
    found, before = signatures_of(data, tmp_path), signatures_of(original, tmp_path)
    assert (found.primary, found.repository_cert, found.repository_signatures) == (
        SignatureKind.AUTHOR, server.certificate, 1)
    assert found.owners == ("alice",) and found.service_index_url == server.service_index
    assert found.author_signature_value == before.author_signature_value is not None
    served = tmp_path / "served-signed.nupkg"
    served.write_bytes(data)
    verified = _verify(served, server.roots)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "Signature type: Author" in verified.stdout and "Signature type: Repository" in verified.stdout
    checked = _openssl_verify(served, server.roots)
    assert checked.returncode == 0 and "Verification successful" in checked.stderr, checked.stderr
    removed = subprocess.run([NUSEAL, "remove-signature", str(served), "--repository-only"], capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
    assert removed.returncode == 0, removed.stderr
    # The pushed bytes exactly: the countersigner's certificates go with it, and the entry keeps its DOS time.
    assert served.read_bytes() == original
    stripped = signatures_of(served.read_bytes(), tmp_path)
    assert (stripped.primary, stripped.repository_signatures) == (SignatureKind.AUTHOR, 0)


def test_a_second_owner_is_named_in_the_signature_sorted_case_insensitively(server: SigningServer, carol: str,
                                                                             tmp_path: Path) -> None:  # fmt: skip
    assert push(server.url, carol, build_package(tmp_path / "o1.nupkg", "Pipeline.Owners", "1.0.0"),
                verify=server.verify).status_code == 201  # fmt: skip
    user(server.feed.ctx, "Abe")
    packages.add_owner(server.feed.ctx, OPERATOR, "Pipeline.Owners", "Abe")
    assert push(server.url, carol, build_package(tmp_path / "o2.nupkg", "Pipeline.Owners", "2.0.0"),
                verify=server.verify).status_code == 201  # fmt: skip
    wait_available(server.url, "Pipeline.Owners", "2.0.0", verify=server.verify)
    found = signatures_of(served_bytes(server, "Pipeline.Owners", "2.0.0"), tmp_path)
    assert found.owners == ("Abe", "carol")  # sorted ignoring case


def test_the_service_index_advertises_repository_signatures_over_https(server: SigningServer) -> None:
    index = httpx.get(f"{server.url}/v3/index.json", verify=server.verify, timeout=TIMEOUT).json()
    advertised = [(r["@type"], r["@id"]) for r in index["resources"] if "RepositorySignatures" in r["@type"]]
    assert advertised == [(f"RepositorySignatures/{v}", f"{server.url}/v3/repository-signatures/{v}/index.json")
                          for v in ("5.0.0", "4.9.0", "4.7.0")]  # fmt: skip
    document = httpx.get(advertised[0][1], verify=server.verify, timeout=TIMEOUT).json()
    assert server.certificate in [c["fingerprints"]["2.16.840.1.101.3.4.2.1"] for c in document["signingCertificates"]]


@pytest.mark.parametrize("flag", [False, True])
def test_over_http_repository_signatures_are_advertised_only_with_the_development_flag(
    tmp_path: Path, flag: bool
) -> None:
    env = {"NUSEAL_DEV_ALLOW_HTTP_REPOSITORY_SIGNATURES": "true"} if flag else {}
    served = start_serve(["--data", str(tmp_path / "data"), "--port", "0"], tmp_path / "serve.log", env=env)
    try:
        index = httpx.get(f"{served.url}/v3/index.json", timeout=TIMEOUT).json()
        types = [r["@type"] for r in index["resources"] if "RepositorySignatures" in r["@type"]]
        assert types == (["RepositorySignatures/5.0.0", "RepositorySignatures/4.9.0", "RepositorySignatures/4.7.0"]
                         if flag else [])  # fmt: skip
        document = httpx.get(f"{served.url}/v3/repository-signatures/5.0.0/index.json", timeout=TIMEOUT)
        assert document.status_code == (200 if flag else 404)
        # an http feed cannot repository-sign (NuGet wants an https service index in the signature): a push is
        # validated and served as pushed
        ctx_key = _http_key(tmp_path / "data")
        package = build_package(tmp_path / "h.nupkg", "Http.Lib", "1.0.0")
        assert push(served.url, ctx_key, package).status_code == 201
        assert wait_available(served.url, "Http.Lib", "1.0.0")["status"] == "available"
        got = httpx.get(f"{served.url}/v3/flatcontainer/http.lib/1.0.0/http.lib.1.0.0.nupkg", timeout=TIMEOUT)
        assert got.content == package.read_bytes()
    finally:
        served.stop()
    warnings = " ".join(str(line.get("message")) for line in served.log_lines() if line.get("level") == "WARNING")
    assert ("clients refuse" in warnings or "refuse" in warnings) if flag else "is not https" in warnings


def _http_key(data: Path) -> str:
    from nuseal.server.bootstrap import open_context
    from nuseal.server.settings import load_settings

    ctx = open_context(load_settings({"data_dir": data}))
    try:
        user(ctx, "henry")
        return api_key(ctx, "henry")
    finally:
        ctx.db.dispose()


FOREIGN_FEED = "https://elsewhere.example.test/v3/index.json"


def _foreign_repository_sign(path: Path, pki: TestPki) -> Path:
    """Repository-sign ``path`` in place as another feed would (its certificate is not listed here)."""
    foreign = pki.issue_leaf(f"pipeline-foreign-{secrets.token_hex(4)}")
    request = RepositorySignRequest(signer_for(foreign), FOREIGN_FEED, ("mallory",))
    repo_sign_package(path, path, request, timestamper=None, now=pki.now)
    return path


def test_a_foreign_repository_countersignature_is_replaced_by_the_feeds(server: SigningServer, alice: str,
                                                                        pki: TestPki, tmp_path: Path) -> None:
    authored = sign(build_package(tmp_path / "f.nupkg", "Pipeline.ForeignCounter", "1.0.0"), pki)
    author_signed = authored.read_bytes()
    pushed = _foreign_repository_sign(authored, pki)
    assert signatures_of(pushed.read_bytes(), tmp_path).service_index_url == FOREIGN_FEED
    # nuget.org's push does not judge repository signatures: accepted, and its job strips the foreign one.
    assert push(server.url, alice, pushed, verify=server.verify).status_code == 201
    assert wait_available(server.url, "Pipeline.ForeignCounter", "1.0.0", verify=server.verify)["findings"] == []
    data = served_bytes(server, "Pipeline.ForeignCounter", "1.0.0")
    found, before = signatures_of(data, tmp_path), signatures_of(author_signed, tmp_path)
    assert (found.primary, found.repository_cert, found.repository_signatures) == (
        SignatureKind.AUTHOR, server.certificate, 1)
    assert (found.service_index_url, found.owners) == (server.service_index, ("alice",))
    assert found.author_signature_value == before.author_signature_value is not None
    served = tmp_path / "served-foreign-counter.nupkg"
    served.write_bytes(data)
    removed = subprocess.run([NUSEAL, "remove-signature", str(served), "--repository-only"], capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
    assert removed.returncode == 0, removed.stderr
    assert served.read_bytes() == author_signed  # the author signature exactly as its author made it


def test_a_foreign_repository_primary_signature_is_replaced_by_the_feeds(server: SigningServer, alice: str,
                                                                         carol: str, pki: TestPki,
                                                                         tmp_path: Path) -> None:
    # Carol alone has no certificate: a signed push is refused at push, as nuget.org refuses it.
    unsigned = build_package(tmp_path / "p1.nupkg", "Pipeline.ForeignPrimary", "1.0.0")
    assert push(server.url, carol, unsigned, verify=server.verify).status_code == 201
    refused = push(server.url, carol, _foreign_repository_sign(
        build_package(tmp_path / "p2.nupkg", "Pipeline.ForeignPrimary", "2.0.0"), pki), verify=server.verify)
    assert refused.status_code == 400 and "The package was signed." in refused.text
    # With Alice (who has one) as a co-owner, signing is allowed but not required: the foreign repository primary
    # signature is accepted, stripped by the job, and the unsigned package gets the feed's primary signature.
    packages.add_owner(server.feed.ctx, OPERATOR, "Pipeline.ForeignPrimary", "alice")
    original = build_package(tmp_path / "p3.nupkg", "Pipeline.ForeignPrimary", "3.0.0").read_bytes()
    pushed = _foreign_repository_sign(tmp_path / "p3.nupkg", pki)
    assert push(server.url, carol, pushed, verify=server.verify).status_code == 201
    assert wait_available(server.url, "Pipeline.ForeignPrimary", "3.0.0", verify=server.verify)["findings"] == []
    data = served_bytes(server, "Pipeline.ForeignPrimary", "3.0.0")
    found = signatures_of(data, tmp_path)
    assert (found.primary, found.repository_cert, found.repository_signatures) == (
        SignatureKind.REPOSITORY, server.certificate, 1)
    assert (found.service_index_url, found.owners) == (server.service_index, ("alice", "carol"))
    served = tmp_path / "served-foreign-primary.nupkg"
    served.write_bytes(data)
    removed = subprocess.run([NUSEAL, "remove-signature", str(served), "--repository-only"], capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
    assert removed.returncode == 0, removed.stderr
    assert served.read_bytes() == original
