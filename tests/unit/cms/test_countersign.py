"""The DER editor of repository countersignatures (``nuseal.cms.countersign``) against asn1crypto's path
(``build.*_asn1``, how nuseal edited signatures before): the same bytes or the same error for every input, on the
real vectors, on signatures built here at every length mod 256, on unusual forms and on mutated bytes. Each test also
checks which path answered, so that a DER editor that silently fell back everywhere would fail."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from tests.support.pki import IssuedCert, TestPki

from nuseal import oids
from nuseal.cms import build, countersign, encode
from nuseal.cms.der import contents_of, tlvs
from nuseal.errors import NusealError
from nuseal.sign.repository import read_signature

URL = "https://feed.example/v3/index.json"


def _outcome(function: Callable[..., bytes], *args: Any) -> tuple[str, Any]:
    try:
        return "bytes", function(*args)
    except Exception as exc:  # the error's type and words are part of what must not change
        return type(exc).__name__, str(exc)


class _Paths:
    """Counts the calls that reach asn1crypto's path through the DER editor."""

    def __init__(self) -> None:
        self.fallbacks = 0


@contextmanager
def _counting(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Paths]:
    paths = _Paths()
    add, strip = build.add_countersignature_asn1, build.strip_repository_countersignatures_asn1

    def counted_add(*args: Any) -> bytes:
        paths.fallbacks += 1
        return add(*args)

    def counted_strip(signature: bytes) -> bytes:
        paths.fallbacks += 1
        return strip(signature)

    with monkeypatch.context() as patch:
        patch.setattr(build, "add_countersignature_asn1", counted_add)
        patch.setattr(build, "strip_repository_countersignatures_asn1", counted_strip)
        countersign.strip_repository_countersignatures.cache_clear()
        yield paths
    countersign.strip_repository_countersignatures.cache_clear()


