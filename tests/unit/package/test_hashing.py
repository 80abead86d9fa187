"""hashing: the §2.2 "package without signature" stream, package hash and content hash."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import struct
import sys
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from tests.conftest import VECTORS
from tests.support import tamper
from tests.support.hash_spy import hash_pass_threads
from tests.support.pki import TestPki
from tests.unit.package.helpers import (
    ManifestRow,
    embedded_hash,
    ids,
    signed_packages,
    signed_rows,
    unsigned_rows,
)
from tests.unit.sign.helpers import make_package, signer_for

from nuseal.errors import PackageFormatError
from nuseal.package import hashing, headstart
from nuseal.package.hashing import content_hash, feed_plan, package_hash, unsigned_view_plan
from nuseal.package.zipformat import ArchiveLayout, SignatureEntry, find_signature_entry, read_layout
from nuseal.sign.author import AuthorSignRequest, sign_package
from nuseal.sign.common import SignOptions
from nuseal.verify.policy import HashAlgorithmName

SIGNED = VECTORS / "fixtures" / "TestPackage.AuthorSigned.1.0.0.nupkg"
MODIFIED = "Newtonsoft.Json.12.0.2__MODIFIED-psmdcp-removed.nupkg"


def _hash(path: Path, algorithm: str) -> bytes:
    with open(path, "rb") as f:
        layout = read_layout(f)
        return package_hash(f, layout, find_signature_entry(f, layout), algorithm)


def _view(path: Path) -> bytes:
    with open(path, "rb") as f:
        layout = read_layout(f)
        return _unsigned_view(f, layout, find_signature_entry(f, layout))


def _unsigned_view(f: BinaryIO, layout: ArchiveLayout, entry: SignatureEntry) -> bytes:
    out = io.BytesIO()
    feed_plan(f, unsigned_view_plan(f, layout, entry), out.write)
    return out.getvalue()


@pytest.mark.parametrize("row", signed_rows(), ids=[r.path.name for r in signed_rows()])
def test_real_vectors_rehash_to_manifest_hash(row: ManifestRow) -> None:
    algorithm, b64 = row.package_hash.split(":", 1)
    got = base64.b64encode(_hash(row.path, algorithm)).decode()
    if row.path.name == MODIFIED:
        # A zip entry was deleted after signing: the hash must differ, and equal what the manifest computed.
        assert got != b64
        assert row.integrity == f"package-hash-MISMATCH(computed {algorithm}:{got})"
    else:
        assert got == b64


@pytest.mark.parametrize("row", signed_rows(), ids=[r.path.name for r in signed_rows()])
def test_view_is_the_unsigned_package(row: ManifestRow) -> None:
    assert hashlib.sha256(_view(row.path)).hexdigest() == row.unsigned_content_sha256


@pytest.mark.parametrize("package", signed_packages(), ids=ids(signed_packages()))
def test_embedded_hash_matches_view(package: Path) -> None:
    algorithm, expected = embedded_hash(package)
    if package.name == MODIFIED:
        assert _hash(package, algorithm) != expected
    else:
        assert _hash(package, algorithm) == expected


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
def test_package_hash_is_digest_of_the_view(algorithm: str) -> None:
    assert _hash(SIGNED, algorithm) == hashlib.new(algorithm, _view(SIGNED)).digest()


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="md5"):
        _hash(SIGNED, "md5")


def test_antlr_view_is_the_original_upload(vectors: Path) -> None:
    unsigned = (vectors / "real" / "Antlr.3.5.0.2__unsigned.nupkg").read_bytes()
    assert _view(vectors / "real" / "Antlr.3.5.0.2.nupkg") == unsigned


@pytest.mark.parametrize("order", ["local", "central", "both"])
@pytest.mark.parametrize("move", [tamper.move_signature_first, tamper.move_signature_to_middle])
def test_moved_signature_entry_hashes_equal(tmp_path: Path, order: str, move: object) -> None:
    package = VECTORS / "fixtures" / "nuget.versioning.5.0.0.nupkg"
    dst = tmp_path / "moved.nupkg"
    move(package, dst, order=order)  # type: ignore[operator]
    with open(dst, "rb") as f:
        layout = read_layout(f)
        entry = find_signature_entry(f, layout)
    if order in ("central", "both"):
        assert entry.index != len(layout.headers) - 1
    if order in ("local", "both"):
        assert entry.central.local_header_offset < max(h.local_header_offset for h in layout.headers)
    assert dst.read_bytes() != package.read_bytes()
    algorithm, expected = embedded_hash(package)
    assert _hash(dst, algorithm) == expected


@pytest.mark.parametrize(
    "change",
    [
        tamper.delete_entry,
        tamper.add_entry,
        tamper.append_to_entry,
        tamper.truncate_entry,
        tamper.change_entry_time,
        tamper.set_eocd_comment,
        tamper.append_trailing_bytes,
    ],
    ids=lambda f: f.__name__,
)
def test_tampering_changes_the_hash(tmp_path: Path, change: object) -> None:
    dst = tmp_path / "tampered.nupkg"
    change(SIGNED, dst)  # type: ignore[operator]
    assert _hash(dst, "sha256") != _hash(SIGNED, "sha256")


@pytest.mark.parametrize(
    "change",
    [tamper.randomize_signature, lambda s, d: tamper.set_signature_field(s, d, field="flags", value=0)],
    ids=["random-signature-bytes", "identity-patch"],
)
def test_signature_bytes_are_not_hashed(tmp_path: Path, change: object) -> None:
    dst = tmp_path / "changed.nupkg"
    change(SIGNED, dst)  # type: ignore[operator]
    assert _hash(dst, "sha256") == _hash(SIGNED, "sha256")


def test_content_hash_signed_is_sha512_of_view() -> None:
    assert content_hash(SIGNED) == base64.b64encode(hashlib.sha512(_view(SIGNED)).digest()).decode()


@pytest.mark.parametrize("row", unsigned_rows(), ids=[r.path.name for r in unsigned_rows()])
def test_content_hash_unsigned_is_sha512_of_file(row: ManifestRow) -> None:
    expected = base64.b64encode(hashlib.sha512(row.path.read_bytes()).digest()).decode()
    assert content_hash(row.path) == expected


def test_content_hash_skips_entry_field_checks(tmp_path: Path) -> None:
    dst = tmp_path / "deflated.nupkg"
    tamper.deflate_signature(SIGNED, dst)
    with open(dst, "rb") as f:
        layout = read_layout(f)
        entry = find_signature_entry(f, layout, check_fields=False)
        view = _unsigned_view(f, layout, entry)
    assert view == _view(SIGNED)
    assert content_hash(dst) == content_hash(SIGNED)


def test_view_with_prefix_bytes_hashes_them_and_rebases_to_zero() -> None:
    data = SIGNED.read_bytes()
    with open(SIGNED, "rb") as f:
        layout = read_layout(f)
        entry = find_signature_entry(f, layout)
        plain = _unsigned_view(f, layout, entry)
    # Put 5 bytes in front and shift every stored offset, so the archive stays consistent.
    shifted = bytearray(b"JUNK!" + data)
    for header in layout.headers:
        struct.pack_into("<I", shifted, 5 + header.position + 42, header.local_header_offset + 5)
    eocd = 5 + layout.eocd.position
    struct.pack_into("<I", shifted, eocd + 16, layout.eocd.cd_offset + 5)
    f2 = io.BytesIO(bytes(shifted))
    layout2 = read_layout(f2)
    view = _unsigned_view(f2, layout2, find_signature_entry(f2, layout2))
    assert view[:5] == b"JUNK!"
    # The stored offsets are rebased from 0 (spec §2.2 step 4 note), so the rest equals the plain view
    # except the EOCD CD offset, which is the stored value minus the signature entry size.
    assert len(view) == len(plain) + 5
    assert view[5:-6] == plain[:-6]


def test_entry_offset_beyond_central_directory_is_a_format_error() -> None:
    data = bytearray(SIGNED.read_bytes())
    with open(SIGNED, "rb") as f:
        layout = read_layout(f)
    struct.pack_into("<I", data, layout.headers[0].position + 42, layout.eocd.position + 100)
    f2 = io.BytesIO(bytes(data))
    layout2 = read_layout(f2)
    with pytest.raises(PackageFormatError, match="after the start of the central directory"):
        package_hash(f2, layout2, find_signature_entry(f2, layout2), "sha256")


def test_feed_plan_reports_truncation() -> None:
    f = io.BytesIO(b"0123456789")
    with pytest.raises(PackageFormatError, match="offset 5"):
        hashing.feed_plan(f, [hashing.FileRange(5, 20)], lambda _chunk: None)


def test_large_ranges_stream_in_chunks() -> None:
    size = 3 * hashing.CHUNK_SIZE + 123
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    chunks: list[int] = []
    digest = hashlib.sha256()

    def sink(chunk: memoryview) -> None:
        chunks.append(len(chunk))
        digest.update(chunk)

    hashing.feed_plan(io.BytesIO(payload), [hashing.FileRange(0, size)], sink)
    assert chunks == [hashing.CHUNK_SIZE] * 3 + [123]
    assert digest.digest() == hashlib.sha256(payload).digest()


# --- prefetch ----------------------------------------------------------------------------------------------------


@pytest.fixture
def hashing_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The name of the thread of every real hash pass (prefetches a test leaves running are stopped after it)."""
    yield from hash_pass_threads(monkeypatch)


