"""Author signing flow: round trip, every sign-time error code, atomic output."""

from __future__ import annotations

import base64
import hashlib
import struct
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.support.pki import IssuedCert, TestPki
from tests.unit.sign.helpers import (
    LocalTimestamper,
    make_package,
    package_bytes_without_signature,
    signature_value,
    signed_part,
    signer_for,
)

from nuseal.cms.content import SignatureContent
from nuseal.cms.parse import load_primary_signature
from nuseal.codes import NuCode
from nuseal.errors import CertificateError, NusealError, SigningError, TimestampError
from nuseal.sign.author import AuthorSignRequest, sign_package
from nuseal.sign.common import SignOptions
from nuseal.verify.policy import HashAlgorithmName


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def request(issued: IssuedCert, **options: object) -> AuthorSignRequest:
    return AuthorSignRequest(signer_for(issued), SignOptions(**options))  # type: ignore[arg-type]


def test_round_trip_signature_covers_the_unsigned_package(
    pki: TestPki, pki_dir: Path, tmp_path: Path
) -> None:
    src = make_package(tmp_path / "a.nupkg")
    original = src.read_bytes()
    dst = tmp_path / "out" / "a.nupkg"
    dst.parent.mkdir()
    stamper = LocalTimestamper(pki.tsa)
    result = sign_package(src, dst, request(pki.leaf), timestamper=stamper, now=now())
    assert result.timestamped and result.kind == "author" and result.warnings == ()
    assert src.read_bytes() == original  # input untouched
    signature = signed_part(dst)
    assert len(dst.read_bytes()) == len(original) + len(signature) + 104  # 44-byte LFH + 60-byte CD header
    assert package_bytes_without_signature(dst) == original
    content = load_primary_signature(signature).content
    assert content.hash_value == hashlib.sha256(original).digest()
    # openssl agrees the CMS signature is valid over the content it carries.
    (tmp_path / "sig.p7s").write_bytes(signature)
    done = subprocess.run(
        ["openssl", "cms", "-verify", "-inform", "DER", "-in", str(tmp_path / "sig.p7s"),
         "-CAfile", str(pki_dir / "root.pem"), "-purpose", "any", "-out", str(tmp_path / "content")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert SignatureContent.parse((tmp_path / "content").read_bytes()).hash_value == content.hash_value
    tokens = load_primary_signature(signature).timestamp_tokens
    assert len(tokens) == 1 and stamper.calls == 1


@pytest.mark.parametrize("algorithm", [HashAlgorithmName.SHA384, HashAlgorithmName.SHA512])
def test_hash_algorithm_choice_reaches_content_and_digest(
    pki: TestPki, tmp_path: Path, algorithm: HashAlgorithmName
) -> None:
    src = make_package(tmp_path / "a.nupkg")
    original = src.read_bytes()
    sign_package(src, src, request(pki.leaf, hash_algorithm=algorithm), timestamper=None, now=now())
    content = load_primary_signature(signed_part(src)).content
    assert content.hash_algorithm_oid == algorithm.oid
    assert content.hash_value == hashlib.new(algorithm.hashlib_name, original).digest()
    assert (
        base64.b64encode(content.hash_value).decode()
        in SignatureContent(algorithm.oid, content.hash_value).to_bytes().decode()
    )


def test_no_timestamper_warns_nu3002(pki: TestPki, tmp_path: Path) -> None:
    src = make_package(tmp_path / "a.nupkg")
    result = sign_package(src, src, request(pki.leaf), timestamper=None, now=now())
    assert [w.code for w in result.warnings] == [NuCode.NU3002]
    assert not result.timestamped


def test_already_signed_is_nu3001_unless_overwrite(pki: TestPki, tmp_path: Path) -> None:
    src = make_package(tmp_path / "a.nupkg")
    original = src.read_bytes()
    sign_package(src, src, request(pki.leaf), timestamper=None, now=now())
    first = src.read_bytes()
    with pytest.raises(SigningError, match="already contains a signature") as caught:
        sign_package(src, src, request(pki.leaf), timestamper=None, now=now())
    assert caught.value.code is NuCode.NU3001
    assert src.read_bytes() == first
    sign_package(
        src, src, request(pki.leaf, overwrite=True), timestamper=None, now=now() + timedelta(seconds=2)
    )
    assert src.read_bytes() != first
    assert package_bytes_without_signature(src) == original
    assert not list(tmp_path.glob(".*tmp"))


def test_zip64_is_nu3006(pki: TestPki, vectors: Path, tmp_path: Path) -> None:
    src = tmp_path / "zip64.nupkg"
    src.write_bytes((vectors / "fixtures" / "CentralDirectoryHeaderWithZip64ExtraField.zip").read_bytes())
    with pytest.raises(SigningError) as caught:
        sign_package(src, tmp_path / "out.nupkg", request(pki.leaf), timestamper=None, now=now())
    assert caught.value.code is NuCode.NU3006


def test_too_many_entries_is_nu3039(pki: TestPki, tmp_path: Path) -> None:
    src = make_package(tmp_path / "a.nupkg")
    data = bytearray(src.read_bytes())
    eocd = data.rindex(b"PK\x05\x06")
    struct.pack_into("<HH", data, eocd + 8, 0xFFFE, 0xFFFE)  # entries on disk / total entries
    src.write_bytes(bytes(data))
    with pytest.raises(SigningError) as caught:
        sign_package(src, tmp_path / "out.nupkg", request(pki.leaf), timestamper=None, now=now())
    assert caught.value.code is NuCode.NU3039


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("sha1_leaf", NuCode.NU3013),
        ("weak_key_leaf", NuCode.NU3014),
        ("lifetime_eku_leaf", NuCode.NU3015),
        ("not_yet_valid_leaf", NuCode.NU3017),
        ("wrong_eku_leaf", NuCode.NU3018),
        ("expired_leaf", NuCode.NU3018),
    ],
)
def test_certificate_problems_fail_with_their_code(
    pki: TestPki, tmp_path: Path, name: str, code: NuCode
) -> None:
    src = make_package(tmp_path / "a.nupkg")
    original = src.read_bytes()
    with pytest.raises(CertificateError) as caught:
        sign_package(src, src, request(getattr(pki, name)), timestamper=None, now=now())
    assert caught.value.code is code
    assert src.read_bytes() == original