def _same_strip(signature: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[tuple[str, Any], int]:
    """Both paths' outcomes must be equal; returns the outcome and how often the editor fell back."""
    expected = _outcome(build.strip_repository_countersignatures_asn1, signature)
    with _counting(monkeypatch) as paths:
        got = _outcome(countersign.strip_repository_countersignatures, signature)
    assert got == expected
    return got, paths.fallbacks


def _same_add(signature: bytes, counter: bytes, chain: list[x509.Certificate],
              monkeypatch: pytest.MonkeyPatch) -> tuple[tuple[str, Any], int]:  # fmt: skip
    expected = _outcome(build.add_countersignature_asn1, signature, counter, chain)
    with _counting(monkeypatch) as paths:
        got = _outcome(countersign.add_countersignature, signature, counter, chain)
    assert got == expected
    return got, paths.fallbacks


def _countersigner(repository: IssuedCert, primary: bytes, url: str = URL,
                   timestamp: bytes | None = None) -> tuple[bytes, list[x509.Certificate]]:  # fmt: skip
    builder = (build.CountersignatureBuilder.repository(url, ("alice", "Bob"))
               .with_signer(repository.cert, repository.chain).with_signing_time(_when(repository)))  # fmt: skip
    value = build.primary_signature_value(primary)
    signature = repository.key.sign(builder.signed_attributes(value), padding.PKCS1v15(), hashes.SHA256())
    return builder.build(value, signature, timestamp=timestamp), builder.embedded_chain()


def _when(issued: IssuedCert) -> datetime:
    """A signing time inside the certificate's validity (the test PKI's clock, never today's date)."""
    return issued.cert.not_valid_before_utc + timedelta(days=1)


def _author(issued: IssuedCert, content_length: int = 64, timestamp: bytes | None = None) -> bytes:
    builder = (build.PrimarySignatureBuilder.author().with_signer(issued.cert, issued.chain)
               .with_signing_time(_when(issued)).with_content(b"c" * content_length))  # fmt: skip
    value = issued.key.sign(builder.signed_attributes(), padding.PKCS1v15(), hashes.SHA256())
    return builder.build(value, timestamp=timestamp)


@pytest.fixture(scope="module")
def repository(pki: TestPki) -> IssuedCert:
    return pki.issue_leaf("countersign-editor-repository")


@pytest.fixture(scope="module")
def no_ski(pki: TestPki) -> IssuedCert:
    """A code-signing certificate without a subject key identifier: signers then name it by issuer and serial."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer = pki.intermediate
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "countersign no-ski")]))
            .issuer_name(issuer.cert.subject).public_key(key.public_key()).serial_number(0x80 << 64)
            .not_valid_before(pki.now - timedelta(days=2)).not_valid_after(pki.now + timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .sign(issuer.key, hashes.SHA256()))  # fmt: skip
    return IssuedCert("countersign-no-ski", cert, key, issuer)


# --- real signatures ------------------------------------------------------------------------------------------


def _real_signatures(vectors: Path) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    for path in sorted([*(vectors / "real").glob("*.nupkg"), *(vectors / "fixtures").glob("*.nupkg")]):
        try:
            signature = read_signature(path)
        except NusealError:
            continue  # a corrupt package: no signature to edit
        if signature is not None:
            found.append((path.name, signature))
    found.append(("author-with-repo-countersignature.p7s",
                  (vectors / "fixtures" / "author-with-repo-countersignature.p7s").read_bytes()))  # fmt: skip
    return found


def test_real_signatures_strip_and_countersign_as_asn1crypto_does(
    vectors: Path, repository: IssuedCert, monkeypatch: pytest.MonkeyPatch
) -> None:
    signatures = _real_signatures(vectors)
    assert len(signatures) >= 15
    countersigned = 0
    for name, signature in signatures:
        (kind, stripped), fallbacks = _same_strip(signature, monkeypatch)
        assert (kind, fallbacks) == ("bytes", 0), name  # every real signature is read by the editor itself
        commitments = build.primary_commitments(signature)
        if oids.PROOF_OF_ORIGIN not in commitments:
            continue  # a repository primary signature is replaced, never countersigned
        countersigned += build.repository_countersigner_count(signature)
        counter, chain = _countersigner(repository, stripped)
        (kind, added), fallbacks = _same_add(stripped, counter, chain, monkeypatch)
        assert (kind, fallbacks) == ("bytes", 0), name
        assert counter in added
        # Stripping what was added gives back the stripped signature, byte for byte.
        assert _same_strip(added, monkeypatch)[0] == ("bytes", stripped), name
    assert countersigned >= 5  # nuget.org's author-signed packages carry its repository countersignature


# --- signatures built here ------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_length", range(100, 356, 3))
def test_every_length_mod_256_gives_asn1crypto_bytes(
    pki: TestPki, repository: IssuedCert, content_length: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lengths of 128, 384, ... end in 0x80, which asn1crypto once took for indefinite lengths (see
    # test_build_edit_lengths.py): the edited containers cross every such boundary here.
    primary = _author(pki.leaf, content_length)
    counter, chain = _countersigner(repository, primary, "https://" + "h" * (content_length % 200 + 5) + "/v3/x")
    (kind, added), fallbacks = _same_add(primary, counter, chain, monkeypatch)
    assert (kind, fallbacks) == ("bytes", 0)
    (kind, stripped), fallbacks = _same_strip(added, monkeypatch)
    assert (kind, stripped, fallbacks) == ("bytes", primary, 0)


def test_issuer_and_serial_signers_and_a_timestamped_primary(
    pki: TestPki, repository: IssuedCert, no_ski: IssuedCert, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _author(pki.tsa)  # a SignedData as deep as a token, in the primary's unsigned attributes
    for author, counter_cert in ((no_ski, repository), (pki.leaf, no_ski), (no_ski, no_ski)):
        primary = _author(author, timestamp=token)
        counter, chain = _countersigner(counter_cert, primary, timestamp=token)
        (kind, added), fallbacks = _same_add(primary, counter, chain, monkeypatch)
        assert (kind, fallbacks) == ("bytes", 0)
        (kind, stripped), fallbacks = _same_strip(added, monkeypatch)
        assert (kind, stripped, fallbacks) == ("bytes", primary, 0)


# --- unusual forms ----------------------------------------------------------------------------------------------


def _split(signature: bytes) -> tuple[bytes, list[bytes], list[bytes]]:
    """(contentType, SignedData fields, primary SignerInfo fields) of a DER signature."""
    content_type, content = tlvs(contents_of(signature))
    fields = tlvs(contents_of(tlvs(contents_of(content))[0]))
    signer = tlvs(contents_of(tlvs(contents_of(fields[-1]))[0]))
    return content_type, fields, signer


def _join(content_type: bytes, fields: list[bytes], signer: list[bytes]) -> bytes:
    signed_data = encode.sequence(*fields[:-1], encode.tlv(0x31, encode.sequence(*signer)))
    return encode.sequence(content_type, encode.tlv(0xA0, signed_data))


@pytest.fixture(scope="module")
def countersigned(pki: TestPki, repository: IssuedCert) -> bytes:
    primary = _author(pki.leaf, timestamp=_author(pki.tsa))
    counter, chain = _countersigner(repository, primary)
    return build.add_countersignature_asn1(primary, counter, chain)


def _variants(signature: bytes, author_counter: bytes) -> dict[str, tuple[bytes, bool]]:
    """Unusual forms of ``signature`` (author-signed, timestamped, repository-countersigned): name -> (bytes, whether
    the editor reads it itself)."""
    content_type, fields, signer = _split(signature)
    certificates = tlvs(contents_of(fields[3]))
    unsigned = tlvs(contents_of(signer[-1]))
    head, rest = fields[:3], fields[4:]
    counter_attribute = next(a for a in unsigned if tlvs(contents_of(a))[0] == encode.object_identifier(
        oids.COUNTERSIGNATURE))  # fmt: skip
    counter_values = tlvs(contents_of(tlvs(contents_of(counter_attribute))[1]))
    two_counters = encode.sequence(encode.object_identifier(oids.COUNTERSIGNATURE),
                                   encode.set_of(*counter_values, author_counter))  # fmt: skip
    others = [a for a in unsigned if a != counter_attribute]
    two_signers = encode.sequence(*fields[:-1], encode.set_of(encode.sequence(*signer), encode.sequence(*signer[:-1])))

    def with_unsigned(attributes: list[bytes]) -> bytes:
        return _join(content_type, fields, [*signer[:-1], encode.tlv(0xA1, b"".join(attributes))])

    long_form = signer[-1][:1] + b"\x84" + len(contents_of(signer[-1])).to_bytes(4, "big") + contents_of(signer[-1])
    indefinite = b"\x30\x80" + contents_of(signature) + b"\x00\x00"
    return {
        "as built": (signature, True),
        "certificates unsorted": (_join(content_type, [*head, encode.tlv(0xA0, b"".join(certificates[::-1])), *rest],
                                        signer), True),
        "certificates field empty": (_join(content_type, [*head, b"\xa0\x00", *rest], signer), True),
        "no certificates field": (_join(content_type, [*head, *rest], signer), True),
        "crls field": (_join(content_type, [*fields[:4], b"\xa1\x00", *rest], signer), True),
        "unsigned attributes unsorted": (with_unsigned(sorted(unsigned, reverse=True)), True),
        "a second, non-repository countersigner": (with_unsigned([*others, two_counters]), True),
        "no unsigned attributes": (_join(content_type, fields, signer[:-1]), True),
        "long-form length on the unsigned attributes": (_join(content_type, fields, [*signer[:-1], long_form]),
                                                         True),
        "indefinite-length ContentInfo": (indefinite, False),
        "trailing bytes": (signature + b"\x00\x00", False),
        "two signer infos": (encode.sequence(content_type, encode.tlv(0xA0, two_signers)), False),
        "not a SignedData": (encode.sequence(encode.object_identifier(oids.DATA), signature[2:]), False),
    }


def test_unusual_forms_give_asn1crypto_bytes_or_its_error(
    pki: TestPki, repository: IssuedCert, countersigned: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A countersigner without proof-of-receipt (proof-of-origin instead: NuGet never writes one): it stays.
    counter, _ = _countersigner(repository, countersigned)
    receipt, origin = bytes.fromhex("300d060b2a864886f70d0109100602"), bytes.fromhex("300d060b2a864886f70d0109100601")
    assert counter.count(receipt) == 1
    author_counter = counter.replace(receipt, origin)
    for name, (signature, read_by_editor) in _variants(countersigned, author_counter).items():
        outcome, fallbacks = _same_strip(signature, monkeypatch)
        assert fallbacks == (0 if read_by_editor else 1), name
        if name == "a second, non-repository countersigner":
            assert outcome[0] == "bytes" and author_counter in outcome[1]
        counter, chain = _countersigner(repository, countersigned)
        _, fallbacks = _same_add(signature, counter, chain, monkeypatch)
        assert fallbacks == (0 if read_by_editor else 1), name


def test_mutated_bytes_give_the_same_bytes_or_the_same_error(
    countersigned: bytes, repository: IssuedCert, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter, chain = _countersigner(repository, countersigned)
    rng = random.Random(11)
    editor_read = 0
    for _ in range(400):
        data = bytearray(countersigned)
        for _ in range(rng.choice((1, 1, 2, 3))):
            data[rng.randrange(len(data))] = rng.randrange(256)
        strip_outcome, fallbacks = _same_strip(bytes(data), monkeypatch)
        editor_read += fallbacks == 0
        _same_add(bytes(data), counter, chain, monkeypatch)
        assert strip_outcome[0] == "bytes" or fallbacks == 1  # the editor never raises errors of its own
    assert editor_read >= 100  # most single-byte changes land in values copied as they are
