"""The signing-governance JSON API over real HTTP against ``nuseal serve`` (a subprocess on a free loopback port),
on SQLite and on PostgreSQL: certificates, the required signer, the push dry run, permissions (API-key scopes and
the matrix), refused uploads that store nothing (100 random byte strings and a 10 MB file), the OpenAPI schema.

The feed trusts the test PKI's root and checks revocation online against the PKI's loopback OCSP/CRL servers.
"""

from __future__ import annotations

import random
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from tests.support.governance import signed_nupkg, write_nupkg
from tests.support.pki import TestPki
from tests.support.server_factories import OPERATOR, organization, package, user
from tests.support.server_fixtures import BACKENDS, DatabaseFactory, FakeClock, ServeProcess, make_context, start_serve

from nuseal.server.db.models import AccountCertificate, AuditEvent, Certificate, PackageVersion
from nuseal.server.db.session import Database
from nuseal.server.services import apikeys, packages
from nuseal.server.services.context import ServiceContext

MUST_BE_SIGNED = "This package must be signed with a registered certificate."


@dataclass
class Feed:
    serve: ServeProcess
    ctx: ServiceContext
    keys: dict[str, str]

    @property
    def url(self) -> str:
        return self.serve.url

    def request(self, method: str, path: str, key: str | None = None, **kwargs: object) -> httpx.Response:
        headers = {"X-NuGet-ApiKey": self.keys[key]} if key is not None else {}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]

    def upload(self, account: str, data: bytes, key: str = "alice", name: str = "signing.cer") -> httpx.Response:
        return self.request("POST", f"/api/v1/accounts/{account}/certificates", key,
                            files={"uploadFile": (name, data, "application/pkix-cert")})  # fmt: skip

    def count(self, model: type[object]) -> int:
        with self.ctx.db.reading() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)


#: key name → (owner, holder, scopes)
KEYS = {
    "alice": ("alice", "alice", ["account:certificates", "package:signer"]),
    "alice-push": ("alice", "alice", ["package:push"]),
    "bob": ("bob", "bob", ["account:certificates", "package:signer", "package:push"]),
    "eve": ("eve", "eve", ["account:certificates", "package:signer", "package:push"]),
    "olga-org": ("contoso", "olga", ["account:certificates", "package:signer", "package:push"]),
    "carl-org": ("contoso", "carl", ["account:certificates", "package:signer", "package:push"]),
}


@pytest.fixture(params=BACKENDS)
def feed(request: pytest.FixtureRequest, database_factory: DatabaseFactory, pki: TestPki, tmp_path: Path,
         running_servers: None) -> Iterator[Feed]:  # fmt: skip
    url = database_factory.new_url(request.param)
    db = Database(url)
    data = tmp_path / "data"
    ctx = make_context(db, data, FakeClock(datetime.now(UTC)))
    for name in ("alice", "bob", "olga", "carl", "eve"):
        user(ctx, name)
    organization(ctx, "contoso", admins=["olga"], collaborators=["carl"])
    package(ctx, "Alice.Lib", "alice")
    package(ctx, "Shared.Lib", "alice")
    packages.add_owner(ctx, OPERATOR, "Shared.Lib", "bob")
    package(ctx, "Contoso.Lib", "contoso")
    keys = {name: apikeys.create(ctx, OPERATOR, owner, holder_name=holder, scopes=scopes).token
            for name, (owner, holder, scopes) in KEYS.items()}  # fmt: skip
    root = tmp_path / "root.pem"
    root.write_bytes(pki.root.pem)
    serve = start_serve(["--data", str(data), "--database-url", url, "--port", "0", "--trust-roots", str(root),
                         "--timestamp-roots", str(root), "--revocation-mode", "online"], tmp_path / "serve.log")
    try:
        yield Feed(serve, ctx, keys)
    finally:
        serve.stop()
        db.dispose()
        database_factory.release(url)


def problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and isinstance(body["detail"], str)
    return dict(body)


