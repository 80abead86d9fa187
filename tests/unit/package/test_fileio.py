"""fileio: the large-range copy (O_DIRECT and its fallback), the background copy, and SignedPackageWriter."""

from __future__ import annotations

import errno
import io
import os
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

from nuseal.package import fileio
from nuseal.package.archive import SignedPackageWriter, remove_signature, write_signed
from nuseal.package.fileio import DIRECT_COPY_THRESHOLD, BackgroundPrefixCopy, CopyCancelled, copy_prefix
from nuseal.package.zipformat import dos_datetime

WHEN = datetime(2024, 5, 6, 7, 8, 10)
# Above the direct-copy threshold and deliberately not a multiple of the 4 KiB alignment.
LARGE = DIRECT_COPY_THRESHOLD + 3 * 4096 + 123


def _source(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / "source.bin"
    path.write_bytes(data)
    return path, data


def _copy(src: Path, dst: Path, length: int) -> None:
    dst.touch()
    fd = os.open(src, os.O_RDONLY)
    try:
        copy_prefix(fd, dst, length)
    finally:
        os.close(fd)


def _accepts_direct_io(folder: Path) -> bool:
    """Whether this file system takes an aligned O_DIRECT write (tmpfs before Linux 6.6 does not)."""
    if not hasattr(os, "O_DIRECT"):
        return False
    probe = folder / "probe"
    probe.touch()
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_DIRECT)
    except OSError:
        return False
    import mmap

    try:
        with mmap.mmap(-1, 4096) as block:
            os.pwrite(fd, block, 0)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
        probe.unlink()


@pytest.mark.parametrize("length", [0, 1, 4096, 100_000, LARGE])
def test_copy_prefix_copies_exactly_the_range(tmp_path: Path, length: int) -> None:
    src, data = _source(tmp_path, LARGE + 5000)
    dst = tmp_path / "out.bin"
    _copy(src, dst, length)
    assert dst.read_bytes() == data[:length]


def test_large_copies_use_direct_io_where_the_file_system_allows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not _accepts_direct_io(tmp_path):
        pytest.fail(f"{tmp_path} refuses O_DIRECT; this test needs a disk-backed temporary folder")
    reached: list[int] = []
    real = fileio._copy_direct

    def spy(*args: object) -> int:
        reached.append(real(*args))  # type: ignore[arg-type]
        return reached[-1]

    monkeypatch.setattr(fileio, "_copy_direct", spy)
    src, data = _source(tmp_path, LARGE)
    dst = tmp_path / "out.bin"
    _copy(src, dst, LARGE)
    assert reached == [LARGE - LARGE % 4096]
    assert dst.read_bytes() == data


def test_refused_direct_open_falls_back_to_buffered_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def no_direct(path: object, flags: int, *args: object) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", no_direct)
    src, data = _source(tmp_path, LARGE)
    dst = tmp_path / "out.bin"
    _copy(src, dst, LARGE)
    assert dst.read_bytes() == data


def test_refused_first_direct_write_falls_back_to_buffered_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_pwrite = os.pwrite
    calls: list[int] = []

    def refuse_first(fd: int, data: object, offset: int) -> int:
        calls.append(offset)
        if len(calls) == 1:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "pwrite", refuse_first)
    src, data = _source(tmp_path, LARGE)
    dst = tmp_path / "out.bin"
    _copy(src, dst, LARGE)
    assert dst.read_bytes() == data
    assert len(calls) > 1


def test_a_write_error_after_the_first_block_is_not_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_pwrite = os.pwrite

    def disk_full(fd: int, data: object, offset: int) -> int:
        if offset > 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "pwrite", disk_full)
    src, _ = _source(tmp_path, LARGE)
    with pytest.raises(OSError) as caught:
        _copy(src, tmp_path / "out.bin", LARGE)
    assert caught.value.errno == errno.ENOSPC


def test_background_copy_reports_a_short_source(tmp_path: Path) -> None:
    src, _ = _source(tmp_path, 1000)
    dst = tmp_path / "out.bin"
    dst.touch()
    fd = os.open(src, os.O_RDONLY)
    try:
        copy = BackgroundPrefixCopy(fd, dst, 5000)
        with pytest.raises(OSError, match="expected 5000 bytes"):
            copy.wait()
    finally:
        os.close(fd)


