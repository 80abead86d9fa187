"""``nuseal cert create|export|show`` and ``nuseal tsa serve`` end to end (real files, a real TSA process)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID
from tests.support.cli import console_script
from tests.support.cli import run as nuseal
from tests.support.pki import TEST_PASSWORD, TestPki

from nuseal.timestamp.client import HttpTimestamper


def test_create_code_signing_certificate(tmp_path: Path) -> None:
    pfx, cer = tmp_path / "me.pfx", tmp_path / "me.cer"
    code, out, _ = nuseal("cert", "create", "--subject", "CN=Contoso, O=Contoso Ltd", "--days", "30",
                          "--out", str(pfx), "--password", "pw", "--cer", str(cer))  # fmt: skip
    assert code == 0, out
    key, cert, _extra = pkcs12.load_key_and_certificates(pfx.read_bytes(), b"pw")
    assert cert is not None and key is not None
    assert x509.load_der_x509_certificate(cer.read_bytes()) == cert
    assert cert.subject == cert.issuer
    assert cert.subject.rfc4514_string() == "CN=Contoso,O=Contoso Ltd"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.CODE_SIGNING] and not eku.critical
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert cert.signature_hash_algorithm is not None and cert.signature_hash_algorithm.name == "sha256"
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 30
    assert cert.fingerprint(cert.signature_hash_algorithm).hex().upper() in out
    assert not list(tmp_path.glob(".*.tmp"))

    code, shown, _ = nuseal("cert", "show", str(pfx), "--password", "pw", "--json")
    assert code == 0
    facts = json.loads(shown)
    assert facts["nugetCanSign"] is True and facts["problems"] == [] and facts["hasPrivateKey"] is True


def test_create_timestamping_certificate_serves_as_tsa(tmp_path: Path) -> None:
    pfx = tmp_path / "tsa.pfx"
    code, out, _ = nuseal("cert", "create", "--subject", "CN=My TSA", "--timestamping", "--key-size", "3072",
                          "--out", str(pfx))  # fmt: skip
    assert code == 0, out
    key, cert, _ = pkcs12.load_key_and_certificates(pfx.read_bytes(), None)
    assert cert is not None and isinstance(key, type(key)) and key is not None
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    assert cert.public_key().key_size == 3072  # type: ignore[union-attr]
    code, shown, _ = nuseal("cert", "show", str(pfx))
    assert "NU3018" in shown and "NuGet signing: refused" in shown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--subject", "not a dn"], "distinguished name"),
        (["--subject", "CN=x", "--key-size", "1024"], "2048, 3072 or 4096"),
    ],
    ids=["bad-subject", "small-key"],
)
def test_create_refuses_bad_input_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    pfx = tmp_path / "x.pfx"
    code, _, err = nuseal("cert", "create", *args, "--out", str(pfx), "--cer", str(tmp_path / "x.cer"))
    # A malformed option value is a usage error (exit 2), named with its option.
    assert code == 2 and message in err and err.startswith("error: Invalid value for ")
    assert list(tmp_path.iterdir()) == []


def test_create_into_missing_folder(tmp_path: Path) -> None:
    code, _, err = nuseal("cert", "create", "--subject", "CN=x", "--out", str(tmp_path / "no" / "x.pfx"))
    assert code == 1 and "does not exist" in err


@pytest.mark.parametrize(
    ("name", "code_expected"),
    [
        ("sha1-leaf", "NU3013"),
        ("weak-key-leaf", "NU3014"),
        ("lifetime-eku-leaf", "NU3015"),
        ("not-yet-valid-leaf", "NU3017"),
        ("wrong-eku-leaf", "NU3018"),
    ],
)
def test_show_reports_nuget_refusals(pki: TestPki, tmp_path: Path, name: str, code_expected: str) -> None:
    path = pki[name].write_pfx(tmp_path / f"{name}.pfx")
    code, out, _ = nuseal("cert", "show", str(path), "--password", TEST_PASSWORD, "--json")
    assert code == 0
    facts = json.loads(out)
    assert facts["nugetCanSign"] is False
    assert [p["code"] for p in facts["problems"]] == [code_expected]
    assert facts["sha256Fingerprint"] == pki[name].sha256_fingerprint


def test_show_text_for_good_leaf(pki: TestPki, pki_dir: Path) -> None:
    code, out, _ = nuseal("cert", "show", str(pki_dir / "leaf.pem"))
    assert code == 0
    assert f"SHA-256 fingerprint: {pki.leaf.sha256_fingerprint}" in out
    assert f"SHA-1 fingerprint: {pki.leaf.sha1_fingerprint}" in out
    assert "Code Signing (1.3.6.1.5.5.7.3.3)" in out and "Key: RSA 2048 bits" in out
    assert "NuGet signing: accepted" in out and "Private key: no" in out


def test_export_from_pfx_and_pem(pki: TestPki, tmp_path: Path) -> None:
    pfx = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    code, out, _ = nuseal("cert", "export", str(pfx), "--password", TEST_PASSWORD, "--out", str(tmp_path / "a.cer"))
    assert code == 0, out
    assert (tmp_path / "a.cer").read_bytes() == pki.leaf.der
    files = pki.leaf.write_pem_key_and_chain(tmp_path / "pem")
    combined = tmp_path / "combined.pem"
    combined.write_bytes(files.chain.read_bytes() + files.key.read_bytes())  # the key picks the leaf
    code, _, _ = nuseal("cert", "export", str(combined), "--out", str(tmp_path / "b.cer"))
    assert code == 0
    assert (tmp_path / "b.cer").read_bytes() == pki.leaf.der


@pytest.mark.parametrize("case", ["wrong-password", "missing", "not-a-cert"])
def test_bad_input_is_a_clear_error(pki: TestPki, tmp_path: Path, case: str) -> None:
    source = tmp_path / "in.pfx"
    if case == "wrong-password":
        pki.leaf.write_pfx(source)
    elif case == "not-a-cert":
        source.write_bytes(b"hello, I am not a certificate")
    out = tmp_path / "out.cer"
    code, _, err = nuseal("cert", "export", str(source), "--password", "wrong", "--out", str(out))
    assert code == 1
    assert str(source) in err
    assert ("does not exist" in err) == (case == "missing")
    assert not out.exists()


def test_tsa_serve_process(pki: TestPki, tmp_path: Path, pki_dir: Path) -> None:
    pfx = pki.tsa.write_pfx(tmp_path / "tsa.pfx")
    process = subprocess.Popen(
        [str(console_script()), "tsa", "serve", "--certificate-path", str(pfx),
         "--certificate-password", TEST_PASSWORD, "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Timestamp authority listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        token = HttpTimestamper(url).timestamp(b"\x01" * 256, "SHA256")
        (tmp_path / "tok.der").write_bytes(token)
        (tmp_path / "data.bin").write_bytes(b"\x01" * 256)
        result = subprocess.run(
            ["openssl", "ts", "-verify", "-data", str(tmp_path / "data.bin"), "-in", str(tmp_path / "tok.der"),
             "-token_in", "-CAfile", str(pki_dir / "root.pem"), "-untrusted", str(pki_dir / "intermediate.pem")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert "Verification: OK" in result.stdout, result.stderr
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_tsa_serve_refuses_a_code_signing_certificate(pki: TestPki, tmp_path: Path) -> None:
    pfx = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    code, _, err = nuseal("tsa", "serve", "--certificate-path", str(pfx), "--certificate-password", TEST_PASSWORD)
    assert code == 1 and "timeStamping" in err


def test_create_refuses_to_overwrite_a_key_file_without_force(tmp_path: Path) -> None:
    pfx, cer = tmp_path / "me.pfx", tmp_path / "me.cer"
    assert nuseal("cert", "create", "--subject", "CN=First", "--out", str(pfx), "--cer", str(cer)).code == 0
    before = pfx.read_bytes(), cer.read_bytes()
    for target in ("--out", "--cer"):
        other = {"--out": str(tmp_path / "new.pfx"), "--cer": str(tmp_path / "new.cer")}
        other[target] = str(pfx if target == "--out" else cer)
        code, _, err = nuseal("cert", "create", "--subject", "CN=Second", *[x for kv in other.items() for x in kv])
        assert code == 1, err
        assert err.startswith("error: The file already exists; use --force") and other[target] in err
    assert (pfx.read_bytes(), cer.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["me.cer", "me.pfx"]
    code, out, _ = nuseal("cert", "create", "--subject", "CN=Second", "--out", str(pfx), "--cer", str(cer), "--force")
    assert code == 0 and "CN=Second" in out
    assert pfx.read_bytes() != before[0] and cer.read_bytes() != before[1]


def test_show_writes_dates_in_iso_8601_utc(pki: TestPki, pki_dir: Path) -> None:
    code, out, _ = nuseal("cert", "show", str(pki_dir / "leaf.pem"))
    assert code == 0
    expected = (f"Valid from: {pki.leaf.cert.not_valid_before_utc.isoformat()} "
                f"to {pki.leaf.cert.not_valid_after_utc.isoformat()}")
    assert expected in out and expected.endswith("+00:00")