def test_register_list_get_and_unregister(feed: Feed, pki: TestPki) -> None:
    fp = pki.leaf.sha256_fingerprint.lower()
    created = feed.upload("alice", pki.leaf.der)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/api/v1/accounts/alice/certificates/{fp}"
    body = created.json()
    assert (body["account"], body["added"], body["certificate"]["sha256"]) == ("alice", True, fp)
    assert body["certificate"]["subject"] == "O=nuseal tests, CN=nuseal test leaf"  # details from registration on
    assert body["certificate"]["issuer"] == "O=nuseal tests, CN=nuseal test intermediate"
    again = feed.upload("alice", pki.leaf.der)
    assert (again.status_code, again.json()["added"]) == (200, False)

    listed = feed.request("GET", "/api/v1/accounts/alice/certificates", "alice")
    assert listed.status_code == 200
    assert [c["sha256"] for c in listed.json()["certificates"]] == [fp]
    single = feed.request("GET", f"/api/v1/accounts/alice/certificates/{fp.upper()}", "alice")
    assert (single.status_code, single.json()["not_after"][:10]) == (200, pki.leaf.cert.not_valid_after_utc.date()
                                                                     .isoformat())  # fmt: skip

    assert feed.request("DELETE", f"/api/v1/accounts/alice/certificates/{fp}", "alice").status_code == 204
    assert feed.request("DELETE", f"/api/v1/accounts/alice/certificates/{fp}", "alice").status_code == 204
    assert problem(feed.request("GET", f"/api/v1/accounts/alice/certificates/{fp}", "alice"), 404)
    unknown = problem(feed.request("DELETE", f"/api/v1/accounts/alice/certificates/{'0' * 64}", "alice"), 404)
    assert str(unknown["detail"]).startswith("The certificate does not exist.")
    assert problem(feed.request("DELETE", "/api/v1/accounts/alice/certificates/abc", "alice"), 400)
    assert (feed.count(Certificate), feed.count(AccountCertificate)) == (1, 0)  # the certificate row stays


def test_upload_refusals_say_what_and_why_and_store_nothing(feed: Feed, pki: TestPki) -> None:
    pem = problem(feed.upload("alice", pki.leaf.pem, name="leaf.cer"), 400)
    assert pem["reason"] == "pem" and "'leaf.cer' is PEM" in str(pem["detail"])
    pfx = problem(feed.upload("alice", pki.leaf.pfx_bytes(), name="leaf.pfx"), 400)
    assert pfx["reason"] == "pfx" and "Never upload a private key" in str(pfx["detail"])
    expired = problem(feed.upload("alice", pki.expired_leaf.der), 400)
    assert expired["reason"] == "certificate-rules"
    assert [f["code"] for f in expired["findings"]] == ["NU3037"]  # type: ignore[union-attr, index]
    none = problem(feed.request("POST", "/api/v1/accounts/alice/certificates", "alice", data={"x": "1"},
                                files={}), 400)  # fmt: skip
    assert none["detail"] in ("A certificate file is required.",
                              "a certificate upload: send the file as multipart/form-data (got "
                              "'application/x-www-form-urlencoded')")  # fmt: skip
    not_multipart = problem(feed.request("POST", "/api/v1/accounts/alice/certificates", "alice",
                                         content=pki.leaf.der), 400)  # fmt: skip
    assert "send the file as multipart/form-data" in str(not_multipart["detail"])
    empty_file = problem(feed.request("POST", "/api/v1/accounts/alice/certificates", "alice",
                                      files={"uploadFile": ("none.cer", b"")}), 400)  # fmt: skip
    assert empty_file["detail"] == "The file length is invalid. 'none.cer' is empty."

    generator = random.Random(20301)
    statuses = set()
    for index in range(100):
        length = generator.choice([0, 1, 2, 3, 16, 700, 1500, 9_999, 10_000, 10_001, 12_000])
        data = generator.randbytes(length)
        if index % 10 == 0 and length:
            data = b"\x30" + data[1:]  # some start like DER
        response = feed.upload("alice", data, name=f"random-{index}.cer")
        assert 400 <= response.status_code < 500, (index, length, response.text)
        statuses.add(response.status_code)
    assert statuses <= {400, 413}
    huge = problem(feed.upload("alice", b"\x30\x82" + bytes(10 * 1024 * 1024)), 413)
    assert str(huge["detail"]).startswith("The file exceeds the size limit of 10000 bytes")

    assert (feed.count(Certificate), feed.count(AccountCertificate)) == (0, 0)
    with feed.ctx.db.reading() as session:
        actions = list(session.scalars(select(AuditEvent.action)))
    assert not [a for a in actions if a.startswith("account:certificate:")]


