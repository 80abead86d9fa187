"""The blob store contract (BaGet's four-method storage plus what streaming, ranges and staging need).

Keys are relative POSIX paths (``packages/newtonsoft.json/13.0.1/1a2b3c4d5e6f.nupkg``), the same on every
backend. Uploads are first *staged* under ``incoming/`` while their SHA-256 / SHA-512 are computed, then
*published* under their final key, which never overwrites: final keys are content-addressed, so an existing key
with the same SHA-256 is :attr:`PutResult.ALREADY_EXISTS` and one with other bytes is :attr:`PutResult.CONFLICT`
(BaGet's ``StoragePutResult``). The database, not the store, says which blob is served.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol, Self

from nuseal.errors import NusealError

#: Staged uploads live under this prefix until published (or cleaned up).
STAGING_PREFIX = "incoming/"
CHUNK_SIZE = 1024 * 1024
_KEY_SEGMENT = re.compile(r"^[A-Za-z0-9_+\-][A-Za-z0-9._+\-]*$")


class StorageError(NusealError):
    """The store is unreachable, refuses access or is misconfigured (the message says which and where)."""


class BlobNotFoundError(StorageError):
    """No blob under that key."""


class BlobTooLargeError(StorageError):
    """A staged upload went over its size limit (nothing is kept)."""


class RangeNotSatisfiableError(StorageError):
    """A byte range outside the blob."""


class PutResult(enum.Enum):
    CREATED = "created"
    ALREADY_EXISTS = "already_exists"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int


@dataclass(frozen=True)
class StagedBlob:
    """An upload written under ``incoming/``: its key, size and digests (SHA-512 base64 is NuGet's package hash)."""

    key: str
    size: int
    sha256: str  # lowercase hex
    sha512: str  # base64, as NuGet's catalog and registration write packageHash


def check_key(key: str) -> str:
    """Return ``key`` if it is a relative POSIX path of safe segments; ``ValueError`` otherwise (programmer error)."""
    segments = key.split("/")
    if not key or not all(_KEY_SEGMENT.match(segment) for segment in segments):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class _Raw(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class BlobReader:
    """A streaming read of ``length`` bytes of a blob (the whole blob or one range); close it (or use ``with``)."""

    def __init__(self, raw: _Raw, *, key: str, offset: int, length: int, total_size: int) -> None:
        self._raw = raw
        self.key = key
        self.offset = offset
        self.length = length
        self.total_size = total_size
        self._remaining = length

    def read(self, size: int = -1) -> bytes:
        if self._remaining <= 0:
            return b""
        wanted = self._remaining if size < 0 else min(size, self._remaining)
        data = self._raw.read(wanted)
        self._remaining -= len(data)
        return data

    def iter_chunks(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Yield the bytes in chunks, then close; a short read from the backend raises :class:`StorageError`."""
        try:
            while self._remaining > 0:
                chunk = self.read(chunk_size)
                if not chunk:
                    raise StorageError(f"blob '{self.key}' ended {self._remaining} bytes early")
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def resolve_range(key: str, size: int, offset: int, length: int | None) -> int:
    """The number of bytes to read for ``offset``/``length`` within a blob of ``size`` bytes."""
    if offset < 0 or (length is not None and length < 0):
        raise ValueError(f"negative offset or length for blob '{key}'")
    if offset > size or (length is not None and offset + length > size):
        raise RangeNotSatisfiableError(f"range {offset}+{length} is outside blob '{key}' of {size} bytes")
    return size - offset if length is None else length


class HashingReader:
    """Reads a source once, counting bytes and computing SHA-256 and SHA-512; refuses to go past ``max_bytes``.

    Deliberately not seekable: boto3 then uploads it sequentially from the calling thread, so the digests see the
    bytes in order.
    """

    def __init__(self, source: BinaryIO, *, max_bytes: int | None, key: str) -> None:
        self._source = source
        self._max = max_bytes
        self._key = key
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._sha512 = hashlib.sha512()

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size if size is not None and size >= 0 else -1)
        if data:
            self.size += len(data)
            if self._max is not None and self.size > self._max:
                raise BlobTooLargeError(f"upload '{self._key}' is larger than {self._max} bytes")
            self._sha256.update(data)
            self._sha512.update(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def staged(self, key: str) -> StagedBlob:
        return StagedBlob(
            key=key,
            size=self.size,
            sha256=self._sha256.hexdigest(),
            sha512=base64.b64encode(self._sha512.digest()).decode("ascii"),
        )


class BlobStore(Protocol):
    """What the server needs from blob storage; :mod:`.filesystem` and :mod:`.s3` implement it."""

    def describe(self) -> str:
        """Where the blobs are, for logs and errors (never includes credentials)."""
        ...

    def check(self) -> None:
        """Make sure the store can be used (create the folder / reach the bucket); :class:`StorageError` if not."""
        ...

    def stat(self, key: str) -> BlobInfo | None:
        """Size of the blob, or ``None`` when there is none."""
        ...

    def local_path(self, key: str) -> Path | None:
        """Where the blob ``key`` is (or would be) a file on this machine, to read or send without a copy; ``None``
        where blobs are not local files (S3)."""
        ...

    def open(self, key: str, *, offset: int = 0, length: int | None = None) -> BlobReader:
        """Stream the blob (or ``length`` bytes from ``offset``); :class:`BlobNotFoundError` if missing."""
        ...

    def stage(self, data: BinaryIO, *, suffix: str = ".nupkg", max_bytes: int | None = None) -> StagedBlob:
        """Write ``data`` under ``incoming/{uuid}{suffix}``; :class:`BlobTooLargeError` past ``max_bytes``."""
        ...

    def publish(self, staged: StagedBlob, key: str) -> PutResult:
        """Move a staged blob to ``key`` without overwriting; the staged copy is gone afterwards."""
        ...

    def put(self, key: str, data: BinaryIO) -> PutResult:
        """Stage then publish ``data`` under ``key``."""
        ...

    def put_new(self, key: str, data: bytes, digests: StagedBlob, *, durable: bool = True) -> PutResult:
        """Write ``data`` (already in memory, ``digests`` its size and hashes, as :func:`digests_of` gives them)
        under ``key`` without overwriting, as ``publish`` would: readers see all of it or nothing, and it is durable
        on return. For small blobs whose key is derived from their content (a re-signed package): no staged copy.

        ``durable=False``: durable only once :meth:`sync` was called with ``key`` (a batch makes all its blobs
        durable at once, before the commit that references them; until then a crash may lose them: orphans).

        Where ``key`` names the full SHA-256 of ``data`` (:func:`names_content`), an object already there holds these
        very bytes, so a store may write over it without looking (S3: one PutObject, no HEAD) and answer
        ``CREATED``: readers see the same bytes before, during and after."""
        ...

    def sync(self, keys: Sequence[str]) -> None:
        """Make the blobs ``put_new(..., durable=False)`` wrote under ``keys`` durable (a no-op where every write is
        durable on return, as on S3); :class:`StorageError` when that fails."""
        ...

    def delete(self, key: str) -> bool:
        """Remove the blob; ``False`` when there was none."""
        ...

    def discard(self, key: str) -> None:
        """Remove the blob if it is there, without saying whether it was (one request fewer than ``delete`` on S3)."""
        ...

    def discard_many(self, keys: Sequence[str]) -> None:
        """:meth:`discard` every key (S3: one DeleteObjects request per 1,000 keys)."""
        ...

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with ``prefix`` (for clean-up jobs and tests), in no particular order."""
        ...


def names_content(key: str, sha256: str) -> bool:
    """Whether ``key``'s last segment is the full SHA-256 ``sha256`` (64 hex digits) plus a suffix: then the key
    can only ever hold bytes with that hash (every writer derives such keys from the bytes it writes), and two
    different contents can share it only through a SHA-256 collision."""
    name = key.rpartition("/")[2]
    return len(sha256) == 64 and name.startswith(sha256) and name[64:65] == "."


def digests_of(data: bytes, key: str = "") -> StagedBlob:
    """Size, SHA-256 and SHA-512 of bytes in memory, as staging computes them (``key``: where they will go)."""
    return StagedBlob(key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                      sha512=base64.b64encode(hashlib.sha512(data).digest()).decode("ascii"))  # fmt: skip
