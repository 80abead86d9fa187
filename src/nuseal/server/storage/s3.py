"""Blob store in an S3-compatible bucket (AWS, seaweedfs, rclone serve s3, ...) through boto3.

Selected by ``--storage s3://BUCKET[/PREFIX]?endpoint=URL&region=R``. Path-style addressing and SigV4 work with
every S3 clone; checksums are computed and validated only "when required", because rclone returns the whole
object's CRC32 on a ranged GET and boto3 would otherwise reject every range (spec/stack.md §4.3). Credentials:
the settings' ``s3_access_key_id``/``s3_secret_access_key`` if given, else boto3's standard chain
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, profiles, ...).

Objects carry their SHA-256 as user metadata (``x-amz-meta-sha256``) so that publishing onto an existing key can
tell "same bytes" from "conflict" without downloading it (servers that drop metadata get the object hashed).
S3 has no portable "create if absent", so publish is check-then-copy: keys are content-addressed, which makes
the race harmless. Publishing is one CopyObject (objects up to 5 GiB).

:meth:`S3BlobStore.put_new` (a re-signed package, bytes in memory) is one plain PutObject when the key names the
full SHA-256 of the bytes (``packages/{id}/{version}/{sha256}.nupkg``, keys written since 2026-12-02): an object
already there holds the same bytes, and a PUT over it changes nothing a reader can see (docs/decisions.md). A key
with a shorter hash (12 hex digits, older keys) could meet other bytes: one conditional PutObject
(``If-None-Match: *``) where the server honours it (AWS S3, MinIO, recent SeaweedFS; probed once per store, since a
server that ignores the header overwrites, as ``rclone serve s3``, the tests' server, does), elsewhere a HEAD first.

boto3 is imported, and the client made, on first use: a command that never touches a blob (``repo-cert retire``)
does not pay ~0.3-0.6 s of CPU for them.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from nuseal.server.storage.base import (
    STAGING_PREFIX,
    BlobInfo,
    BlobNotFoundError,
    BlobReader,
    HashingReader,
    PutResult,
    StagedBlob,
    StorageError,
    check_key,
    names_content,
    resolve_range,
)

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
#: Answers to a conditional PutObject whose key exists (412), or is being written by another conditional one (409).
_PRECONDITION_STATUSES = frozenset({409, 412})
#: Keys per DeleteObjects request (S3's limit).
_DELETE_BATCH = 1000
#: Blobs up to this size are staged with one PutObject from memory (a re-signed small package is ~15 KB).
SMALL_BLOB_BYTES = 1024 * 1024


def _read_up_to(reader: HashingReader, size: int) -> bytes:
    parts: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = reader.read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


class _Prefixed:
    """``first`` then the rest of ``reader``, for the transfer manager (not seekable: read in order, once)."""

    def __init__(self, first: bytes, reader: HashingReader) -> None:
        self._first = first
        self._reader = reader

    def read(self, size: int = -1) -> bytes:
        if self._first:
            if size is None or size < 0:
                data, self._first = self._first + self._reader.read(-1), b""
                return data
            data, self._first = self._first[:size], self._first[size:]
            return data
        return self._reader.read(size)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


@dataclass(frozen=True)
class S3Location:
    """A parsed ``s3://`` storage URL."""

    bucket: str
    prefix: str
    endpoint: str | None
    region: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """Parse ``s3://BUCKET[/PREFIX]?endpoint=URL&region=R``; :class:`StorageError` naming the problem."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise StorageError(f"invalid S3 storage URL {url!r}: expected s3://BUCKET[/PREFIX]?endpoint=URL&region=R")
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = set(query) - {"endpoint", "region"}
        if unknown:
            raise StorageError(f"invalid S3 storage URL {url!r}: unknown parameter(s) {', '.join(sorted(unknown))}")
        endpoint = query.get("endpoint", [None])[-1]
        if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
            raise StorageError(f"invalid S3 endpoint {endpoint!r} in {url!r}: expected an http:// or https:// URL")
        prefix = parts.path.strip("/")
        if prefix:
            check_key(prefix)
        return cls(
            bucket=parts.netloc,
            prefix=f"{prefix}/" if prefix else "",
            endpoint=endpoint or None,
            region=query.get("region", ["us-east-1"])[-1] or "us-east-1",
        )


def _make_client(location: S3Location, access_key_id: str | None, secret_access_key: str | None) -> Any:
    import boto3
    import botocore.session
    from botocore.config import Config

    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        # botocore checks every call's arguments against the service model (~0.4-0.8 ms of CPU per request here,
        # measured against rclone); ours are built by this class from checked keys, bytes and fixed names, and
        # S3 itself still refuses a bad request. A re-sign makes three requests per package.
        parameter_validation=False,
    )
    # A botocore session of the store's own, whose answers keep their timestamps as strings: nuseal reads none
    # (LastModified, Expires, ...), and dateutil parsing them was ~10 % of the CPU of a HEAD or GET. Parser defaults
    # belong to the session, so no other boto3 user in the process is affected.
    session = botocore.session.get_session()
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
    return boto3.session.Session(botocore_session=session).client(
        "s3",
        endpoint_url=location.endpoint,
        region_name=location.region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=config,
    )


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


class S3BlobStore:
    """:class:`~nuseal.server.storage.base.BlobStore` on one bucket (and optional key prefix)."""

    def __init__(
        self, location: S3Location, *, access_key_id: str | None = None, secret_access_key: str | None = None
    ) -> None:
        self.location = location
        self._credentials = (access_key_id, secret_access_key)
        self._lock = threading.Lock()
        self._probe_lock = threading.Lock()  # one probe at a time, even when the first writes come in together
        self._made: Any = None
        #: Whether the server refuses a conditional PutObject onto an existing key (None: not probed yet).
        self._conditional: bool | None = None

    @property
    def _client(self) -> Any:  # botocore's S3 client has no static type
        """The boto3 client, made on first use (once, whichever thread asks first)."""
        client = self._made
        if client is None:
            with self._lock:
                if self._made is None:
                    self._made = _make_client(self.location, *self._credentials)
                client = self._made
        return client

    def describe(self) -> str:
        where = f" at {self.location.endpoint}" if self.location.endpoint else ""
        return f"s3://{self.location.bucket}/{self.location.prefix}{where}"

    def local_path(self, key: str) -> None:
        return None  # objects are read over HTTP

    def _object(self, key: str) -> str:
        return self.location.prefix + check_key(key)

    def _error(self, action: str, key: str | None, exc: Exception) -> StorageError:
        target = f"'{key}' in {self.describe()}" if key is not None else self.describe()
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in _NOT_FOUND and key is not None:
                return BlobNotFoundError(f"no blob {target}")
            return StorageError(f"cannot {action} {target}: {code or 'error'} {error.get('Message', '')}".rstrip())
        return StorageError(f"cannot {action} {target}: {exc}")

    def check(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.location.bucket)
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code")) in _NOT_FOUND:
                raise StorageError(f"the bucket of {self.describe()} does not exist: create it first") from None
            raise self._error("reach", None, exc) from None

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self._client.head_object(Bucket=self.location.bucket, Key=self._object(key))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _NOT_FOUND:
                return None
            raise self._error("read", key, exc) from None
        except BotoCoreError as exc:
            raise self._error("read", key, exc) from None
        return head

    def stat(self, key: str) -> BlobInfo | None:
        head = self._head(key)
        return None if head is None else BlobInfo(key=key, size=int(head["ContentLength"]))

    def open(self, key: str, *, offset: int = 0, length: int | None = None) -> BlobReader:
        if offset == 0 and length is None:
            return self._open_whole(key)
        head = self._head(key)
        if head is None:
            raise BlobNotFoundError(f"no blob '{key}' in {self.describe()}")
        size = int(head["ContentLength"])
        count = resolve_range(key, size, offset, length)
        arguments: dict[str, Any] = {"Bucket": self.location.bucket, "Key": self._object(key)}
        if count == 0:
            return BlobReader(_Empty(), key=key, offset=offset, length=0, total_size=size)
        if offset or count != size:
            arguments["Range"] = f"bytes={offset}-{offset + count - 1}"
        try:
            body = self._client.get_object(**arguments)["Body"]
        except (ClientError, BotoCoreError) as exc:
            raise self._error("read", key, exc) from None
        return BlobReader(body, key=key, offset=offset, length=count, total_size=size)

    def _open_whole(self, key: str) -> BlobReader:
        """The whole blob with one GET (its length comes with the answer): no HEAD first."""
        try:
            answer = self._client.get_object(Bucket=self.location.bucket, Key=self._object(key))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _NOT_FOUND:
                raise BlobNotFoundError(f"no blob '{key}' in {self.describe()}") from None
            raise self._error("read", key, exc) from None
        except BotoCoreError as exc:
            raise self._error("read", key, exc) from None
        size = int(answer["ContentLength"])
        return BlobReader(answer["Body"], key=key, offset=0, length=size, total_size=size)

    def stage(self, data: BinaryIO, *, suffix: str = ".nupkg", max_bytes: int | None = None) -> StagedBlob:
        key = check_key(f"{STAGING_PREFIX}{uuid.uuid4().hex}{suffix}")
        reader = HashingReader(data, max_bytes=max_bytes, key=key)
        try:
            first = _read_up_to(reader, SMALL_BLOB_BYTES + 1)
            if len(first) <= SMALL_BLOB_BYTES:  # one PutObject: the transfer manager costs more CPU than the upload
                self._client.put_object(Bucket=self.location.bucket, Key=self._object(key), Body=first)
            else:
                from boto3.s3.transfer import TransferConfig

                transfer = TransferConfig(multipart_threshold=16 * 1024 * 1024, multipart_chunksize=16 * 1024 * 1024)
                self._client.upload_fileobj(_Prefixed(first, reader), self.location.bucket, self._object(key),
                                            Config=transfer)  # fmt: skip
        except (ClientError, BotoCoreError) as exc:
            self.delete(key)
            raise self._error("write", key, exc) from None
        except BaseException:
            self.delete(key)
            raise
        return reader.staged(key)

    def _outcome_over(self, key: str, head: dict[str, Any], sha256: str) -> PutResult:
        """A write to ``key``, which exists (``head``): the same bytes already there, or a conflict."""
        # Metadata names are case-insensitive (rclone answers "Sha256"); servers that drop user metadata get the
        # existing object hashed instead.
        metadata = {str(name).lower(): value for name, value in head.get("Metadata", {}).items()}
        existing = metadata.get("sha256") or self._sha256(key)
        return PutResult.ALREADY_EXISTS if existing == sha256 else PutResult.CONFLICT

    def publish(self, staged: StagedBlob, key: str) -> PutResult:
        head = self._head(key)
        if head is not None:
            self.delete(staged.key)
            return self._outcome_over(key, head, staged.sha256)
        try:  # one CopyObject (up to 5 GiB): several S3 clones (rclone) lack UploadPartCopy, a multipart copy
            self._client.copy_object(
                CopySource={"Bucket": self.location.bucket, "Key": self._object(staged.key)},
                Bucket=self.location.bucket,
                Key=self._object(key),
                Metadata={"sha256": staged.sha256},
                MetadataDirective="REPLACE",
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._error("publish", key, exc) from None
        self._delete_staged(staged.key)
        return PutResult.CREATED

    def _delete_staged(self, key: str) -> None:
        """Delete a staged object this store just wrote (no HEAD first: it is there, and DELETE is idempotent)."""
        try:
            self._client.delete_object(Bucket=self.location.bucket, Key=self._object(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._error("delete", key, exc) from None

    def _sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        for chunk in self.open(key).iter_chunks():
            digest.update(chunk)
        return digest.hexdigest()

    def put(self, key: str, data: BinaryIO) -> PutResult:
        check_key(key)
        return self.publish(self.stage(data, suffix=".tmp"), key)

    def put_new(self, key: str, data: bytes, digests: StagedBlob, *, durable: bool = True) -> PutResult:
        """One PutObject straight to ``key`` (a PUT is atomic on S3: the object appears whole or not at all, so bytes
        already in memory need no staged copy). A key that names the full SHA-256 of ``data`` is written without
        looking (the same bytes or nothing can be there); any other key never over an existing object: conditional
        (``If-None-Match: *``) where the server honours that, else after a HEAD. 1-2 requests instead of stage +
        publish's 4 (PUT, HEAD, CopyObject, DELETE), ~1-3 ms of boto3 CPU each."""
        check_key(key)
        if names_content(key, digests.sha256):  # nothing to guard: only these bytes can be at this key
            return self._put_object(key, data, digests.sha256)
        if self.conditional_puts():
            try:
                self._client.put_object(Bucket=self.location.bucket, Key=self._object(key), Body=data,
                                        Metadata={"sha256": digests.sha256}, IfNoneMatch="*")  # fmt: skip
                return PutResult.CREATED
            except ClientError as exc:
                if _status(exc) not in _PRECONDITION_STATUSES:
                    raise self._error("write", key, exc) from None
            except BotoCoreError as exc:
                raise self._error("write", key, exc) from None
            head = self._head(key)  # refused: the key exists (or another write to it is under way)
            if head is None:
                raise StorageError(f"cannot write '{key}' in {self.describe()}: another write to it is under way; "
                                   "try again")  # fmt: skip
            return self._outcome_over(key, head, digests.sha256)
        head = self._head(key)
        if head is not None:
            return self._outcome_over(key, head, digests.sha256)
        return self._put_object(key, data, digests.sha256)

    def _put_object(self, key: str, data: bytes, sha256: str) -> PutResult:
        """One unconditional PutObject of ``data`` (its SHA-256 in the object's metadata)."""
        try:
            self._client.put_object(Bucket=self.location.bucket, Key=self._object(key), Body=data,
                                    Metadata={"sha256": sha256})  # fmt: skip
        except (ClientError, BotoCoreError) as exc:
            raise self._error("write", key, exc) from None
        return PutResult.CREATED

    def conditional_puts(self) -> bool:
        """Whether the server refuses a PutObject with ``If-None-Match: *`` onto an existing key, probed once per store
        (a throw-away object under ``incoming/`` written twice, the second time conditionally, then deleted). A
        server that ignores the header, or answers it with anything but a refusal, gets a HEAD before each write."""
        known = self._conditional
        if known is not None:
            return known
        with self._probe_lock:
            if self._conditional is None:
                self._conditional = self._probe_conditional_puts()
            return self._conditional

    def _probe_conditional_puts(self) -> bool:
        key = f"{STAGING_PREFIX}conditional-put-probe-{uuid.uuid4().hex}"
        name = self._object(key)
        try:
            self._client.put_object(Bucket=self.location.bucket, Key=name, Body=b"first")
            try:
                self._client.put_object(Bucket=self.location.bucket, Key=name, Body=b"second", IfNoneMatch="*")
                honoured = False  # written over: the header was ignored
            except ClientError as exc:
                honoured = _status(exc) == 412
            finally:
                self._client.delete_object(Bucket=self.location.bucket, Key=name)
        except (ClientError, BotoCoreError) as exc:
            raise self._error("probe conditional writes with", key, exc) from None
        return honoured

    def sync(self, keys: Sequence[str]) -> None:
        return None  # a PutObject is durable once answered

    def delete(self, key: str) -> bool:
        if self._head(key) is None:
            return False
        try:
            self._client.delete_object(Bucket=self.location.bucket, Key=self._object(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._error("delete", key, exc) from None
        return True

    def discard(self, key: str) -> None:
        try:  # DELETE is idempotent: no HEAD first
            self._client.delete_object(Bucket=self.location.bucket, Key=self._object(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._error("delete", key, exc) from None

    def discard_many(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            chunk = [{"Key": self._object(check_key(key))} for key in keys[start : start + _DELETE_BATCH]]
            try:
                answer = self._client.delete_objects(Bucket=self.location.bucket,
                                                     Delete={"Objects": chunk, "Quiet": True})  # fmt: skip
            except (ClientError, BotoCoreError) as exc:
                raise self._error("delete", chunk[0]["Key"], exc) from None
            # Quiet mode lists only the failures; a key that was not there is not one (DELETE is idempotent).
            failed = [e for e in answer.get("Errors", []) if str(e.get("Code")) not in _NOT_FOUND]
            if failed:
                first = failed[0]
                raise StorageError(f"cannot delete {len(failed)} blob(s) in {self.describe()}, first "
                                   f"'{first.get('Key')}': {first.get('Code')} {first.get('Message', '')}".rstrip())

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.location.bucket, Prefix=self.location.prefix + prefix):
                for item in page.get("Contents", []):
                    yield str(item["Key"])[len(self.location.prefix):]
        except (ClientError, BotoCoreError) as exc:
            raise self._error("list", None, exc) from None


class _Empty:
    def read(self, size: int = -1, /) -> bytes:
        return b""

    def close(self) -> None:
        pass