def test_cancelled_copy_stops_early(tmp_path: Path) -> None:
    import threading

    src, _ = _source(tmp_path, LARGE)
    dst = tmp_path / "out.bin"
    dst.touch()
    cancel = threading.Event()
    cancel.set()
    fd = os.open(src, os.O_RDONLY)
    try:
        with pytest.raises(CopyCancelled):
            copy_prefix(fd, dst, LARGE, cancel)
    finally:
        os.close(fd)
    assert dst.stat().st_size == 0


# --- SignedPackageWriter ------------------------------------------------------------------------------------


def _large_package(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("Large.nuspec", "<package><metadata><id>Large</id><version>1.0.0</version></metadata></package>")
        zf.writestr("content/blob.bin", os.urandom(LARGE))
        zf.writestr("content/tail.txt", "after the blob")
    return path


def test_writer_output_equals_the_streamed_signed_package(tmp_path: Path) -> None:
    src = _large_package(tmp_path / "Large.1.0.0.nupkg")
    signature = os.urandom(3000)
    expected = io.BytesIO()
    with open(src, "rb") as f:
        write_signed(f, expected, signature, dos_datetime(2024, 5, 6, 7, 8, 10))
    dst = tmp_path / "signed.nupkg"
    with SignedPackageWriter(src, dst) as writer:
        writer.finish(signature, when=WHEN)
    assert dst.read_bytes() == expected.getvalue()
    with zipfile.ZipFile(dst) as zf:
        assert zf.testzip() is None
        assert zf.read(".signature.p7s") == signature
    # Removing it again (the same fast copy) gives back the original bytes.
    unsigned = tmp_path / "unsigned.nupkg"
    remove_signature(dst, unsigned)
    assert unsigned.read_bytes() == src.read_bytes()


def test_writer_signs_in_place(tmp_path: Path) -> None:
    src = _large_package(tmp_path / "Large.1.0.0.nupkg")
    original = src.read_bytes()
    with SignedPackageWriter(src, src) as writer:
        writer.finish(b"sig", when=WHEN)
    remove_signature(src, tmp_path / "back.nupkg")
    assert (tmp_path / "back.nupkg").read_bytes() == original


def test_writer_leaves_nothing_behind_on_error(tmp_path: Path) -> None:
    src = _large_package(tmp_path / "Large.1.0.0.nupkg")
    dst = tmp_path / "out" / "signed.nupkg"
    dst.parent.mkdir()
    dst.write_bytes(b"previous")
    with pytest.raises(ValueError, match="timestamp failed"), SignedPackageWriter(src, dst):
        raise ValueError("timestamp failed")
    assert dst.read_bytes() == b"previous"
    assert sorted(p.name for p in dst.parent.iterdir()) == ["signed.nupkg"]


def test_writer_left_without_finish_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    src = _large_package(tmp_path / "Large.1.0.0.nupkg")
    dst = tmp_path / "out" / "signed.nupkg"
    dst.parent.mkdir()
    with pytest.raises(RuntimeError, match="without finish"), SignedPackageWriter(src, dst):
        pass
    assert list(dst.parent.iterdir()) == []


def test_writer_replaces_a_signature_of_a_large_package_in_one_pass(tmp_path: Path) -> None:
    src = _large_package(tmp_path / "Large.1.0.0.nupkg")
    signed = tmp_path / "signed.nupkg"
    with SignedPackageWriter(src, signed) as writer:
        writer.finish(os.urandom(2000), when=WHEN)
    new_signature = os.urandom(2500)
    resigned = tmp_path / "resigned.nupkg"
    with SignedPackageWriter(signed, resigned, replace_signature=True) as writer:
        writer.finish(new_signature, when=WHEN)
    expected = io.BytesIO()
    with open(src, "rb") as f:
        write_signed(f, expected, new_signature, dos_datetime(2024, 5, 6, 7, 8, 10))
    assert resigned.read_bytes() == expected.getvalue()
