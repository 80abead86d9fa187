"""Blob storage for packages and nuspecs: the :class:`BlobStore` contract, a folder and an S3 bucket.

:func:`open_blob_store` picks the implementation from the ``--storage`` URL; boto3 is imported only for ``s3://``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from nuseal.server.storage.base import (
    BlobInfo,
    BlobNotFoundError,
    BlobReader,
    BlobStore,
    BlobTooLargeError,
    PutResult,
    RangeNotSatisfiableError,
    StagedBlob,
    StorageError,
    digests_of,
)

__all__ = [
    "BlobInfo",
    "BlobNotFoundError",
    "BlobReader",
    "BlobStore",
    "BlobTooLargeError",
    "PutResult",
    "RangeNotSatisfiableError",
    "StagedBlob",
    "StorageError",
    "digests_of",
    "open_blob_store",
]


def open_blob_store(
    url: str, *, s3_access_key_id: str | None = None, s3_secret_access_key: str | None = None
) -> BlobStore:
    """The store for ``file:///DIR`` or ``s3://BUCKET[/PREFIX]?endpoint=URL&region=R``; :class:`StorageError` else."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise StorageError(f"invalid storage URL {url!r}: expected file:///ABSOLUTE/FOLDER")
        from nuseal.server.storage.filesystem import FilesystemBlobStore

        return FilesystemBlobStore(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        from nuseal.server.storage.s3 import S3BlobStore, S3Location

        return S3BlobStore(
            S3Location.parse(url), access_key_id=s3_access_key_id, secret_access_key=s3_secret_access_key
        )
    raise StorageError(f"unsupported storage URL {url!r}: use file:///FOLDER or s3://BUCKET?endpoint=URL")
