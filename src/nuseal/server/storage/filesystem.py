"""Blob store in a local folder (the embedded default, ``file://{data}/blobs``).

Staged files are written and fsynced under ``incoming/``; publishing hard-links them to the final key (a link
never replaces an existing file, so two publishers of the same key cannot clobber each other), fsyncs the folder
and removes the staged name. Readers therefore only ever see complete files.

``put_new(..., durable=False)`` (a re-signing batch) leaves the two fsyncs to :meth:`FilesystemBlobStore.sync`,
called once for the whole batch before the commit that references the blobs: one thread then fsyncs every file and
folder in a row, and after the first one, which commits the file system's journal with every link of the batch,
the others find little left to write (measured here: ~0.3-0.8 ms of CPU less per blob than two fsyncs each, and
less waiting). Until then the blobs are complete for readers but not durable: a crash makes orphans that no row
references (their key names new bytes), as a crash before the commit always did.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from nuseal.server.storage.base import (
    CHUNK_SIZE,
    STAGING_PREFIX,
    BlobInfo,
    BlobNotFoundError,
    BlobReader,
    HashingReader,
    PutResult,
    StagedBlob,
    StorageError,
    check_key,
    resolve_range,
)

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class FilesystemBlobStore:
    """:class:`~nuseal.server.storage.base.BlobStore` on a folder of plain files."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def local_path(self, key: str) -> Path:
        """Where the blob ``key`` is (or would be) on disk: the HTTP layer hands it to a file response."""
        return self._path(key)

    def check(self) -> None:
        try:
            (self.root / STAGING_PREFIX).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the blob folder '{self.root}': {exc.strerror}") from None
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"the blob folder '{self.root}' is not writable")

    def stat(self, key: str) -> BlobInfo | None:
        try:
            return BlobInfo(key=key, size=self._path(key).stat().st_size)
        except FileNotFoundError:
            return None

    def open(self, key: str, *, offset: int = 0, length: int | None = None) -> BlobReader:
        try:
            handle = self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError):
            raise BlobNotFoundError(f"no blob '{key}' in {self.describe()}") from None
        try:
            size = os.fstat(handle.fileno()).st_size
            count = resolve_range(key, size, offset, length)
            handle.seek(offset)
        except BaseException:
            handle.close()
            raise
        return BlobReader(handle, key=key, offset=offset, length=count, total_size=size)

    def stage(self, data: BinaryIO, *, suffix: str = ".nupkg", max_bytes: int | None = None) -> StagedBlob:
        key = check_key(f"{STAGING_PREFIX}{uuid.uuid4().hex}{suffix}")
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        reader = HashingReader(data, max_bytes=max_bytes, key=key)
        try:
            with path.open("xb") as out:
                while chunk := reader.read(CHUNK_SIZE):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return reader.staged(key)

    def publish(self, staged: StagedBlob, key: str, *, durable: bool = True) -> PutResult:
        source, target = self._path(staged.key), self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
            result = PutResult.CREATED
        except FileExistsError:
            result = PutResult.ALREADY_EXISTS if _sha256(target) == staged.sha256 else PutResult.CONFLICT
        except OSError as exc:  # e.g. a file system without hard links: refuse rather than risk a replace
            where = f"'{staged.key}' as '{key}' in {self.describe()}"
            raise StorageError(f"cannot publish {where}: {exc.strerror}") from None
        source.unlink(missing_ok=True)
        if durable:
            _fsync_directory(target.parent)
        return result

    def put(self, key: str, data: BinaryIO) -> PutResult:
        check_key(key)
        return self.publish(self.stage(data, suffix=".tmp"), key)

    def put_new(self, key: str, data: bytes, digests: StagedBlob, *, durable: bool = True) -> PutResult:
        # A file appears whole or not at all only through a link from a complete, fsynced file: staged, then published
        # as usual. The bytes are in memory and their digests known, so they are written with plain os calls rather
        # than stage()'s hashing reader (a re-sign writes one per package: ~0.3 ms of CPU less each).
        check_key(key)
        staged_key = f"{STAGING_PREFIX}{uuid.uuid4().hex}.nupkg"
        path = self.root / staged_key
        try:
            descriptor = os.open(path, _NEW_FILE, 0o666)
        except FileNotFoundError:  # the staging folder was removed since start-up
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, _NEW_FILE, 0o666)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(descriptor, view):]
                if durable:
                    os.fsync(descriptor)
            finally:
                os.close(descriptor)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return self.publish(StagedBlob(staged_key, len(data), digests.sha256, digests.sha512), key, durable=durable)

    def sync(self, keys: Sequence[str]) -> None:
        folders: dict[Path, None] = {}
        try:
            for key in keys:
                path = self._path(key)
                descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                try:
                    os.fsync(descriptor)
                finally:
                    os.close(descriptor)
                folders[path.parent] = None
            for folder in folders:
                _fsync_directory(folder)
        except OSError as exc:
            raise StorageError(f"cannot make the blobs durable in {self.describe()}: {exc.strerror or exc}") from None

    def delete(self, key: str) -> bool:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def discard(self, key: str) -> None:
        self.delete(key)

    def discard_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.delete(key)

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        for path in self.root.rglob("*"):
            if path.is_file():
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()
