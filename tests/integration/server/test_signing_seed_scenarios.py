"""Issue 10's seed scenarios end to end, over HTTP against ``nuseal serve`` on both backends (SQLite + folder,
PostgreSQL + S3): certificates registered and removed through the JSON API, required signers set through it,
packages pushed the way nuget.exe pushes them and judged by the feed's signer rules with nuget.org's texts (in the
body, and as the reason phrase NuGet clients print), refusals visible in the status API and never served.

Packages are signed with certificates of the test PKI and timestamped by a ``nuseal tsa serve`` process on
loopback: some with the ``nuseal sign`` console script, the rest with the library against the same TSA. The feed
trusts the PKI's root (``--trust-roots``/``--timestamp-roots``) and checks revocation offline. nuget.exe shows
nuget.org's 400 message for an unsigned push to an account with a certificate.
"""

from __future__ import annotations

import queue
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.support.cli import console_script, script
from tests.support.feed_http import TIMEOUT, api_key, push
from tests.support.feed_packages import build_package
from tests.support.nugetexe import NuGetExe
from tests.support.pki import TEST_PASSWORD, IssuedCert, TestPki
from tests.support.server_factories import OPERATOR, organization, user
from tests.support.server_fixtures import BACKENDS, DatabaseFactory, FeedServer, start_feed_server
from tests.unit.sign.helpers import signer_for

from nuseal.server.services import packages
from nuseal.sign.author import AuthorSignRequest, sign_package
from nuseal.timestamp.client import HttpTimestamper

MUST_BE_SIGNED = "This package must be signed with a registered certificate."
YOU_MUST_REGISTER = "The package was signed. You must register the signing certificate to publish signed packages."
MANAGE = ("package:push", "account:certificates", "package:signer")


def owner_must_register(name: str) -> str:
    return (f"The package was signed. The owner '{name}' must register the signing certificate to publish signed "
            "packages.")


def unauthorized(leaf: IssuedCert) -> str:
    return (f"The package was signed, but the signing certificate (SHA-256 thumbprint "
            f"{leaf.sha256_fingerprint.lower()}) is not associated with your account. You must register this "
            "certificate to publish signed packages. [Read more...](https://aka.ms/nuget-signed-ref)")


def transition(previous: str) -> str:
    return (f"The previous package version '{previous}' is author signed but the uploaded package is unsigned. To "
            "avoid this warning, sign the package before uploading.")


# --- the TSA process and the signed packages (built once, pushed to both backends) --------------------------------