def test_a_prefetched_hash_is_used_instead_of_reading_again(tmp_path: Path, hashing_threads: list[str]) -> None:
    package = tmp_path / "p.nupkg"
    package.write_bytes(SIGNED.read_bytes())
    expected = {name: hashlib.new(name, _view(package)).digest() for name in ("sha256", "sha512")}
    hashing_threads.clear()
    assert hashing.prefetch(package, ("sha256", "sha512"))
    assert _hash(package, "sha512") == expected["sha512"]
    assert hashing_threads == ["nuseal-prefetch-hash"]
    # Used once: the next hash of the same file reads it again, here.
    assert _hash(package, "sha256") == expected["sha256"]
    assert hashing_threads == ["nuseal-prefetch-hash", "MainThread"]


def test_a_prefetch_of_a_file_changed_since_is_not_used(tmp_path: Path, hashing_threads: list[str]) -> None:
    package = tmp_path / "p.nupkg"
    package.write_bytes(SIGNED.read_bytes())
    assert hashing.prefetch(package)
    os.utime(package, ns=(0, 10**18))  # a rewrite changes the mtime (and usually the size or inode)
    assert _hash(package, "sha256") == hashlib.sha256(_view(package)).digest()
    assert hashing_threads.count("MainThread") == 1


def test_nothing_is_prefetched_for_unsigned_or_unreadable_files(tmp_path: Path) -> None:
    unsigned = tmp_path / "u.nupkg"
    with zipfile.ZipFile(unsigned, "w") as zf:
        zf.writestr("a.txt", "a")
    junk = tmp_path / "junk.nupkg"
    junk.write_bytes(b"not a zip")
    assert not hashing.prefetch(unsigned)
    assert not hashing.prefetch(junk)
    assert not hashing.prefetch(tmp_path / "missing.nupkg")
    assert not hashing.prefetch(SIGNED, ("md5",))


