"""nuseal's RFC 3161 TSA: token shape, request handling and rejections (asn1crypto and OpenSSL)."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms, core, tsp, x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from tests.support.pki import TestPki
from tests.support.servers import timestamp_request as make_request

from nuseal.cms import encode
from nuseal.errors import CertificateError
from nuseal.timestamp import tsa as tsa_module
from nuseal.timestamp.tsa import TimestampAuthority, TimeStampResponse


def fixed_moment(pki: TestPki) -> datetime:
    """A fixed genTime inside the TSA certificate's validity, relative to the PKI (never to the calendar),
    with a fraction of a second to show that genTime is written in whole seconds."""
    return (pki.now - timedelta(days=2, hours=3)).replace(microsecond=678000)


@pytest.fixture(scope="module")
def fixed_tsa(pki: TestPki) -> TimestampAuthority:
    moment = fixed_moment(pki)
    return TimestampAuthority(pki.tsa.cert, pki.tsa.key, pki.tsa.chain[1:], clock=lambda: moment)


def granted_token(tsa: TimestampAuthority, request: bytes) -> tuple[cms.SignedData, tsp.TSTInfo]:
    response = TimeStampResponse.load(tsa.respond(request))
    assert response["status"]["status"].native == "granted"
    signed_data = response["time_stamp_token"]["content"]
    return signed_data, signed_data["encap_content_info"]["content"].parsed


def test_tst_info_fields(fixed_tsa: TimestampAuthority, pki: TestPki) -> None:
    request = make_request(b"abc", nonce=42)
    _, tst = granted_token(fixed_tsa, request)
    assert tst["version"].native == "v1"
    assert tst["policy"].dotted == "1.2.3.4.1"
    assert tst["message_imprint"].dump() == tsp.TimeStampReq.load(request)["message_imprint"].dump()
    assert tst["nonce"].native == 42
    assert tst["gen_time"].native == fixed_moment(pki).replace(microsecond=0)
    assert tst["accuracy"]["seconds"].native == 1
    assert tst["tsa"].chosen.native == fixed_tsa._asn1_cert.subject.native


def test_no_nonce_means_no_nonce(fixed_tsa: TimestampAuthority) -> None:
    _, tst = granted_token(fixed_tsa, make_request(nonce=None))
    assert tst["nonce"].native is None


def test_serials_are_unique_and_increasing(fixed_tsa: TimestampAuthority) -> None:
    serials = [granted_token(fixed_tsa, make_request())[1]["serial_number"].native for _ in range(5)]
    assert serials == sorted(serials) and len(set(serials)) == 5


def test_signer_info_and_signed_attributes(fixed_tsa: TimestampAuthority, pki: TestPki) -> None:
    signed_data, _ = granted_token(fixed_tsa, make_request())
    assert signed_data["version"].native == "v3"
    assert signed_data["encap_content_info"]["content_type"].native == "tst_info"
    (signer,) = signed_data["signer_infos"]
    sid = signer["sid"].chosen
    assert sid["serial_number"].native == pki.tsa.serial
    assert signer["digest_algorithm"]["algorithm"].native == "sha256"
    attrs = {a["type"].native: a["values"][0] for a in signer["signed_attrs"]}
    assert attrs["content_type"].native == "tst_info"
    assert attrs["signing_time"].native == fixed_moment(pki).replace(microsecond=0)
    tst_der = signed_data["encap_content_info"]["content"].contents
    assert attrs["message_digest"].native == hashlib.sha256(tst_der).digest()
    (ess,) = attrs["signing_certificate_v2"]["certs"]
    assert ess["cert_hash"].native == hashlib.sha256(pki.tsa.der).digest()
    assert ess["issuer_serial"]["serial_number"].native == pki.tsa.serial
    assert ess["issuer_serial"]["issuer"][0].chosen.native == fixed_tsa._asn1_cert.issuer.native
    # The embedded attribute SET is the DER (sorted) one, and it is what was signed.
    signed_attrs_der = signer["signed_attrs"].untag().dump()
    assert signed_attrs_der == cms.CMSAttributes.load(signed_attrs_der).dump(force=True)
    pki.tsa.key.public_key().verify(
        signer["signature"].native, signed_attrs_der, padding.PKCS1v15(), hashes.SHA256()
    )


def test_cert_req_controls_embedded_certificates(fixed_tsa: TimestampAuthority, pki: TestPki) -> None:
    with_certs, _ = granted_token(fixed_tsa, make_request(cert_req=True))
    ders = [c.chosen.dump() for c in with_certs["certificates"]]
    assert set(ders) == {pki.tsa.der, pki.intermediate.der, pki.root.der}
    assert ders == sorted(ders)
    without, _ = granted_token(fixed_tsa, make_request(cert_req=False))
    assert not without["certificates"]


def test_sha384_and_sha512_imprints(fixed_tsa: TimestampAuthority) -> None:
    for algorithm in ("sha384", "sha512"):
        _, tst = granted_token(fixed_tsa, make_request(b"x", algorithm=algorithm))
        assert tst["message_imprint"]["hashed_message"].native == hashlib.new(algorithm, b"x").digest()


def _rejection(tsa: TimestampAuthority, request: bytes) -> tuple[str, set[str], str]:
    status = TimeStampResponse.load(tsa.respond(request))["status"]
    return status["status"].native, set(status["fail_info"].native), " ".join(status["status_string"].native)


@pytest.mark.parametrize(
    ("request_der", "fail_info"),
    [
        (b"", "bad_data_format"),
        (b"\x30\x03\x02\x01", "bad_data_format"),
        (b"not asn.1 at all", "bad_data_format"),
        (make_request(algorithm="sha1"), "bad_alg"),
        (make_request(algorithm="md5"), "bad_alg"),
        (make_request(digest=b"\x00" * 20), "bad_data_format"),
        (make_request(policy="1.2.3.4.99"), "unaccepted_policy"),
        (b"\x30" + b"\x84\x00\x01\x00\x00" + b"\x00" * 65536, "bad_data_format"),
    ],
    ids=["empty", "truncated", "garbage", "sha1", "md5", "short-digest", "other-policy", "oversized"],
)
def test_bad_requests_are_rejected_not_crashed(
    fixed_tsa: TimestampAuthority, request_der: bytes, fail_info: str
) -> None:
    status, infos, text = _rejection(fixed_tsa, request_der)
    assert status == "rejection"
    assert infos == {fail_info}
    assert text


def test_request_extensions_are_rejected(fixed_tsa: TimestampAuthority) -> None:
    request = tsp.TimeStampReq.load(make_request())
    fields = {name: request[name] for name in ("version", "message_imprint", "nonce", "cert_req")}
    fields["extensions"] = [{"extn_id": "1.2.3.4.5", "critical": False, "extn_value": core.OctetString(b"x")}]
    assert _rejection(fixed_tsa, tsp.TimeStampReq(fields).dump())[1] == {"unaccepted_extensions"}


def test_matching_policy_is_granted(fixed_tsa: TimestampAuthority) -> None:
    _, tst = granted_token(fixed_tsa, make_request(policy="1.2.3.4.1"))
    assert tst["policy"].dotted == "1.2.3.4.1"


def test_refuses_certificate_without_critical_timestamping_eku(pki: TestPki) -> None:
    non_critical = pki.by_name.get("tsa-noncritical-eku") or pki.issue_tsa(
        "tsa-noncritical-eku", eku_critical=False
    )
    with pytest.raises(CertificateError, match="critical"):
        TimestampAuthority(non_critical.cert, non_critical.key, clock=lambda: pki.now)
    with pytest.raises(CertificateError, match="id-kp-timeStamping"):
        TimestampAuthority(pki.leaf.cert, pki.leaf.key, clock=lambda: pki.now)


def test_refuses_a_key_of_another_certificate(pki: TestPki) -> None:
    with pytest.raises(CertificateError, match="does not belong"):
        TimestampAuthority(pki.tsa.cert, pki.leaf.key, clock=lambda: pki.now)


def test_gen_time_follows_the_clock(pki: TestPki) -> None:
    moments = iter([fixed_moment(pki), fixed_moment(pki) + timedelta(days=3)])
    tsa = TimestampAuthority(pki.tsa.cert, pki.tsa.key, clock=lambda: next(moments))
    times = [granted_token(tsa, make_request())[1]["gen_time"].native for _ in range(2)]
    assert times[1] - times[0] == timedelta(days=3)


def test_openssl_verifies_the_token(tsa_authority: TimestampAuthority, pki_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"the signature value to be timestamped")
    query = tmp_path / "req.tsq"
    subprocess.run(
        ["openssl", "ts", "-query", "-data", str(data), "-sha256", "-cert", "-out", str(query)], check=True,
        capture_output=True,
    )  # fmt: skip
    reply = tmp_path / "resp.tsr"
    reply.write_bytes(tsa_authority.respond(query.read_bytes()))
    text = subprocess.run(
        ["openssl", "ts", "-reply", "-in", str(reply), "-text"], capture_output=True, text=True, check=True
    ).stdout
    assert "Status: Granted." in text and "Policy OID: 1.2.3.4.1" in text.replace("tsa_policy1", "1.2.3.4.1")
    token = tmp_path / "tok.der"
    token.write_bytes(TimeStampResponse.load(reply.read_bytes())["time_stamp_token"].dump())
    for args in (
        ["-queryfile", str(query), "-in", str(reply)],
        ["-data", str(data), "-in", str(token), "-token_in"],
    ):
        result = subprocess.run(
            ["openssl", "ts", "-verify", *args, "-CAfile", str(pki_dir / "root.pem"),
             "-untrusted", str(pki_dir / "intermediate.pem")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert "Verification: OK" in result.stdout, result.stderr


def test_openssl_rejects_a_token_for_other_data(
    tsa_authority: TimestampAuthority, pki_dir: Path, tmp_path: Path
) -> None:
    token = tmp_path / "tok.der"
    response = TimeStampResponse.load(tsa_authority.respond(make_request(b"one thing")))
    token.write_bytes(response["time_stamp_token"].dump())
    other = tmp_path / "other.bin"
    other.write_bytes(b"another thing")
    result = subprocess.run(
        ["openssl", "ts", "-verify", "-data", str(other), "-in", str(token), "-token_in",
         "-CAfile", str(pki_dir / "root.pem"), "-untrusted", str(pki_dir / "intermediate.pem")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "Verification: OK" not in result.stdout


# --- the hand-assembled DER equals what asn1crypto builds --------------------------------------------------------


def _asn1crypto_token(tsa: TimestampAuthority, request_der: bytes, serial: int, gen_time: datetime) -> bytes:
    """The token for ``request_der`` built field by field with asn1crypto (how the TSA built them before)."""
    request = tsp.TimeStampReq.load(request_der)
    subject = tsa._asn1_cert.subject
    tst: dict[str, object] = {
        "version": "v1", "policy": tsa.policy_oid, "message_imprint": request["message_imprint"].copy(),
        "serial_number": serial, "gen_time": gen_time, "accuracy": {"seconds": tsa.accuracy_seconds},
        "tsa": x509.GeneralName({"directory_name": subject}),
    }  # fmt: skip
    if request["nonce"].native is not None:
        tst["nonce"] = request["nonce"].native
    tst_der = tsp.TSTInfo(tst).dump()
    ess = tsp.SigningCertificateV2({"certs": [{
        "cert_hash": hashlib.sha256(tsa.certificate.public_bytes(serialization.Encoding.DER)).digest(),
        "issuer_serial": {"issuer": [x509.GeneralName({"directory_name": tsa._asn1_cert.issuer})],
                          "serial_number": tsa._asn1_cert.serial_number},
    }]})  # fmt: skip
    attrs = cms.CMSAttributes([
        {"type": "content_type", "values": ["tst_info"]},
        {"type": "signing_time", "values": [cms.Time({"utc_time": gen_time})]},
        {"type": "message_digest", "values": [hashlib.sha256(tst_der).digest()]},
        {"type": "signing_certificate_v2", "values": [ess]},
    ])  # fmt: skip
    attrs = cms.CMSAttributes.load(b"\x31" + attrs.dump()[1:]).dump(force=True)  # DER: sorted SET OF
    signature = tsa.private_key.sign(attrs, padding.PKCS1v15(), hashes.SHA256())
    signed_data: dict[str, object] = {
        "version": "v3", "digest_algorithms": [{"algorithm": "sha256"}],
        "encap_content_info": {"content_type": "tst_info", "content": cms.ParsableOctetString(tst_der)},
        "signer_infos": [{
            "version": "v1",
            "sid": {"issuer_and_serial_number": {"issuer": tsa._asn1_cert.issuer,
                                                 "serial_number": tsa._asn1_cert.serial_number}},
            "digest_algorithm": {"algorithm": "sha256"}, "signed_attrs": cms.CMSAttributes.load(attrs),
            "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"}, "signature": signature,
        }],
    }  # fmt: skip
    if request["cert_req"].native:
        ders = sorted(c.public_bytes(serialization.Encoding.DER) for c in [tsa.certificate, *tsa.chain])
        signed_data["certificates"] = [cms.CertificateChoices({"certificate": x509.Certificate.load(d)})
                                       for d in ders]
    token = cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed_data)})
    return TimeStampResponse({"status": {"status": "granted"}, "time_stamp_token": token}).dump()


@pytest.mark.parametrize(
    "request_der",
    [make_request(b"abc", nonce=42), make_request(nonce=None), make_request(nonce=2**255 - 1),
     make_request(cert_req=False), make_request(b"x", algorithm="sha512"), make_request(policy="1.2.3.4.1")],
    ids=["nonce", "no-nonce", "256-bit-nonce", "no-certificates", "sha512", "policy"],
)  # fmt: skip
def test_tokens_are_byte_identical_to_an_asn1crypto_build(
    fixed_tsa: TimestampAuthority, pki: TestPki, request_der: bytes
) -> None:
    response = fixed_tsa.respond(request_der)
    tst_info = TimeStampResponse.load(response)["time_stamp_token"]["content"]["encap_content_info"]["content"]
    serial_number = tst_info.parsed["serial_number"].native
    moment = fixed_moment(pki).replace(microsecond=0)
    assert response == _asn1crypto_token(fixed_tsa, request_der, serial_number, moment)


def test_frames_reused_across_sizes_give_the_same_bytes_as_asn1crypto(pki: TestPki) -> None:
    """The bytes around a token's variable parts are remembered per set of sizes: requests whose parts differ in
    size, interleaved on one authority, each get the token asn1crypto builds."""
    moment = fixed_moment(pki)
    authority = TimestampAuthority(pki.tsa.cert, pki.tsa.key, pki.tsa.chain[1:], clock=lambda: moment)
    requests = [make_request(b"a", nonce=1), make_request(b"b", nonce=None, cert_req=False),
                make_request(b"c", nonce=2**70), make_request(b"d", algorithm="sha384", nonce=-5)]
    for request_der in requests * 2:
        response = authority.respond(request_der)
        tst_info = TimeStampResponse.load(response)["time_stamp_token"]["content"]["encap_content_info"]["content"]
        serial_number = tst_info.parsed["serial_number"].native
        assert response == _asn1crypto_token(authority, request_der, serial_number, moment.replace(microsecond=0))
    assert len(authority._frames) == len(requests)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 256, -1, -128, -129, 2**64, 2**255 - 1])
def test_der_integers_match_asn1crypto(value: int) -> None:
    assert encode.integer(value) == core.Integer(value).dump()


@pytest.mark.parametrize("size", [0, 127, 128, 255, 256, 65535, 65536])
def test_der_lengths_match_asn1crypto(size: int) -> None:
    assert encode.octet_string(b"x" * size) == core.OctetString(b"x" * size).dump()


def test_signing_time_switches_to_generalized_time_after_2049() -> None:
    # Fixed dates on purpose: the encoding switches at the year 2050 (RFC 5280), not relative to any clock.
    early = datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC)
    late = datetime(2050, 1, 1, tzinfo=UTC)
    assert encode.cms_time(early) == cms.Time({"utc_time": early}).dump()
    assert encode.cms_time(late) == cms.Time({"generalized_time": late}).dump()


def _asn1crypto_reading(tsa: TimestampAuthority, request_der: bytes, monkeypatch: pytest.MonkeyPatch) -> object:
    with monkeypatch.context() as patch:
        patch.setattr(tsa_module, "_read_plain_request", lambda der: None)
        return tsa._parse_request(request_der)


def _without_null_parameters(request_der: bytes) -> bytes:
    """The request with its hash AlgorithmIdentifier's NULL parameters left out (both forms are in use)."""
    request = tsp.TimeStampReq.load(request_der)
    imprint = request["message_imprint"]
    algorithm = core.Sequence.load(imprint["hash_algorithm"].dump())
    oid = algorithm.contents[: algorithm.contents.index(b"\x05\x00")] if b"\x05\x00" in algorithm.contents else b""
    assert oid, "asn1crypto wrote NULL parameters"
    new_imprint = encode.sequence(encode.sequence(oid), imprint["hashed_message"].dump())
    rest = b"".join(request[name].dump() for name in ("nonce", "cert_req") if request[name].native is not None)
    return encode.sequence(request["version"].dump(), new_imprint, rest)