def test_keys_scopes_and_the_matrix(feed: Feed, pki: TestPki) -> None:
    certificates = "/api/v1/accounts/{}/certificates"
    assert problem(feed.request("GET", certificates.format("alice")), 401)["detail"] == (
        "An API key must be provided in the 'X-NuGet-ApiKey' header to use this service")
    bad = httpx.get(f"{feed.url}{certificates.format('alice')}", headers={"X-NuGet-ApiKey": "nsk_nope"}, timeout=30)
    assert problem(bad, 401)
    # a push key carries no management scope
    scope = problem(feed.request("GET", certificates.format("alice"), "alice-push"), 403)
    assert "scopes do not allow" in str(scope["detail"])
    assert problem(feed.upload("alice", pki.leaf.der, key="alice-push"), 403)
    # a key acts for one account
    other = problem(feed.request("GET", certificates.format("bob"), "alice"), 403)
    assert "acts for alice, not for bob" in str(other["detail"])
    assert problem(feed.request("GET", certificates.format("ghost"), "alice"), 404)
    # organization: the admin registers, the collaborator may look but not register or change the signer
    contoso = pki.by_name.get("gov-api-contoso") or pki.issue_leaf("gov-api-contoso")
    assert feed.upload("contoso", contoso.der, key="carl-org").status_code == 403
    assert feed.upload("contoso", contoso.der, key="olga-org").status_code == 201
    looked = feed.request("GET", certificates.format("contoso"), "carl-org")
    assert looked.status_code == 200 and len(looked.json()["certificates"]) == 1
    signer = "/api/v1/packages/Contoso.Lib/required-signer"
    assert feed.request("GET", signer, "carl-org").status_code == 200
    assert problem(feed.request("PUT", signer, "carl-org", json={"signer": "contoso"}), 403)
    changed = feed.request("PUT", signer, "olga-org", json={"signer": "contoso"})
    assert changed.status_code == 200 and changed.json()["required_signer"] == "contoso"
    assert problem(feed.request("DELETE", f"{certificates.format('contoso')}/{contoso.sha256_fingerprint}",
                                "carl-org"), 403)  # fmt: skip
    assert feed.count(AccountCertificate) == 1


def test_the_required_signer(feed: Feed, pki: TestPki) -> None:
    path = "/api/v1/packages/shared.lib/required-signer"
    assert feed.upload("alice", pki.leaf.der).status_code == 201
    shown = feed.request("GET", path, "bob")
    assert shown.status_code == 200
    assert shown.json() == {
        "package": "Shared.Lib", "required_signer": "Any", "signing": "allowed",
        "message": "At least one package owner has no certificate while at least one other package owner has at "
                   "least one certificate, which means future package submissions may be unsigned or signed with "
                   "any certificate registered to any owner.",
        "owners": [{"name": "alice", "certificates": 1}, {"name": "bob", "certificates": 0}],
    }  # fmt: skip
    exclusion = feed.request("PUT", path, "alice", json={"signer": "bob"})
    assert exclusion.status_code == 200
    assert (exclusion.json()["required_signer"], exclusion.json()["signing"]) == ("bob", "not allowed")
    refused = problem(feed.request("PUT", path, "bob", json={"signer": "eve"}), 400)
    assert str(refused["detail"]).startswith("'eve' is not an owner of 'Shared.Lib'")
    assert problem(feed.request("PUT", path, "eve", json={"signer": "Any"}), 403)
    assert problem(feed.request("GET", path, "eve"), 403)
    assert problem(feed.request("PUT", path, "bob", json={"nothing": 1}), 422)
    back = feed.request("PUT", path, "bob", json={"signer": None})
    assert (back.status_code, back.json()["required_signer"]) == (200, "Any")
    assert problem(feed.request("GET", "/api/v1/packages/Nope.Lib/required-signer", "alice"), 404)
    with feed.ctx.db.reading() as session:
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.action == "package:signer:set")
                                      .order_by(AuditEvent.id)))  # fmt: skip
    assert [(e.actor.split(" (key")[0], e.before, e.after) for e in events] == [
        ("alice", {"required_signer": "Any"}, {"required_signer": "bob", "signing": "not allowed"}),
        ("bob", {"required_signer": "bob"}, {"required_signer": "Any", "signing": "allowed"}),
    ]


