"""Signing a small package: the in-memory path of ``SignedPackageWriter`` and ``fileio.AtomicFile`` (issue 12).

The bytes must be those of the streamed writer (``write_signed``); the output must be all-or-nothing and durable as
before (fsync before the rename, the folder after it unless the caller groups folder fsyncs); and the path must stay
short: one open of the source, one of the temporary file.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

from nuseal.package import archive, fileio
from nuseal.package.archive import SignedPackageWriter, write_signed
from nuseal.package.fileio import IN_MEMORY_LIMIT, AtomicFile
from nuseal.package.zipformat import dos_datetime

WHEN = datetime(2024, 5, 6, 7, 8, 10)
TMP_NAME = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp")


def _package(path: Path, size: int = 20_000) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("Small.nuspec", "<package><metadata><id>Small</id><version>1.0.0</version></metadata></package>")
        zf.writestr("lib/net8.0/Small.dll", os.urandom(size), compress_type=zipfile.ZIP_STORED)
        zf.writestr("readme.txt", "after the dll")
    return path


def _streamed(src: Path, signature: bytes) -> bytes:
    expected = io.BytesIO()
    with open(src, "rb") as f:
        write_signed(f, expected, signature, dos_datetime(2024, 5, 6, 7, 8, 10))
    return expected.getvalue()


@pytest.mark.parametrize("size", [0, 5_000, IN_MEMORY_LIMIT - 4096, IN_MEMORY_LIMIT + 4096])
def test_output_and_hash_equal_the_streamed_writer_on_both_sides_of_the_limit(tmp_path: Path, size: int) -> None:
    src = _package(tmp_path / "Small.1.0.0.nupkg", size)
    signature = os.urandom(3000)
    dst = tmp_path / "signed.nupkg"
    with SignedPackageWriter(src, dst) as writer:
        assert (writer._data is not None) == (src.stat().st_size <= IN_MEMORY_LIMIT)
        digest = writer.package_hash("sha256")
        assert writer.package_hash("sha512") == hashlib.sha512(src.read_bytes()).digest()
        writer.finish(signature, when=WHEN)
    # An unsigned package's hash (spec §2.1) is the hash of its bytes.
    assert digest == hashlib.sha256(src.read_bytes()).digest()
    assert dst.read_bytes() == _streamed(src, signature)
    with zipfile.ZipFile(dst) as zf:
        assert zf.testzip() is None and zf.read(".signature.p7s") == signature


def test_a_signed_package_is_resigned_in_memory_without_its_old_signature(tmp_path: Path) -> None:
    src = _package(tmp_path / "Small.1.0.0.nupkg")
    signed, resigned = tmp_path / "signed.nupkg", tmp_path / "resigned.nupkg"
    with SignedPackageWriter(src, signed) as writer:
        writer.finish(b"first", when=WHEN)
    with SignedPackageWriter(signed, resigned, replace_signature=True) as writer:
        assert writer._data is not None
        assert writer.package_hash("sha256") == hashlib.sha256(src.read_bytes()).digest()
        writer.finish(b"second signature", when=WHEN)
    assert resigned.read_bytes() == _streamed(src, b"second signature")


def test_in_place_signing_and_permission_bits(tmp_path: Path) -> None:
    src = _package(tmp_path / "Small.1.0.0.nupkg")
    src.chmod(0o640)
    original = src.read_bytes()
    with SignedPackageWriter(src, src) as writer:
        writer.finish(b"sig", when=WHEN)
    assert src.stat().st_mode & 0o7777 == 0o640
    unsigned = tmp_path / "back.nupkg"
    archive.remove_signature(src, unsigned)
    assert unsigned.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Small.1.0.0.nupkg", "back.nupkg"]


def test_one_open_of_the_source_and_one_of_the_temporary_file(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    src = _package(tmp_path / "Small.1.0.0.nupkg")
    dst = tmp_path / "out" / "signed.nupkg"
    dst.parent.mkdir()
    opened: list[str] = []
    real_open = os.open

    def spy(path: str, flags: int, mode: int = 0o777) -> int:
        opened.append(os.path.basename(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", spy)
    with SignedPackageWriter(src, dst, sync_folder=False) as writer:
        writer.package_hash("sha256")
        writer.finish(b"sig", when=WHEN)
    assert opened[0] == src.name and len(opened) == 2
    match = TMP_NAME.fullmatch(opened[1])
    assert match is not None and match["name"] == "signed.nupkg"
    assert os.listdir(dst.parent) == ["signed.nupkg"]


@pytest.mark.parametrize("where", ["before the hash", "after the hash"])
def test_an_error_leaves_the_destination_and_the_folder_as_they_were(tmp_path: Path, where: str) -> None:
    src = _package(tmp_path / "Small.1.0.0.nupkg")
    dst = tmp_path / "out" / "signed.nupkg"
    dst.parent.mkdir()
    dst.write_bytes(b"previous")
    with pytest.raises(ValueError, match="timestamp failed"), SignedPackageWriter(src, dst) as writer:
        if where == "after the hash":
            writer.package_hash("sha256")
        raise ValueError("timestamp failed")
    assert dst.read_bytes() == b"previous"
    assert os.listdir(dst.parent) == ["signed.nupkg"]


def test_a_failed_write_or_fsync_deletes_the_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _package(tmp_path / "Small.1.0.0.nupkg")
    dst = tmp_path / "out" / "signed.nupkg"
    dst.parent.mkdir()

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"), SignedPackageWriter(src, dst) as writer:
        writer.finish(b"sig", when=WHEN)
    assert os.listdir(dst.parent) == []


@pytest.mark.parametrize(("durable", "sync_folder", "expected"), [
    (True, True, ["file", "rename", "dir"]), (True, False, ["file", "rename"]), (False, True, ["rename"]),
])
def test_fsync_before_the_rename_and_the_folder_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool, sync_folder: bool, expected: list[str]
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file")
        real_fsync(fd)

    def replace(a: str, b: str) -> None:
        events.append("rename")
        real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    src = _package(tmp_path / "Small.1.0.0.nupkg")
    with SignedPackageWriter(src, tmp_path / "signed.nupkg", durable=durable, sync_folder=sync_folder) as writer:
        writer.finish(b"sig", when=WHEN)
    assert events == expected


def test_atomic_file_names_abort_and_commit(tmp_path: Path) -> None:
    first, second = AtomicFile(tmp_path / "a.bin"), AtomicFile(tmp_path / "a.bin")
    assert first.tmp != second.tmp and TMP_NAME.fullmatch(os.path.basename(first.tmp))
    assert os.stat(first.tmp).st_mode & 0o777 == 0o600
    os.write(first.fd, b"kept")
    first.commit(mode=0o644)
    second.abort()
    assert os.listdir(tmp_path) == ["a.bin"]
    assert (tmp_path / "a.bin").read_bytes() == b"kept" and (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644
    with pytest.raises(FileNotFoundError):
        AtomicFile(tmp_path / "missing" / "a.bin")


def test_pwrite_all_writes_every_piece_in_order(tmp_path: Path) -> None:
    pieces = [os.urandom(n) for n in (0, 1, 4096, 70_000, 3)] * 300  # more pieces than one pwritev takes
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        assert fileio.pwrite_all(fd, [b"x" * 10]) == 10
        end = fileio.pwrite_all(fd, pieces, 10)
    finally:
        os.close(fd)
    assert (tmp_path / "out").read_bytes() == b"x" * 10 + b"".join(pieces)
    assert end == 10 + sum(map(len, pieces))


def test_a_fifo_source_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.nupkg"
    os.mkfifo(fifo)
    # The in-memory reader must not block on the FIFO; the stream path then opens it (a writer is there) and the
    # archive checks refuse what it reads.
    writer_fd = os.open(fifo, os.O_RDWR)  # holds the pipe open so that the stream path's open does not block
    try:
        os.write(writer_fd, b"not a zip")
        with pytest.raises(OSError, match="not seekable"), SignedPackageWriter(fifo, tmp_path / "out.nupkg"):
            pass
    finally:
        os.close(writer_fd)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.nupkg"]