@pytest.mark.parametrize(
    "request_der",
    [
        make_request(),
        make_request(algorithm="sha384"),
        make_request(algorithm="sha512", nonce=None),
        make_request(nonce=-5),
        make_request(nonce=int.from_bytes(b"\x7f" + b"\xab" * 31, "big")),
        make_request(cert_req=False),
        _without_null_parameters(make_request()),
    ],
    ids=["nuget", "sha384", "sha512-no-nonce", "negative-nonce", "32-byte-nonce", "no-cert-req", "no-null-params"],
)
def test_the_walker_reads_usual_requests_as_asn1crypto_does(
    fixed_tsa: TimestampAuthority, request_der: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    walked = tsa_module._read_plain_request(request_der)
    assert walked is not None
    assert walked == _asn1crypto_reading(fixed_tsa, request_der, monkeypatch)


@pytest.mark.parametrize(
    "request_der",
    [
        make_request(policy="1.2.3.4.1"),
        make_request() + b"\x00",
        make_request(algorithm="sha1"),
        make_request(digest=b"\x00" * 31),
        b"\x30\x80" + make_request()[2:] + b"\x00\x00",  # BER indefinite length
        make_request().replace(b"\x02\x01\x01", b"\x02\x01\x02", 1),  # version 2
    ],
    ids=["policy", "trailing-byte", "sha1", "short-digest", "indefinite-length", "version-2"],
)
def test_unusual_requests_are_left_to_asn1crypto(request_der: bytes) -> None:
    assert tsa_module._read_plain_request(request_der) is None


@pytest.mark.parametrize("year", [50, 999, 1949, 2050, 9999])
def test_shared_der_times_and_lengths_match_asn1crypto(year: int) -> None:
    from asn1crypto import core

    moment = datetime(year, 3, 4, 5, 6, 7, tzinfo=UTC)
    expected = b"\x18\x0f" + b"%04d0304050607Z" % year  # X.690 §11.7: always four year digits
    assert encode.generalized_time(moment) == expected
    if year >= 1000:  # asn1crypto formats with strftime, which does not pad smaller years
        assert expected == core.GeneralizedTime(moment).dump()
    for size in (0, 127, 128, 255, 256, 70_000):
        assert encode.tlv(0x04, b"x" * size) == core.OctetString(b"x" * size).dump()


_PLAIN = (b"POST /tsa HTTP/1.1\r\nHost: tsa.example\r\nContent-Type: application/timestamp-query\r\n"
          b"Content-Length: 59\r\nAccept: */*")


def test_the_http_fast_path_reads_what_timestamp_clients_send() -> None:
    from nuseal.timestamp.tsa import _plain_head

    assert _plain_head(_PLAIN) == (b"/tsa", 59)
    assert _plain_head(_PLAIN.replace(b"Content-Type: application/timestamp-query",
                                      b"content-type:APPLICATION/Timestamp-Query; charset=x")) == (b"/tsa", 59)


@pytest.mark.parametrize(("old", "new"), [
    (b"POST /tsa HTTP/1.1", b"POST /tsa HTTP/1.0"),  # HTTP/1.0
    (b"POST /tsa", b"PUT /tsa"),
    (b"POST /tsa", b"POST http://tsa.example/tsa"),  # absolute form
    (b"Host: tsa.example\r\n", b""),  # no Host
    (b"Host: tsa.example", b"Host: a\r\nHost: b"),
    (b"Content-Length: 59", b"Content-Length: 59\r\nContent-Length: 59"),
    (b"Content-Length: 59", b"Content-Length: +59"),
    (b"Content-Length: 59", b"Content-Length: 999999"),  # over MAX_REQUEST_BYTES
    (b"Content-Length: 59", b"Transfer-Encoding: chunked"),
    (b"Accept: */*", b"Expect: 100-continue"),
    (b"Accept: */*", b"Connection: close"),
    (b"Accept: */*", b"Accept: a\r\n b"),  # obsolete line folding
    (b"Accept: */*", b"Bad Name: x"),
    (b"Content-Type: application/timestamp-query", b"Content-Type: text/plain"),
    (b"Content-Type: application/timestamp-query\r\n", b""),  # h11's path applies the default
])  # fmt: skip
def test_the_http_fast_path_leaves_everything_else_to_h11(old: bytes, new: bytes) -> None:
    from nuseal.timestamp.tsa import _plain_head

    assert old in _PLAIN
    assert _plain_head(_PLAIN.replace(old, new)) is None
