"""NuGet's tamper suite (spec §9.2) on packages nuseal signed with the test PKI and the loopback TSA.

The cases are ``tests/interop/test_tamper_real.py``'s; here the untampered packages are an author-signed,
a countersigned and a repository-signed package, all valid against a trust store holding the test root.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.interop.test_tamper_real import TAMPERS, Case, accept_policy, check_tamper, verify_policy
from tests.support.pki import TestPki
from tests.support.servers import LoopbackServer
from tests.unit.sign.helpers import make_package, signer_for

from nuseal.enums import RevocationMode
from nuseal.sign.author import AuthorSignRequest, sign_package
from nuseal.sign.repository import RepositorySignRequest, repo_sign_package
from nuseal.timestamp.client import HttpTimestamper
from nuseal.verify.engine import TrustContext, verify_package
from nuseal.x509.revocation import RevocationChecker
from nuseal.x509.roots import TrustStore

FEED = "https://feed.example/v3/index.json"


def _author(pki: TestPki, path: Path, stamper: HttpTimestamper) -> None:
    sign_package(path, path, AuthorSignRequest(signer_for(pki.leaf)), timestamper=stamper, now=datetime.now(UTC))


def _repository(pki: TestPki, path: Path, stamper: HttpTimestamper) -> None:
    request = RepositorySignRequest(signer_for(pki.leaf), FEED, ("owner",))
    repo_sign_package(path, path, request, timestamper=stamper, now=datetime.now(UTC))


def _countersigned(pki: TestPki, path: Path, stamper: HttpTimestamper) -> None:
    _author(pki, path, stamper)
    _repository(pki, path, stamper)


SIGNINGS: dict[str, Callable[[TestPki, Path, HttpTimestamper], None]] = {
    "author": _author, "countersigned": _countersigned, "repository": _repository,
}


@pytest.fixture(scope="module")
def trust(pki: TestPki) -> TrustContext:
    store = TrustStore(code_signing=(pki.root.cert,), timestamping=(pki.root.cert,))
    return TrustContext(store, RevocationChecker(RevocationMode.OFFLINE))


@pytest.fixture(scope="module")
def signed(pki: TestPki, tsa_server: LoopbackServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One package per signing flavour, signed once for the module (with more entries, so that "middle" moves)."""
    folder = tmp_path_factory.mktemp("signed")
    stamper = HttpTimestamper(pki.tsa_url)
    packages: dict[str, Path] = {}
    for flavour, sign in SIGNINGS.items():
        path = make_package(folder / f"{flavour}.nupkg", entries=6)
        sign(pki, path, stamper)
        packages[flavour] = path
    return packages


@pytest.mark.parametrize("flavour", sorted(SIGNINGS))
def test_untampered_signed_package_is_valid(flavour: str, signed: dict[str, Path], trust: TrustContext) -> None:
    for policy in (verify_policy(), accept_policy()):
        verdict = verify_package(signed[flavour], policy=policy, trust=trust, now=datetime.now(UTC))
        assert verdict.valid and not verdict.errors, verdict.findings


@pytest.mark.parametrize("flavour", sorted(SIGNINGS))
@pytest.mark.parametrize("case", TAMPERS, ids=[c.name for c in TAMPERS])
def test_tampered_signed_package(
    case: Case, flavour: str, signed: dict[str, Path], trust: TrustContext, tmp_path: Path
) -> None:
    check_tamper(case, signed[flavour], tmp_path / f"{flavour}.nupkg", trust, datetime.now(UTC))
