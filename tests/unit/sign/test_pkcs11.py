"""Pkcs11Signer against SoftHSM2: a token in a temporary SOFTHSM2_CONF, the test leaf key imported into it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from tests.support.pki import TestPki
from tests.unit.sign.helpers import make_package, signed_part

from nuseal.cms.parse import load_primary_signature
from nuseal.codes import NuCode
from nuseal.errors import SigningError
from nuseal.sign.author import AuthorSignRequest, sign_package
from nuseal.sign.signers import Pkcs11Config, Pkcs11Signer

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN = "1234"
LABEL = "nuseal-test"


@pytest.fixture(scope="module")
def softhsm_token(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not MODULE.is_file():
        pytest.fail(f"SoftHSM2 is not installed ({MODULE} missing): apt-get install softhsm2 opensc")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # read by the module at C_Initialize, in this process too
    env = dict(os.environ)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", LABEL, "--pin", PIN, "--so-pin", "5678"],
                   check=True, capture_output=True, env=env)  # fmt: skip
    key_der = root / "leaf.key.der"
    key_der.write_bytes(pki.leaf.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
    cert_der = root / "leaf.der"
    cert_der.write_bytes(pki.leaf.der)
    for kind, path in (("privkey", key_der), ("cert", cert_der)):
        subprocess.run(
            ["pkcs11-tool", "--module", str(MODULE), "--token-label", LABEL, "--login", "--pin", PIN,
             "--write-object", str(path), "--type", kind, "--label", "signing", "--id", "01"],
            check=True, capture_output=True, env=env,
        )  # fmt: skip
    yield conf
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


def test_pkcs11_signer_signs_a_package(pki: TestPki, softhsm_token: Path, tmp_path: Path) -> None:
    src = make_package(tmp_path / "a.nupkg")
    config = Pkcs11Config(MODULE, LABEL, PIN, key_label="signing")
    with Pkcs11Signer(config, certificates=pki.leaf.chain) as signer:
        assert signer.certificate == pki.leaf.cert
        assert list(signer.chain) == pki.leaf.chain
        sign_package(src, src, AuthorSignRequest(signer), timestamper=None, now=datetime.now(UTC))
    assert load_primary_signature(signed_part(src)).signer_certificate == pki.leaf.cert


def test_pkcs11_certificate_from_token_and_key_by_id(pki: TestPki, softhsm_token: Path) -> None:
    with Pkcs11Signer(Pkcs11Config(MODULE, LABEL, PIN, key_id=b"\x01")) as signer:
        assert signer.certificate == pki.leaf.cert


def test_pkcs11_wrong_pin_and_unknown_key_are_nu3001(softhsm_token: Path) -> None:
    with pytest.raises(SigningError, match="Cannot open PKCS#11 token") as caught:
        Pkcs11Signer(Pkcs11Config(MODULE, LABEL, "0000", key_label="signing"))
    assert caught.value.code is NuCode.NU3001
    with pytest.raises(SigningError, match="No unique private key label 'absent'") as caught:
        Pkcs11Signer(Pkcs11Config(MODULE, LABEL, PIN, key_label="absent"))
    assert caught.value.code is NuCode.NU3001
