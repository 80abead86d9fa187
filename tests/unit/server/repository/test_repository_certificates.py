"""Repository certificates: adding one refuses what NuGet would not sign with, keys are sealed in the database,
one certificate is active at a time, and the state is audited."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from tests.support.pki import TEST_PASSWORD, IssuedCert, TestPki
from tests.support.repository_signing import OPERATOR, SigningFeed, signing_feed
from tests.unit.sign.helpers import signer_for

from nuseal.server.db.models import RepositoryCertificate
from nuseal.server.db.session import Database
from nuseal.server.services import audit
from nuseal.server.services import repository_certificates as repo
from nuseal.server.services.errors import ConflictError, InvalidInputError, NotFoundError
from nuseal.server.services.repository_keys import (
    SECRET_FILE,
    RepositoryKeyError,
    key_secret,
    open_signer,
    seal,
    unseal,
)
from nuseal.server.settings import load_settings
from nuseal.x509 import certs


def test_a_certificate_is_added_listed_but_not_active_and_its_key_is_sealed(feed: SigningFeed) -> None:
    issued = feed.issue("contoso-repo")
    sha256 = feed.add_certificate(issued, activate=False)
    assert sha256 == certs.fingerprint(issued.cert).lower()
    info = repo.get_certificate(feed.ctx, sha256.upper())
    assert (info.state, info.listed, info.key, info.served_packages) == ("listed", True, "sealed-pfx", 0)
    assert info.subject == certs.subject_string(issued.cert) and info.timestamper_url == feed.tsa.url
    with feed.ctx.db.reading() as session:
        row = session.get(RepositoryCertificate, sha256)
        assert row is not None and row.sealed_key is not None
        stored = row.sealed_key
        private = issued.key.private_numbers().d.to_bytes(256, "big")
        assert private not in stored  # sealed, not merely encoded
        signer = open_signer(row, feed.ctx.settings)
    assert signer.certificate == issued.cert and [c for c in signer.chain] == issued.chain[:len(signer.chain)]
    assert [e.action for e in audit.list_events(feed.ctx)].count(repo.CERTIFICATE_ADD) == 2


def test_one_certificate_is_active_at_a_time(feed: SigningFeed) -> None:
    first = repo.list_certificates(feed.ctx)[0].sha256
    second = feed.add_certificate(activate=False)
    info, changed = repo.activate(feed.ctx, OPERATOR, second)
    assert changed and info.state == "active"
    states = {i.sha256: i.state for i in repo.list_certificates(feed.ctx)}
    assert states == {first: "listed", second: "active"}
    assert repo.activate(feed.ctx, OPERATOR, second)[1] is False
    events = [e for e in audit.list_events(feed.ctx) if e.action == repo.CERTIFICATE_ACTIVATE]
    assert (events[-1].before, events[-1].after) == ({"active": [first]}, {"active": [second]})


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("weak_key_leaf", "NU3014"),
        ("wrong_eku_leaf", "NU3018"),
        ("expired_leaf", "NU3018"),
        ("not_yet_valid_leaf", "NU3017"),
        ("sha1_leaf", "NU3013"),
        ("lifetime_eku_leaf", "NU3015"),
    ],
)
def test_a_certificate_nuget_would_not_sign_with_is_refused(feed: SigningFeed, pki: TestPki, name: str,
                                                            message: str) -> None:  # fmt: skip
    issued: IssuedCert = getattr(pki, name)
    with pytest.raises(InvalidInputError, match=f"cannot repository-sign: {message}"):
        repo.add_certificate(feed.ctx, OPERATOR, signer_for(issued), timestamper_url=feed.tsa.url)
    assert len(repo.list_certificates(feed.ctx)) == 1  # only the fixture's


def test_a_certificate_whose_trial_signature_fails_is_refused(feed: SigningFeed) -> None:
    signer = signer_for(feed.issue())
    with pytest.raises(InvalidInputError, match=r"a trial repository signature .* failed: .*could not be reached"):
        repo.add_certificate(feed.ctx, OPERATOR, signer, timestamper_url="http://127.0.0.1:9/tsa")
    with pytest.raises(InvalidInputError, match="needs a timestamp service"):
        repo.add_certificate(feed.ctx, OPERATOR, signer, timestamper_url=None)


def test_adding_twice_is_a_conflict_and_unknown_fingerprints_are_clear(feed: SigningFeed) -> None:
    issued = feed.issue()
    feed.add_certificate(issued, activate=False)
    with pytest.raises(ConflictError, match="was already added"):
        feed.add_certificate(issued, activate=False)
    with pytest.raises(NotFoundError, match="no repository certificate " + "0" * 64):
        repo.activate(feed.ctx, OPERATOR, "00:" * 31 + "00")
    with pytest.raises(InvalidInputError, match=re.escape("invalid certificate fingerprint 'abc'")):
        repo.activate(feed.ctx, OPERATOR, "abc")


def test_files_with_and_without_a_key(feed: SigningFeed, pki: TestPki, tmp_path: Path) -> None:
    issued = feed.issue()
    pfx = issued.write_pfx(tmp_path / "repo.pfx")
    signer = repo.load_file_signer(pfx, TEST_PASSWORD)
    assert signer.certificate == issued.cert and len(signer.chain) == 3
    with pytest.raises(InvalidInputError, match="password is wrong or missing"):
        repo.load_file_signer(pfx, "wrong")
    cer = issued.write_cert(tmp_path / "repo.cer", pem=False)
    with pytest.raises(InvalidInputError, match="has no private key"):
        repo.load_file_signer(cer, None)
    pem = issued.write_pem_key_and_chain(tmp_path / "pem")
    combined = tmp_path / "combined.pem"
    combined.write_bytes(pem.key.read_bytes() + pem.chain.read_bytes())
    assert repo.load_file_signer(combined, None).certificate == issued.cert
    with pytest.raises(InvalidInputError, match="does not contain a certificate"):
        repo.load_file_signer(pem.key, None)


def test_the_activated_certificate_must_be_valid_now(feed: SigningFeed) -> None:
    from datetime import timedelta

    sha256 = feed.add_certificate(feed.issue(not_after=feed.clock() + timedelta(days=2)), activate=False)
    feed.clock.advance(timedelta(days=3))
    with pytest.raises(ConflictError, match="is not valid now"):
        repo.activate(feed.ctx, OPERATOR, sha256)


# --- the key-encryption secret ----------------------------------------------------------------------------------


def test_sealing_binds_the_secret_and_the_certificate() -> None:
    sealed = seal(b"private key", b"secret-one-0123456789", "aa" * 32)
    assert unseal(sealed, b"secret-one-0123456789", "aa" * 32) == b"private key"
    with pytest.raises(RepositoryKeyError, match=r"secret .* is not the one it was stored with"):
        unseal(sealed, b"secret-two-0123456789", "aa" * 32)
    with pytest.raises(RepositoryKeyError, match="not the one it was stored with"):
        unseal(sealed, b"secret-one-0123456789", "bb" * 32)  # moved to another certificate's row
    with pytest.raises(RepositoryKeyError, match="is not a sealed key"):
        unseal(b"garbage", b"secret-one-0123456789", "aa" * 32)


def test_the_embedded_secret_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": tmp_path})
    first = key_secret(settings)
    path = tmp_path / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first) >= 32
    assert key_secret(settings) == first
    os.chmod(path, 0o644)
    with pytest.raises(RepositoryKeyError, match=r"accessible to other users \(mode 0644\): chmod 600"):
        key_secret(settings)


def test_a_shared_database_needs_the_secret_setting(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": tmp_path, "database_url": "postgresql://db.example/nuseal"})
    with pytest.raises(RepositoryKeyError, match="set NUSEAL_REPOSITORY_KEY_SECRET"):
        key_secret(settings)
    configured = load_settings({"data_dir": tmp_path, "database_url": "postgresql://db.example/nuseal"},
                               environ={"NUSEAL_REPOSITORY_KEY_SECRET": "x" * 20})  # fmt: skip
    assert key_secret(configured) == b"x" * 20


def test_a_wrong_secret_cannot_open_the_stored_key(server_db: Database, pki: TestPki, tmp_path: Path) -> None:
    with signing_feed(server_db, pki, tmp_path / "a") as feed:
        sha256 = feed.add_certificate()
        with feed.ctx.db.reading() as session:
            row = session.get(RepositoryCertificate, sha256)
        assert row is not None
        other = load_settings({"data_dir": tmp_path, "repository_key_secret": "another-secret-0123456789"})
        with pytest.raises(RepositoryKeyError, match="cannot decrypt the key of repository certificate"):
            open_signer(row, other)
