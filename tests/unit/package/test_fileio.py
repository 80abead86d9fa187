"""fileio: mapped reads of large ranges, the one-pass copy (O_DIRECT writer thread and its fallbacks), durable
outputs, and SignedPackageWriter."""

from __future__ import annotations

import errno
import hashlib
import io
import mmap
import os
import threading
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

from nuseal.errors import PackageFormatError
from nuseal.package import fileio
from nuseal.package.archive import SignedPackageWriter, remove_signature, write_signed
from nuseal.package.fileio import DIRECT_COPY_THRESHOLD, MAP_THRESHOLD, MAP_WINDOW, RangeCopier
from nuseal.package.zipformat import dos_datetime

WHEN = datetime(2024, 5, 6, 7, 8, 10)
# Above the direct-copy threshold, more than one mapping window, and deliberately not a multiple of 4 KiB.
LARGE = max(DIRECT_COPY_THRESHOLD, MAP_WINDOW) + MAP_WINDOW // 2 + 3 * 4096 + 123


def _source(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / "source.bin"
    path.write_bytes(data)
    return path, data


def _copy(src: Path, dst: Path, ranges: list[tuple[int, int]], sink: fileio.Sink | None = None) -> int:
    dst.touch()
    with open(src, "rb") as f:
        return RangeCopier.copy(f, ranges, dst, 0, sink)


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
    try:
        with mmap.mmap(-1, 4096) as block:
            os.pwrite(fd, block, 0)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
        probe.unlink()


# --- reading ------------------------------------------------------------------------------------------------------


def test_large_ranges_are_mapped_in_windows_and_unmapped_as_they_go(tmp_path: Path) -> None:
    src, data = _source(tmp_path, LARGE + 5000)
    start, end = 4097, LARGE + 11  # neither end page-aligned
    seen: list[tuple[int, int, bool]] = []
    digest = hashlib.sha256()
    with open(src, "rb") as f:
        for window in fileio.windows(f, start, end):
            seen.append((window.offset, len(window.view), window.mapped))
            digest.update(window.view)
            window.close()
            with pytest.raises(ValueError, match="released"):
                len(window.view)
    assert all(mapped for _, _, mapped in seen) and len(seen) >= 2
    assert max(size for _, size, _ in seen) <= MAP_WINDOW
    assert [offset for offset, _, _ in seen] == [start] + [start + sum(s for _, s, _ in seen[:i])
                                                           for i in range(1, len(seen))]
    assert digest.digest() == hashlib.sha256(data[start:end]).digest()


def test_small_ranges_and_unmappable_files_are_read(tmp_path: Path) -> None:
    src, data = _source(tmp_path, MAP_THRESHOLD + 10)
    with open(src, "rb") as f:
        small = list(fileio.windows(f, 10, MAP_THRESHOLD - 1))
        assert not any(w.mapped for w in small)
    pipe = io.BytesIO(data)  # no file descriptor: read whatever the size
    chunks = [bytes(w.view) for w in fileio.windows(pipe, 0, len(data))]
    assert b"".join(chunks) == data and len(chunks) == 2


@pytest.mark.parametrize("size", [100, MAP_THRESHOLD + 100])
def test_a_file_shorter_than_the_range_is_a_format_error_naming_the_offset(tmp_path: Path, size: int) -> None:
    src, _ = _source(tmp_path, size)
    with open(src, "rb") as f, pytest.raises(PackageFormatError, match=r"Truncated zip archive.*offset 5 "):
        for window in fileio.windows(f, 5, size + 10):
            window.close()


# --- copying ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 4096, 100_000, MAP_THRESHOLD + 7, LARGE])
def test_copy_writes_exactly_the_range_and_feeds_the_sink_the_same_bytes(tmp_path: Path, length: int) -> None:
    src, data = _source(tmp_path, LARGE + 5000)
    dst = tmp_path / "out.bin"
    digest = hashlib.sha256()
    assert _copy(src, dst, [(0, length)], digest.update) == length
    assert dst.read_bytes() == data[:length]
    assert digest.digest() == hashlib.sha256(data[:length]).digest()


def test_several_ranges_go_to_consecutive_output_offsets(tmp_path: Path) -> None:
    src, data = _source(tmp_path, LARGE + 5000)
    ranges = [(0, 3000), (5000, LARGE), (LARGE + 100, LARGE + 4000)]
    dst = tmp_path / "out.bin"
    written = _copy(src, dst, ranges)
    expected = b"".join(data[a:b] for a, b in ranges)
    assert written == len(expected) and dst.read_bytes() == expected


def test_large_copies_use_direct_io_where_the_file_system_allows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not _accepts_direct_io(tmp_path):
        pytest.fail(f"{tmp_path} refuses O_DIRECT; this test needs a disk-backed temporary folder")
    direct: list[int] = []
    real_pwrite = os.pwrite
    direct_fds: set[int] = set()
    real_open = os.open

    def spy_open(path: object, flags: int, *args: object) -> int:
        fd = real_open(path, flags, *args)  # type: ignore[arg-type]
        if flags & os.O_DIRECT:
            direct_fds.add(fd)
        return fd

    def spy_pwrite(fd: int, data: memoryview, offset: int) -> int:
        if fd in direct_fds:
            direct.append(len(data))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "pwrite", spy_pwrite)
    src, data = _source(tmp_path, LARGE)
    dst = tmp_path / "out.bin"
    _copy(src, dst, [(0, LARGE)])
    assert sum(direct) == LARGE - LARGE % 4096
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
    _copy(src, dst, [(0, LARGE)])
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
    _copy(src, dst, [(0, LARGE)])
    assert dst.read_bytes() == data
    assert len(calls) > 1


@pytest.mark.parametrize("size", [100_000, LARGE])
def test_a_write_error_is_not_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    real_pwrite = os.pwrite

    def disk_full(fd: int, data: object, offset: int) -> int:
        if offset > 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "pwrite", disk_full)
    src, _ = _source(tmp_path, size)
    with pytest.raises(OSError) as caught:
        _copy(src, tmp_path / "out.bin", [(0, 4096), (4096, size)])
    assert caught.value.errno == errno.ENOSPC
    assert not [t for t in threading.enumerate() if t.name == "nuseal-writer"]


def test_a_failing_sink_stops_the_copy_and_the_writer_thread(tmp_path: Path) -> None:
    src, _ = _source(tmp_path, LARGE)
    fed: list[int] = []

    def sink(view: memoryview) -> None:
        fed.append(len(view))
        if len(fed) == 2:
            raise ValueError("hash failed")

    with pytest.raises(ValueError, match="hash failed"):
        _copy(src, tmp_path / "out.bin", [(0, LARGE)], sink)
    assert len(fed) == 2
    assert not [t for t in threading.enumerate() if t.name == "nuseal-writer"]


def test_small_copies_start_no_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []
    real_start = threading.Thread.start

    def spy(self: threading.Thread) -> None:
        started.append(self.name)
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", spy)
    src, data = _source(tmp_path, DIRECT_COPY_THRESHOLD - 1)
    dst = tmp_path / "out.bin"
    _copy(src, dst, [(0, len(data))])
    assert dst.read_bytes() == data and started == []


# --- durable outputs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("durable", [True, False])
def test_atomic_output_fsyncs_file_and_folder_only_when_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append("dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    dst = tmp_path / "out.nupkg"
    with fileio.atomic_output(dst, durable=durable) as out:
        out.write(b"data")
    assert dst.read_bytes() == b"data"
    assert synced == (["file", "dir"] if durable else [])


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