def test_self_issued_certificate_signs_with_nu3018_warning(pki: TestPki, tmp_path: Path) -> None:
    src = make_package(tmp_path / "a.nupkg")
    result = sign_package(src, src, request(pki.self_issued), timestamper=None, now=now())
    assert NuCode.NU3018 in [w.code for w in result.warnings]


@pytest.mark.parametrize(
    ("stamper_args", "code"),
    [
        ({"wrong_imprint": True}, NuCode.NU3019),
        ({"embed_certificates": False}, NuCode.NU3020),
    ],
)
def test_bad_timestamp_fails_and_leaves_input_unsigned(
    pki: TestPki, tmp_path: Path, stamper_args: dict[str, bool], code: NuCode
) -> None:
    src = make_package(tmp_path / "a.nupkg")
    original = src.read_bytes()
    with pytest.raises(TimestampError) as caught:
        sign_package(
            src, src, request(pki.leaf), timestamper=LocalTimestamper(pki.tsa, **stamper_args), now=now()
        )
    assert caught.value.code is code
    assert src.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nupkg"]


def test_timestamp_outside_tsa_validity_is_nu3036(pki: TestPki, tmp_path: Path) -> None:
    src = make_package(tmp_path / "a.nupkg")
    stamper = LocalTimestamper(pki.expired_tsa, gen_time=now())
    with pytest.raises(TimestampError) as caught:
        sign_package(src, src, request(pki.leaf), timestamper=stamper, now=now())
    assert caught.value.code is NuCode.NU3036


def test_failing_timestamper_leaves_no_trace(pki: TestPki, tmp_path: Path) -> None:
    class Down:
        def timestamp(self, data: bytes, hash_algorithm: HashAlgorithmName) -> bytes:
            raise NusealError("The timestamp service at http://127.0.0.1:9/ could not be reached.")

    src = make_package(tmp_path / "a.nupkg")
    original = src.read_bytes()
    with pytest.raises(NusealError, match="could not be reached"):
        sign_package(src, src, request(pki.leaf), timestamper=Down(), now=now())
    assert src.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nupkg"]
    assert zipfile.ZipFile(src).testzip() is None


def test_timestamp_imprint_uses_timestamp_hash_algorithm(pki: TestPki, tmp_path: Path) -> None:
    src = make_package(tmp_path / "a.nupkg")
    options = {"timestamp_hash_algorithm": HashAlgorithmName.SHA512}
    sign_package(src, src, request(pki.leaf, **options), timestamper=LocalTimestamper(pki.tsa), now=now())
    signature = signed_part(src)
    token = load_primary_signature(signature).timestamp_tokens[0]
    assert hashlib.sha512(signature_value(signature)).digest() in token