def test_unused_prefetches_are_forgotten(tmp_path: Path, hashing_threads: list[str]) -> None:
    copies = []
    for index in range(hashing._MAX_PREFETCHES + 3):
        copy = tmp_path / f"p{index}.nupkg"
        copy.write_bytes(SIGNED.read_bytes())
        assert hashing.prefetch(copy)
        copies.append(copy)
    assert len(hashing._prefetches) == hashing._MAX_PREFETCHES
    assert _hash(copies[-1], "sha256") == hashlib.sha256(_view(copies[-1])).digest()
    assert _hash(copies[0], "sha256") == hashlib.sha256(_view(copies[0])).digest()  # forgotten: hashed here
    assert hashing_threads.count("MainThread") == 1


@pytest.mark.parametrize("algorithm", [HashAlgorithmName.SHA256, HashAlgorithmName.SHA384, HashAlgorithmName.SHA512])
def test_a_prefetch_hashes_with_the_algorithm_the_signature_names(
    algorithm: HashAlgorithmName, pki: TestPki, tmp_path: Path, hashing_threads: list[str]
) -> None:
    package = make_package(tmp_path / "p.nupkg")
    sign_package(package, package, AuthorSignRequest(signer_for(pki.leaf), SignOptions(hash_algorithm=algorithm)),
                 timestamper=None, now=datetime.now(UTC))
    hashing_threads.clear()
    assert hashing.prefetch(package)  # SIGNED_ALGORITHM: the signature's, not always SHA-256
    (job,) = hashing._prefetches.values()
    assert job.algorithms == (algorithm.hashlib_name,)
    assert _hash(package, algorithm.hashlib_name) == hashlib.new(algorithm.hashlib_name, _view(package)).digest()
    assert hashing_threads == ["nuseal-prefetch-hash"]  # the verifier's hash was the prefetched one