@pytest.fixture(scope="module")
def tsa_url(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``nuseal tsa serve`` (the console script) with the PKI's TSA certificate, on a free loopback port."""
    pfx = pki.tsa.write_pfx(tmp_path_factory.mktemp("tsa") / "tsa.pfx")
    process = subprocess.Popen([str(console_script()), "tsa", "serve", "--certificate-path", str(pfx),
                                "--certificate-password", TEST_PASSWORD, "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline() if process.stdout else ""),
                     daemon=True).start()  # fmt: skip
    try:
        line = lines.get(timeout=60)
    except queue.Empty:
        line = ""
    if not line.startswith("Timestamp authority listening on http://127.0.0.1:"):
        process.kill()
        pytest.fail(f"nuseal tsa serve did not start: {line!r} {process.communicate()[1]!r}")
    try:
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass(frozen=True)
class Leaves:
    alice_1: IssuedCert
    alice_2: IssuedCert
    contoso: IssuedCert
    olga: IssuedCert
    ann: IssuedCert
    eve: IssuedCert
    sam: IssuedCert
    sue: IssuedCert
    tia: IssuedCert


@pytest.fixture(scope="module")
def leaves(pki: TestPki) -> Leaves:
    return Leaves(*(pki.by_name.get(f"seed-{name}") or pki.issue_leaf(f"seed-{name}")
                    for name in ("alice-1", "alice-2", "contoso", "olga", "ann", "eve", "sam", "sue", "tia")))


#: file name -> (id, version, signer's field in Leaves or None)
PACKAGES: dict[str, tuple[str, str, str | None]] = {
    "alice-1": ("Seed.Alice", "1.0.0", None), "alice-2-unsigned": ("Seed.Alice", "2.0.0", None),
    "alice-2": ("Seed.Alice", "2.0.0", "alice_1"), "alice-3": ("Seed.Alice", "3.0.0", "alice_2"),
    "alice-4": ("Seed.Alice", "4.0.0", "alice_1"), "alice-4-second": ("Seed.Alice", "4.0.0", "alice_2"),
    "org-1": ("Seed.Org", "1.0.0", None), "org-2-unsigned": ("Seed.Org", "2.0.0", None),
    "org-2": ("Seed.Org", "2.0.0", "contoso"), "org-3-olga": ("Seed.Org", "3.0.0", "olga"),
    "shared-1": ("Seed.Shared", "1.0.0", None), "shared-2": ("Seed.Shared", "2.0.0", None),
    "shared-3": ("Seed.Shared", "3.0.0", "ann"), "shared-4-eve": ("Seed.Shared", "4.0.0", "eve"),
    "shared-4": ("Seed.Shared", "4.0.0", None),
    "signer-1": ("Seed.Signer", "1.0.0", None), "signer-2-sam": ("Seed.Signer", "2.0.0", "sam"),
    "signer-2-sue": ("Seed.Signer", "2.0.0", "sue"), "signer-3": ("Seed.Signer", "3.0.0", None),
    "trick-1": ("Seed.Trick", "1.0.0", None), "trick-2": ("Seed.Trick", "2.0.0", "tia"),
    "trick-3": ("Seed.Trick", "3.0.0", None), "trick-4": ("Seed.Trick", "4.0.0", "tia"),
}  # fmt: skip


@pytest.fixture(scope="module")
def files(pki: TestPki, leaves: Leaves, tsa_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("seed-packages")
    built = {name: build_package(folder / f"{name}.nupkg", package_id, version,
                                 files={"lib/net8.0/Seed.dll": b"MZ" + name.encode()})
             for name, (package_id, version, _) in PACKAGES.items()}  # fmt: skip
    roots = folder / "root.pem"
    roots.write_bytes(pki.root.pem)
    # alice's first certificate signs through the console script (in place), ...
    by_console = [name for name, (_, _, leaf) in PACKAGES.items() if leaf == "alice_1"]
    pfx = leaves.alice_1.write_pfx(folder / "alice-1.pfx")
    done = script("sign", *(str(built[name]) for name in by_console), "--certificate-path", str(pfx),
                  "--certificate-password", TEST_PASSWORD, "--timestamper", tsa_url, "--trust-roots", str(roots),
                  "--timestamp-roots", str(roots), "--parallel", "1")  # fmt: skip
    assert done.code == 0 and "Package(s) signed successfully." in done.stdout, done.stdout + done.stderr
    # ... the others through the library, timestamped by the same TSA process.
    with HttpTimestamper(tsa_url) as timestamper:
        for name, (_, _, leaf) in PACKAGES.items():
            if leaf is not None and leaf != "alice_1":
                sign_package(built[name], built[name], AuthorSignRequest(signer_for(getattr(leaves, leaf))),
                             timestamper=timestamper, now=pki.now)  # fmt: skip
    return built


# --- the feed --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, database_factory: DatabaseFactory, pki: TestPki,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeedServer]:  # fmt: skip
    folder = tmp_path_factory.mktemp(f"seed-{request.param}")
    roots = folder / "roots.pem"
    roots.write_bytes(pki.root.pem)
    started = start_feed_server(database_factory, request.param, folder, roots=roots)
    yield started
    started.stop()


@dataclass
class Feed:
    server: FeedServer
    files: dict[str, Path]

    def key(self, owner: str, holder: str | None = None) -> str:
        return api_key(self.server.ctx, owner, holder, scopes=MANAGE)

    def push(self, key: str, name: str) -> httpx.Response:
        return push(self.server.url, key, self.files[name])

    def _call(self, method: str, path: str, key: str, **kwargs: object) -> httpx.Response:
        return httpx.request(method, f"{self.server.url}{path}", headers={"X-NuGet-ApiKey": key}, timeout=TIMEOUT,
                             **kwargs)  # type: ignore[arg-type]

    def register(self, key: str, account: str, leaf: IssuedCert) -> httpx.Response:
        return self._call("POST", f"/api/v1/accounts/{account}/certificates", key,
                          files={"uploadFile": (f"{leaf.name}.cer", leaf.der, "application/pkix-cert")})

    def unregister(self, key: str, account: str, leaf: IssuedCert) -> httpx.Response:
        return self._call("DELETE", f"/api/v1/accounts/{account}/certificates/{leaf.sha256_fingerprint}", key)

    def set_signer(self, key: str, package_id: str, signer: str) -> httpx.Response:
        return self._call("PUT", f"/api/v1/packages/{package_id}/required-signer", key, json={"signer": signer})

    def status(self, name: str) -> dict[str, object]:
        package_id, version, _ = PACKAGES[name]
        response = httpx.get(f"{self.server.url}/api/v1/packages/{package_id}/{version}", timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def download(self, name: str) -> httpx.Response:
        package_id, version, _ = PACKAGES[name]
        lower = package_id.lower()
        return httpx.get(f"{self.server.url}/v3/flatcontainer/{lower}/{version}/{lower}.{version}.nupkg",
                         timeout=TIMEOUT)  # fmt: skip


@pytest.fixture
def feed(server: FeedServer, files: dict[str, Path]) -> Feed:
    return Feed(server, files)


def accepted(response: httpx.Response) -> httpx.Response:
    assert response.status_code == 201, (response.status_code, response.reason_phrase, response.text)
    return response


def refused(response: httpx.Response, message: str) -> None:
    """A 400 with nuget.org's ``message`` as the reason phrase and in the body (after its issue code)."""
    assert (response.status_code, response.reason_phrase) == (400, message), response.text
    assert response.text.endswith(f": {message}"), response.text


def warnings(response: httpx.Response) -> list[str]:
    return response.headers.get_list("X-NuGet-Warning")


def ok(response: httpx.Response, status: int = 201) -> None:
    assert response.status_code == status, response.text


# --- the scenarios ------------------------------------------------------------------------------------------------


def test_a_user_registers_certificates_then_unregisters_one(feed: Feed, leaves: Leaves,
                                                            nuget_exe: NuGetExe) -> None:  # fmt: skip
    user(feed.server.ctx, "alice")
    alice = feed.key("alice")
    accepted(feed.push(alice, "alice-1"))  # no certificate yet: unsigned is fine
    ok(feed.register(alice, "alice", leaves.alice_1))

    refused(feed.push(alice, "alice-2-unsigned"), MUST_BE_SIGNED)
    status = feed.status("alice-2-unsigned")  # the refusal is in the status API, the package is not served
    assert (status["status"], status["findings"]) == ("failed", [
        {"code": "PackageIsNotSigned", "severity": "error", "message": MUST_BE_SIGNED}])
    assert feed.download("alice-2-unsigned").status_code == 404
    # nuget.exe shows nuget.org's message (it prints the reason phrase)
    code, stdout, stderr = nuget_exe.run("push", str(feed.files["alice-2-unsigned"]), "-Source",
                                         f"{feed.server.url}/v3/index.json", "-ApiKey", alice)  # fmt: skip
    assert code != 0
    assert f"Response status code does not indicate success: 400 ({MUST_BE_SIGNED})" in stdout + stderr, \
        stdout + stderr

    accepted(feed.push(alice, "alice-2"))  # signed with the registered certificate: replaces the refusal
    assert (feed.status("alice-2")["status"], feed.status("alice-2")["findings"]) == ("available", [])
    ok(feed.register(alice, "alice", leaves.alice_2))
    accepted(feed.push(alice, "alice-3"))  # a second certificate works too

    ok(feed.unregister(alice, "alice", leaves.alice_1), 204)
    refused(feed.push(alice, "alice-4"), unauthorized(leaves.alice_1))
    accepted(feed.push(alice, "alice-4-second"))  # the refused 4.0.0 is replaced by one signed with the other
    # the versions pushed before stay served, byte for byte
    for name in ("alice-1", "alice-2", "alice-3", "alice-4-second"):
        served = feed.download(name)
        assert served.status_code == 200 and served.content == feed.files[name].read_bytes(), name


def test_organization_certificates_and_a_collaborator(feed: Feed, leaves: Leaves) -> None:
    for name in ("olga", "carl"):
        user(feed.server.ctx, name)
    organization(feed.server.ctx, "contoso", admins=["olga"], collaborators=["carl"])
    olga, carl, olga_herself = feed.key("contoso", "olga"), feed.key("contoso", "carl"), feed.key("olga")
    accepted(feed.push(carl, "org-1"))  # the organization owns the new id
    assert feed.register(carl, "contoso", leaves.contoso).status_code == 403  # a collaborator cannot register
    ok(feed.register(olga, "contoso", leaves.contoso))  # an organization admin can
    ok(feed.register(olga_herself, "olga", leaves.olga))  # a member's own certificate does not count

    refused(feed.push(carl, "org-2-unsigned"), MUST_BE_SIGNED)
    accepted(feed.push(carl, "org-2"))  # the collaborator pushes with the organization's certificate
    refused(feed.push(olga, "org-3-olga"), unauthorized(leaves.olga))
    assert feed.set_signer(carl, "Seed.Org", "contoso").status_code == 403  # nor may a collaborator change it
    changed = feed.set_signer(olga, "Seed.Org", "contoso")
    assert (changed.status_code, changed.json()["signing"]) == (200, "required")


def test_several_owners_under_any_with_mixed_certificates(feed: Feed, leaves: Leaves) -> None:
    for name in ("ann", "ben", "eve"):
        user(feed.server.ctx, name)
    ann, ben, eve = feed.key("ann"), feed.key("ben"), feed.key("eve")
    accepted(feed.push(ann, "shared-1"))
    packages.add_owner(feed.server.ctx, OPERATOR, "Seed.Shared", "ben")
    ok(feed.register(ann, "ann", leaves.ann))
    ok(feed.register(eve, "eve", leaves.eve))  # a stranger's certificate

    unsigned = accepted(feed.push(ben, "shared-2"))  # ben has none: unsigned is allowed
    assert warnings(unsigned) == []
    accepted(feed.push(ben, "shared-3"))  # any owner's certificate is acceptable
    refused(feed.push(ben, "shared-4-eve"), unauthorized(leaves.eve))
    after_signed = accepted(feed.push(ann, "shared-4"))  # unsigned after an author-signed version: a warning
    assert warnings(after_signed) == [transition("3.0.0")]


def test_a_specific_signer(feed: Feed, leaves: Leaves) -> None:
    for name in ("sam", "sue"):
        user(feed.server.ctx, name)
    sam, sue = feed.key("sam"), feed.key("sue")
    accepted(feed.push(sam, "signer-1"))
    packages.add_owner(feed.server.ctx, OPERATOR, "Seed.Signer", "sue")
    ok(feed.register(sam, "sam", leaves.sam))
    ok(feed.register(sue, "sue", leaves.sue))
    chosen = feed.set_signer(sam, "Seed.Signer", "sue")
    assert (chosen.status_code, chosen.json()["required_signer"], chosen.json()["signing"]) == (200, "sue", "required")

    refused(feed.push(sam, "signer-2-sam"), unauthorized(leaves.sam))  # an owner's, but not the signer's
    accepted(feed.push(sam, "signer-2-sue"))
    refused(feed.push(sam, "signer-3"), MUST_BE_SIGNED)


def test_the_exclusion_trick(feed: Feed, leaves: Leaves) -> None:
    for name in ("tia", "tom"):
        user(feed.server.ctx, name)
    tia, tom = feed.key("tia"), feed.key("tom")
    accepted(feed.push(tia, "trick-1"))
    packages.add_owner(feed.server.ctx, OPERATOR, "Seed.Trick", "tom")
    ok(feed.register(tia, "tia", leaves.tia))
    accepted(feed.push(tia, "trick-2"))
    # naming the owner without a certificate as the required signer: pushes must now be unsigned
    trick = feed.set_signer(tia, "Seed.Trick", "tom")
    assert (trick.status_code, trick.json()["signing"]) == (200, "not allowed")
    assert warnings(accepted(feed.push(tia, "trick-3"))) == [transition("2.0.0")]
    refused(feed.push(tia, "trick-4"), owner_must_register("tom"))
    refused(feed.push(tom, "trick-4"), YOU_MUST_REGISTER)
    assert feed.status("trick-4")["status"] == "failed"
