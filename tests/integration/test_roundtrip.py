"""Sign with the test PKI and the loopback TSA, then verify with ``verify_package`` and ``nuseal verify``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.support.cli import run
from tests.support.pki import TEST_PASSWORD, IssuedCert, TestPki
from tests.support.servers import LoopbackServer
from tests.unit.sign.helpers import make_package, signer_for

from nuseal.codes import NuCode
from nuseal.enums import HashAlgorithmName, RevocationMode
from nuseal.errors import CertificateError, TimestampError
from nuseal.sign.author import AuthorSignRequest, sign_package
from nuseal.sign.common import SignOptions, SignResult
from nuseal.sign.repository import RepositorySignRequest, repo_sign_package
from nuseal.timestamp.client import HttpTimestamper, InProcessTimestamper
from nuseal.timestamp.tsa import TimestampAuthority
from nuseal.verify.engine import TrustContext, verify_package
from nuseal.verify.policy import VerificationPolicy
from nuseal.verify.result import PackageVerdict, Severity
from nuseal.x509.revocation import RevocationChecker
from nuseal.x509.roots import TrustStore

FEED = "https://feed.example/v3/index.json"


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def trust(pki: TestPki) -> TrustContext:
    store = TrustStore(code_signing=(pki.root.cert,), timestamping=(pki.root.cert,))
    return TrustContext(store, RevocationChecker(RevocationMode.OFFLINE))


def verify_policy() -> VerificationPolicy:
    return VerificationPolicy.verify_command()


def accept_policy() -> VerificationPolicy:
    return VerificationPolicy.accept_mode()


def verify(path: Path, trust: TrustContext, policy: VerificationPolicy | None = None) -> PackageVerdict:
    return verify_package(path, policy=policy or verify_policy(), trust=trust, now=now())


def codes(verdict: PackageVerdict, severity: Severity | None = None) -> set[str]:
    return {f.code.value for f in verdict.findings if severity is None or f.severity is severity}


def author_sign(path: Path, leaf: IssuedCert, stamper: object | None, *, when: datetime | None = None,
                options: SignOptions | None = None) -> SignResult:
    request = AuthorSignRequest(signer_for(leaf), options or SignOptions())
    return sign_package(path, path, request, timestamper=stamper, now=when or now())  # type: ignore[arg-type]


# --- library round trips ------------------------------------------------------------------------------------


def test_author_signed_with_timestamp_is_valid(
    pki: TestPki, tsa_server: LoopbackServer, trust: TrustContext, tmp_path: Path
) -> None:
    pkg = make_package(tmp_path / "a.nupkg")
    author_sign(pkg, pki.leaf, HttpTimestamper(pki.tsa_url))
    verdict = verify(pkg, trust)
    assert verdict.valid and not verdict.errors, verdict.findings
    (primary,) = verdict.signatures
    assert (primary.kind.value, primary.placement) == ("author", "primary")
    assert primary.certificate is not None and primary.certificate.sha256 == pki.leaf.sha256_fingerprint
    assert len(primary.timestamps) == 1 and primary.timestamps[0].valid
    assert primary.timestamps[0].certificate is not None
    assert primary.timestamps[0].certificate.sha256 == pki.tsa.sha256_fingerprint


@pytest.mark.parametrize("algorithm", [HashAlgorithmName.SHA384, HashAlgorithmName.SHA512])
def test_sha384_and_sha512_round_trip(
    pki: TestPki, tsa_server: LoopbackServer, trust: TrustContext, tmp_path: Path, algorithm: HashAlgorithmName
) -> None:
    pkg = make_package(tmp_path / "a.nupkg")
    author_sign(pkg, pki.leaf, HttpTimestamper(pki.tsa_url), options=SignOptions(algorithm, algorithm))
    verdict = verify(pkg, trust)
    assert verdict.valid and not verdict.errors, verdict.findings
    assert verdict.signatures[0].hash_algorithm == algorithm.value.upper()
    assert verdict.signatures[0].timestamps[0].hash_algorithm == algorithm.value.upper()


def test_countersigned_package_shows_both_signatures(
    pki: TestPki, tsa_server: LoopbackServer, trust: TrustContext, tmp_path: Path
) -> None:
    pkg = make_package(tmp_path / "a.nupkg")
    stamper = HttpTimestamper(pki.tsa_url)
    author_sign(pkg, pki.leaf, stamper)
    request = RepositorySignRequest(signer_for(pki.leaf), FEED, ("alice", "bob"))
    result = repo_sign_package(pkg, pkg, request, timestamper=stamper, now=now())
    assert result.kind == "repository-countersignature"
    verdict = verify(pkg, trust)
    assert verdict.valid and not verdict.errors, verdict.findings
    primary, counter = verdict.signatures
    assert (primary.kind.value, primary.placement) == ("author", "primary")
    assert (counter.kind.value, counter.placement) == ("repository", "countersignature")
    assert counter.service_index_url == FEED and counter.owners == ("alice", "bob")
    assert len(counter.timestamps) == 1


def test_repo_sign_unsigned_package_is_repository_primary(
    pki: TestPki, tsa_server: LoopbackServer, trust: TrustContext, tmp_path: Path
) -> None:
    pkg = make_package(tmp_path / "a.nupkg")
    request = RepositorySignRequest(signer_for(pki.leaf), FEED, ("carol",))
    assert repo_sign_package(pkg, pkg, request, timestamper=HttpTimestamper(pki.tsa_url), now=now()).kind == (
        "repository")
    verdict = verify(pkg, trust)
    assert verdict.valid and not verdict.errors, verdict.findings
    (primary,) = verdict.signatures
    assert (primary.kind.value, primary.placement, primary.service_index_url, primary.owners) == (
        "repository", "primary", FEED, ("carol",))


def test_no_timestamp_warns_nu3027_but_is_valid(pki: TestPki, trust: TrustContext, tmp_path: Path) -> None:
    pkg = make_package(tmp_path / "a.nupkg")
    author_sign(pkg, pki.leaf, None)
    verdict = verify(pkg, trust)
    assert verdict.valid and not verdict.errors
    assert codes(verdict, Severity.WARNING) == {"NU3027"}


def test_expired_leaf_without_timestamp_is_nu3037(pki: TestPki, trust: TrustContext, tmp_path: Path) -> None:
    pkg = make_package(tmp_path / "a.nupkg")
    # Signed while the certificate was still valid, verified after it expired.
    author_sign(pkg, pki.expired_leaf, None, when=pki.expired_leaf.cert.not_valid_after_utc - timedelta(days=5))
    verdict = verify(pkg, trust)
    assert not verdict.valid
    assert "NU3037" in codes(verdict, Severity.ERROR)


def test_timestamp_inside_validity_keeps_expired_leaf_valid(
    pki: TestPki, tsa_authority: TimestampAuthority, trust: TrustContext, tmp_path: Path
) -> None:
    leaf = pki.expired_leaf
    signing_time = leaf.cert.not_valid_after_utc - timedelta(days=5)
    past_tsa = TimestampAuthority(pki.tsa.cert, pki.tsa.key, pki.tsa.chain[1:], clock=lambda: signing_time)
    pkg = make_package(tmp_path / "a.nupkg")
    author_sign(pkg, leaf, InProcessTimestamper(past_tsa, clock=lambda: signing_time), when=signing_time)
    verdict = verify(pkg, trust)
    assert verdict.valid and not verdict.errors, verdict.findings
    assert verdict.signatures[0].timestamps[0].time == signing_time
    # The same package without the timestamp would not be (control for the test above).
    bare = make_package(tmp_path / "b.nupkg")
    author_sign(bare, leaf, None, when=signing_time)
    assert not verify(bare, trust).valid


def test_untrusted_root_is_error_under_verify_and_warning_under_accept(
    pki: TestPki, trust: TrustContext, tmp_path: Path
) -> None:
    pkg = make_package(tmp_path / "a.nupkg")
    author_sign(pkg, pki.untrusted_leaf, None)
    strict = verify(pkg, trust)
    assert not strict.valid and "NU3018" in codes(strict, Severity.ERROR)
    lenient = verify(pkg, trust, accept_policy())
    assert lenient.valid and not lenient.errors, lenient.findings
    assert "NU3018" in codes(lenient, Severity.WARNING)


def test_overwrite_resigns_with_new_certificate(
    pki: TestPki, tsa_server: LoopbackServer, trust: TrustContext, tmp_path: Path
) -> None:
    pkg = make_package(tmp_path / "a.nupkg")
    author_sign(pkg, pki.untrusted_leaf, None)
    with pytest.raises(Exception, match="already contains a signature"):
        author_sign(pkg, pki.leaf, None)
    author_sign(pkg, pki.leaf, HttpTimestamper(pki.tsa_url), options=SignOptions(overwrite=True))
    verdict = verify(pkg, trust)
    assert verdict.valid and not verdict.errors, verdict.findings
    assert verdict.signatures[0].certificate is not None
    assert verdict.signatures[0].certificate.sha256 == pki.leaf.sha256_fingerprint


# --- sign-time chain building (SignOptions.trust_store) ---------------------------------------------------


def test_sign_time_chain_trusted_root_has_no_warning(pki: TestPki, trust: TrustContext, tmp_path: Path) -> None:
    pkg = make_package(tmp_path / "a.nupkg")
    result = author_sign(pkg, pki.leaf, None, options=SignOptions(trust_store=trust.trust_store))
    assert [w.code for w in result.warnings] == [NuCode.NU3002]


def test_sign_time_chain_untrusted_root_is_nu3018_error(pki: TestPki, trust: TrustContext, tmp_path: Path) -> None:
    pkg = make_package(tmp_path / "a.nupkg")
    original = pkg.read_bytes()
    with pytest.raises(CertificateError) as caught:
        author_sign(pkg, pki.untrusted_leaf, None, options=SignOptions(trust_store=trust.trust_store))
    assert caught.value.code is NuCode.NU3018 and "UntrustedRoot" in caught.value.message
    assert pkg.read_bytes() == original
    # Without a trust store the same certificate signs (chain judged from the certificates given).
    assert author_sign(pkg, pki.untrusted_leaf, None).kind == "author"


def test_sign_time_chain_self_issued_is_nu3018_warning(pki: TestPki, trust: TrustContext, tmp_path: Path) -> None:
    pkg = make_package(tmp_path / "a.nupkg")
    result = author_sign(pkg, pki.self_issued, None, options=SignOptions(trust_store=trust.trust_store))
    assert NuCode.NU3018 in [w.code for w in result.warnings]


def test_sign_time_tsa_chain_untrusted_is_nu3028(
    pki: TestPki, tsa_server: LoopbackServer, tmp_path: Path
) -> None:
    # Code signing trusts the test root, timestamping trusts only an unrelated root.
    store = TrustStore(code_signing=(pki.root.cert,), timestamping=(pki.untrusted_root.cert,))
    pkg = make_package(tmp_path / "a.nupkg")
    with pytest.raises(TimestampError) as caught:
        author_sign(pkg, pki.leaf, HttpTimestamper(pki.tsa_url), options=SignOptions(trust_store=store))
    assert caught.value.code is NuCode.NU3028
    good = TrustStore(code_signing=(pki.root.cert,), timestamping=(pki.root.cert,))
    assert author_sign(pkg, pki.leaf, HttpTimestamper(pki.tsa_url), options=SignOptions(trust_store=good)).timestamped


def test_token_checked_once_with_self_checking_timestamper(
    pki: TestPki, tsa_authority: TimestampAuthority, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nuseal.sign.checks as checks
    import nuseal.timestamp.token as token

    calls: list[str] = []
    real = token.check_timestamp

    def counting(*args: object, **kwargs: object) -> list[tuple[NuCode, str]]:
        calls.append("check")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(token, "check_timestamp", counting)
    monkeypatch.setattr(checks, "check_timestamp", counting)
    pkg = make_package(tmp_path / "a.nupkg")
    author_sign(pkg, pki.leaf, InProcessTimestamper(tsa_authority))
    assert calls == ["check"]


# --- the CLI ----------------------------------------------------------------------------------------------




@pytest.fixture
def cli_files(pki: TestPki, tmp_path: Path) -> tuple[Path, Path]:
    return pki.leaf.write_pfx(tmp_path / "leaf.pfx"), pki.root.write_cert(tmp_path / "root.pem")


def verify_args(root: Path, *extra: str) -> list[str]:
    return ["verify", "--trust-roots", str(root), "--timestamp-roots", str(root), "--revocation-mode", "offline",
            *extra]


def test_cli_sign_then_verify_exit_0_and_json(
    pki: TestPki, tsa_server: LoopbackServer, cli_files: tuple[Path, Path], tmp_path: Path
) -> None:
    pfx, root = cli_files
    pkg = make_package(tmp_path / "a.nupkg")
    sign = ["sign", str(pkg), "--certificate-path", str(pfx), "--certificate-password", TEST_PASSWORD,
            "--timestamper", pki.tsa_url]
    code, _, stderr = run(*sign)
    assert code == 0, stderr
    code, stdout, stderr = run(*verify_args(root, str(pkg)))
    assert code == 0, stdout + stderr
    assert "Successfully verified package 'Test.Package.1.0.0'." in stdout and "Finished with" not in stdout
    code, stdout, _ = run(*verify_args(root, "--json", str(pkg)))
    assert code == 0
    (package,) = json.loads(stdout)["packages"]
    assert package["valid"] is True
    # Offline revocation is only an informational NU3018 / NU3028 (spec §6.2).
    assert {(i["code"], i["level"]) for i in package["issues"]} <= {("NU3018", "info"), ("NU3028", "info")}
    (primary,) = package["signatures"]
    assert (primary["kind"], primary["placement"]) == ("author", "primary")
    assert primary["certificate"]["sha256"] == pki.leaf.sha256_fingerprint.lower()
    datetime.fromisoformat(primary["timestamps"][0]["time"])
    # --overwrite re-signs (hash algorithm changes), and the result still verifies.
    code, _, stderr = run(*sign, "--overwrite", "--hash-algorithm", "SHA512")
    assert code == 0, stderr
    code, stdout, _ = run(*verify_args(root, "--json", str(pkg)))
    assert code == 0 and json.loads(stdout)["packages"][0]["signatures"][0]["hash_algorithm"] == "SHA512"


def test_cli_repo_sign_countersignature_then_verify(
    pki: TestPki, tsa_server: LoopbackServer, cli_files: tuple[Path, Path], tmp_path: Path
) -> None:
    pfx, root = cli_files
    pkg = make_package(tmp_path / "a.nupkg")
    common = ["--certificate-path", str(pfx), "--certificate-password", TEST_PASSWORD, "--timestamper", pki.tsa_url]
    assert run("sign", str(pkg), *common)[0] == 0
    code, _, stderr = run("repo-sign", str(pkg), "--service-index-url", FEED, "--owners", "a;b", *common)
    assert code == 0, stderr
    code, stdout, _ = run(*verify_args(root, "--json", str(pkg)))
    assert code == 0, stdout
    signatures = json.loads(stdout)["packages"][0]["signatures"]
    assert [(s["kind"], s["placement"]) for s in signatures] == [
        ("author", "primary"), ("repository", "countersignature")]
    assert signatures[1]["service_index_url"] == FEED and signatures[1]["owners"] == ["a", "b"]


def test_cli_certificate_fingerprint_allow_list(
    pki: TestPki, tsa_server: LoopbackServer, cli_files: tuple[Path, Path], tmp_path: Path
) -> None:
    pfx, root = cli_files
    pkg = make_package(tmp_path / "a.nupkg")
    assert run("sign", str(pkg), "--certificate-path", str(pfx), "--certificate-password", TEST_PASSWORD,
               "--timestamper", pki.tsa_url)[0] == 0
    code, stdout, _ = run(*verify_args(root, "--certificate-fingerprint", pki.leaf.sha256_fingerprint, str(pkg)))
    assert code == 0, stdout
    code, stdout, _ = run(*verify_args(root, "--certificate-fingerprint", pki.root.sha256_fingerprint, str(pkg)))
    assert code == 1 and "NU3034" in stdout