def test_signed_algorithm_with_extra_algorithms_hashes_each_once(tmp_path: Path, hashing_threads: list[str]) -> None:
    package = tmp_path / "p.nupkg"
    package.write_bytes(SIGNED.read_bytes())  # signed with SHA-256
    assert hashing.prefetch(package, (hashing.SIGNED_ALGORITHM, "sha512", "sha256"))
    (job,) = hashing._prefetches.values()
    assert job.algorithms == ("sha256", "sha512")


def test_a_second_prefetch_of_the_same_file_joins_the_first(tmp_path: Path, hashing_threads: list[str]) -> None:
    package = tmp_path / "p.nupkg"
    package.write_bytes(SIGNED.read_bytes())
    assert hashing.prefetch(package, ("sha256", "sha512"))
    (first,) = hashing._prefetches.values()
    assert hashing.prefetch(package, ("sha256",))  # already covered: nothing new starts
    assert list(hashing._prefetches.values()) == [first]
    assert _hash(package, "sha256") == hashlib.sha256(_view(package)).digest()
    assert hashing_threads == ["nuseal-prefetch-hash"]
    assert hashing.prefetch(package)  # taken since: this one starts a new pass
    assert hashing._prefetches and next(iter(hashing._prefetches.values())) is not first


def test_stopped_prefetches_end_and_are_forgotten(tmp_path: Path, hashing_threads: list[str]) -> None:
    packages = []
    for index in range(3):
        packages.append(tmp_path / f"p{index}.nupkg")
        packages[-1].write_bytes(SIGNED.read_bytes())
        assert hashing.prefetch(packages[-1])
    threads = [job.thread for job in hashing._prefetches.values()]
    hashing.stop_prefetches()
    assert hashing._prefetches == {}
    assert not any(thread is not None and thread.is_alive() for thread in threads)
    assert _hash(packages[0], "sha256") == hashlib.sha256(_view(packages[0])).digest()
    assert hashing_threads.count("MainThread") == 1  # nothing left to take: hashed here


def test_a_stopped_hash_pass_ends_before_its_next_window() -> None:
    payload = b"x" * (3 * hashing.CHUNK_SIZE)
    windows = []

    def stopped() -> bool:
        windows.append(1)
        return len(windows) > 1

    with pytest.raises(hashing._Stopped):
        hashing._plan_digests(io.BytesIO(payload), [hashing.FileRange(0, len(payload))], ("sha256",), stopped)
    assert len(windows) == 2  # the first window was hashed, the second was not


def test_the_switch_interval_is_short_while_a_prefetch_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []
    real = hashing._plan_digests

    def spy(f: BinaryIO, plan: list[hashing.Segment], algorithms: tuple[str, ...], *rest: Any) -> tuple[bytes, ...]:
        seen.append(sys.getswitchinterval())
        return real(f, plan, algorithms, *rest)

    hashing.stop_prefetches()  # none left running by other tests
    monkeypatch.setattr(hashing, "_plan_digests", spy)
    monkeypatch.setattr(hashing, "_prefetches", {})
    before = sys.getswitchinterval()
    package = tmp_path / "p.nupkg"
    package.write_bytes(SIGNED.read_bytes())
    assert hashing.prefetch(package)
    (job,) = hashing._prefetches.values()
    assert job.thread is not None
    job.thread.join()
    assert seen == [pytest.approx(headstart.SWITCH_INTERVAL)]
    assert sys.getswitchinterval() == before  # restored when the last prefetch ended