def test_the_push_dry_run(feed: Feed, pki: TestPki, tmp_path: Path) -> None:
    bob_cert = pki.by_name.get("gov-api-bob") or pki.issue_leaf("gov-api-bob")
    assert feed.upload("alice", pki.leaf.der).status_code == 201
    versions = feed.count(PackageVersion)

    def check(path: Path, key: str = "alice-push") -> httpx.Response:
        return feed.request("POST", "/api/v1/packages/check", key,
                            files={"package": (path.name, path.read_bytes(), "application/octet-stream")})

    good = check(signed_nupkg(tmp_path / "good.nupkg", "Alice.Lib", "2.0.0", pki.leaf, pki))
    assert good.status_code == 200, good.text
    report = good.json()
    assert (report["id"], report["version"], report["accepted"], report["status"], report["stage"]) == (
        "Alice.Lib", "2.0.0", True, 201, None)
    assert report["verified"] is True and report["findings"] == [] and report["warnings"] == []
    assert report["signing"]["policy"] == "required"

    unsigned = check(write_nupkg(tmp_path / "unsigned.nupkg", "Alice.Lib", "2.0.0")).json()
    assert unsigned["signing"]["policy"] == "required"
    assert (unsigned["accepted"], unsigned["status"], unsigned["stage"], unsigned["message"]) == (
        False, 400, "fast", MUST_BE_SIGNED)
    assert unsigned["findings"][0]["code"] == "PackageIsNotSigned"

    foreign = check(signed_nupkg(tmp_path / "foreign.nupkg", "Alice.Lib", "2.0.0", bob_cert, pki)).json()
    assert (foreign["status"], foreign["stage"]) == (400, "full")
    assert foreign["findings"][0]["code"] == "PackageIsSignedWithUnauthorizedCertificate"
    assert foreign["message"].startswith("The package was signed, but the signing certificate (SHA-256 thumbprint "
                                         f"{bob_cert.sha256_fingerprint.lower()}) is not associated with your "
                                         "account.")  # fmt: skip

    # revocation is not an upload check (nuget.org's neither); the push's verification finds it, online
    assert feed.upload("alice", pki.revoked_leaf.der).status_code == 201
    revoked = check(signed_nupkg(tmp_path / "revoked.nupkg", "Alice.Lib", "2.0.0", pki.revoked_leaf, pki)).json()
    assert (revoked["stage"], [f["code"] for f in revoked["findings"]]) == ("full", ["NU3012"])
    assert "revoked" in revoked["message"].lower()

    assert problem(check(tmp_path / "good.nupkg", key="bob"), 403)  # bob may not push Alice.Lib
    assert problem(feed.request("POST", "/api/v1/packages/check", files={"package": ("x.nupkg", b"x")}), 401)
    junk = problem(feed.request("POST", "/api/v1/packages/check", "alice-push",
                                files={"package": ("junk.nupkg", b"not a zip")}), 400)  # fmt: skip
    assert str(junk["detail"]).startswith("InvalidPackageFile: Failed to read the package file.")
    assert [f["code"] for f in junk["findings"]] == ["InvalidPackageFile"]  # type: ignore[union-attr]
    zip64 = tmp_path / "zip64.nupkg"
    with zipfile.ZipFile(write_nupkg(zip64, "Alice.Lib", "3.0.0"), "a") as archive, \
            archive.open("lib/big.dll", "w", force_zip64=True) as entry:
        entry.write(b"x")
    package_stage = check(zip64).json()  # the push's own package checks, with nuget.org's text
    assert (package_stage["status"], package_stage["stage"], package_stage["message"], package_stage["signing"]) == (
        400, "package", "Zip64 packages are not supported.", None)
    assert feed.count(PackageVersion) == versions
    incoming = feed.ctx.settings.data_dir / "blobs" / "incoming"
    assert not incoming.exists() or not any(incoming.iterdir())


def test_the_openapi_document_describes_the_api(feed: Feed) -> None:
    document = httpx.get(f"{feed.url}/api/openapi.json", timeout=30).json()
    paths = document["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/accounts/{account}/certificates"])
    assert "delete" in paths["/api/v1/accounts/{account}/certificates/{sha256}"]
    assert {"get", "put"} <= set(paths["/api/v1/packages/{package_id}/required-signer"])
    assert "post" in paths["/api/v1/packages/check"]
    schemas = document["components"]["schemas"]
    assert {"CertificateModel", "RequiredSignerModel", "CheckReportModel", "ProblemModel"} <= set(schemas)
    problem_ref = {"$ref": "#/components/schemas/ProblemModel"}  # one problem document everywhere
    for path, operations in paths.items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                schema = answer.get("content", {}).get("application/problem+json", {}).get("schema")
                assert schema in (None, problem_ref), (method, path, status, schema)
    assert document["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-NuGet-ApiKey"
