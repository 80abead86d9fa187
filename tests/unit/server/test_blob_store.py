"""The BlobStore contract, written once for every implementation.

``blob_store`` is parametrized by store kind: the folder store and the S3 store on a fresh bucket of the session's
real S3 server (``rclone serve s3``, tests/support/s3.py). Nothing here is specific to files except the tests at
the end.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.s3 import S3Server
from tests.support.server_fixtures import s3_storage

from nuseal.server.storage import (
    BlobNotFoundError,
    BlobStore,
    BlobTooLargeError,
    PutResult,
    RangeNotSatisfiableError,
    StorageError,
    digests_of,
    open_blob_store,
)
from nuseal.server.storage.base import check_key
from nuseal.server.storage.filesystem import FilesystemBlobStore
from nuseal.server.storage.s3 import SMALL_BLOB_BYTES, S3Location

STORE_KINDS = ("file", "s3")
PAYLOAD = os.urandom(3 * 1024 * 1024 + 17)  # several chunks, not a multiple of the chunk size


@pytest.fixture(params=STORE_KINDS)
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        store = s3_storage(server, server.create_bucket()).open()
    else:
        store = open_blob_store((tmp_path / "blobs").as_uri())
    store.check()
    yield store


def read_all(store: BlobStore, key: str, **kwargs: int) -> bytes:
    with store.open(key, **kwargs) as reader:
        return reader.read()


# S3 stages small blobs with one PutObject and larger ones through the transfer manager: both sides of the limit.
@pytest.mark.parametrize("size", [len(PAYLOAD), 15_000, SMALL_BLOB_BYTES, SMALL_BLOB_BYTES + 1])
def test_stage_computes_size_and_nuget_digests_then_publish_makes_it_readable(blob_store: BlobStore,
                                                                               size: int) -> None:  # fmt: skip
    payload = PAYLOAD[:size]
    staged = blob_store.stage(io.BytesIO(payload))
    assert staged.key.startswith("incoming/") and staged.key.endswith(".nupkg")
    assert staged.size == len(payload)
    assert staged.sha256 == hashlib.sha256(payload).hexdigest()
    assert staged.sha512 == base64.b64encode(hashlib.sha512(payload).digest()).decode()

    assert blob_store.publish(staged, "packages/a/1.0.0/x.nupkg") is PutResult.CREATED
    assert blob_store.stat(staged.key) is None  # the staged copy is gone
    info = blob_store.stat("packages/a/1.0.0/x.nupkg")
    assert info is not None and info.size == len(payload)
    assert read_all(blob_store, "packages/a/1.0.0/x.nupkg") == payload


def test_publish_never_overwrites(blob_store: BlobStore) -> None:
    key = "packages/a/1.0.0/x.nupkg"
    assert blob_store.put(key, io.BytesIO(b"first")) is PutResult.CREATED
    assert blob_store.put(key, io.BytesIO(b"first")) is PutResult.ALREADY_EXISTS
    assert blob_store.put(key, io.BytesIO(b"other")) is PutResult.CONFLICT
    assert read_all(blob_store, key) == b"first"
    assert list(blob_store.list_keys("incoming/")) == []  # no staged leftovers in any case


def test_put_new_writes_bytes_in_memory_without_overwriting(blob_store: BlobStore) -> None:
    key = "packages/a/1.0.0/y.nupkg"
    first, other = b"signed package bytes", b"other bytes, same key"
    digests = digests_of(first)
    assert digests.size == len(first) and digests.sha256 == hashlib.sha256(first).hexdigest()
    assert digests.sha512 == base64.b64encode(hashlib.sha512(first).digest()).decode()
    assert blob_store.put_new(key, first, digests) is PutResult.CREATED
    assert blob_store.put_new(key, first, digests) is PutResult.ALREADY_EXISTS
    assert blob_store.put_new(key, other, digests_of(other)) is PutResult.CONFLICT
    assert read_all(blob_store, key) == first
    assert list(blob_store.list_keys("incoming/")) == []  # no staged leftovers
    # What publish writes and what put_new writes are told apart the same way.
    assert blob_store.put(key, io.BytesIO(first)) is PutResult.ALREADY_EXISTS


def test_put_new_not_durable_then_sync(blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    keys = ["packages/a/1.0.0/n1.nupkg", "packages/a/1.0.0/n2.nupkg", "packages/b/1.0.0/n3.nupkg"]
    for index, key in enumerate(keys):
        data = f"signed bytes {index}".encode()
        assert blob_store.put_new(key, data, digests_of(data), durable=False) is PutResult.CREATED
        assert read_all(blob_store, key) == data  # complete for readers at once
    assert synced == []  # nothing waited for the disk
    blob_store.sync(keys)
    # The folder store fsyncs each file and each folder once; S3's PutObject was durable already.
    assert len(synced) == (5 if blob_store.describe().startswith("file:") else 0)
    assert list(blob_store.list_keys("incoming/")) == []


def test_sync_of_a_missing_blob_is_a_storage_error_on_the_folder_store(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    store.check()
    with pytest.raises(StorageError, match="cannot make the blobs durable"):
        store.sync(["packages/a/1.0.0/missing.nupkg"])


def test_discard_removes_a_blob_and_ignores_a_missing_one(blob_store: BlobStore) -> None:
    blob_store.put("packages/a/1/a.nupkg", io.BytesIO(b"old bytes"))
    blob_store.discard("packages/a/1/a.nupkg")
    assert blob_store.stat("packages/a/1/a.nupkg") is None
    blob_store.discard("packages/a/1/a.nupkg")  # gone already: no error
    assert list(blob_store.list_keys()) == []


def test_discard_many_removes_every_key_given_and_no_other(blob_store: BlobStore) -> None:
    keys = [f"packages/p{i}/1/p{i}.nupkg" for i in range(5)]
    for key in [*keys, "packages/keep/1/keep.nupkg"]:
        blob_store.put(key, io.BytesIO(key.encode()))
    blob_store.discard_many([*keys[:4], "packages/missing/1/m.nupkg"])  # a missing key is not an error
    assert sorted(blob_store.list_keys()) == sorted([keys[4], "packages/keep/1/keep.nupkg"])
    blob_store.discard_many([])
    assert len(list(blob_store.list_keys())) == 2


@pytest.mark.parametrize(
    ("offset", "length"), [(0, 10), (5, 1), (len(PAYLOAD) - 3, 3), (1024 * 1024 - 1, 2 * 1024 * 1024), (7, None)]
)
def test_ranges_return_exactly_the_requested_bytes(blob_store: BlobStore, offset: int, length: int | None) -> None:
    blob_store.put("k/blob", io.BytesIO(PAYLOAD))
    kwargs = {"offset": offset} | ({"length": length} if length is not None else {})
    with blob_store.open("k/blob", **kwargs) as reader:
        assert reader.total_size == len(PAYLOAD)
        chunks = list(reader.iter_chunks(chunk_size=64 * 1024))
    end = None if length is None else offset + length
    assert b"".join(chunks) == PAYLOAD[offset:end]


def test_a_range_outside_the_blob_is_refused(blob_store: BlobStore) -> None:
    blob_store.put("k/small", io.BytesIO(b"0123456789"))
    with pytest.raises(RangeNotSatisfiableError, match="outside blob 'k/small' of 10 bytes"):
        blob_store.open("k/small", offset=8, length=3)
    with pytest.raises(RangeNotSatisfiableError):
        blob_store.open("k/small", offset=11)
    with blob_store.open("k/small", offset=10) as reader:
        assert reader.read() == b""


def test_missing_blobs(blob_store: BlobStore) -> None:
    assert blob_store.stat("nothing/here") is None
    with pytest.raises(BlobNotFoundError, match="no blob 'nothing/here'"):
        blob_store.open("nothing/here")
    assert blob_store.delete("nothing/here") is False


def test_an_upload_over_the_limit_leaves_nothing_behind(blob_store: BlobStore) -> None:
    with pytest.raises(BlobTooLargeError, match="larger than 1000 bytes"):
        blob_store.stage(io.BytesIO(PAYLOAD), max_bytes=1000)
    assert list(blob_store.list_keys()) == []
    exactly = blob_store.stage(io.BytesIO(PAYLOAD[:1000]), max_bytes=1000)
    assert exactly.size == 1000


def test_delete_and_list(blob_store: BlobStore) -> None:
    for key in ("packages/a/1/a.nupkg", "packages/a/1/a.nuspec", "packages/b/2/b.nupkg"):
        blob_store.put(key, io.BytesIO(key.encode()))
    assert sorted(blob_store.list_keys("packages/a/")) == ["packages/a/1/a.nupkg", "packages/a/1/a.nuspec"]
    assert blob_store.delete("packages/a/1/a.nupkg") is True
    assert blob_store.stat("packages/a/1/a.nupkg") is None
    assert sorted(blob_store.list_keys()) == ["packages/a/1/a.nuspec", "packages/b/2/b.nupkg"]


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "../up", "a/../b", "a/./b", "sp ace", "a\\b", "a/.hidden"])
def test_unsafe_keys_are_programming_errors(blob_store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        check_key(key)
    with pytest.raises(ValueError):
        blob_store.stat(key)


# --- folder store specifics ---------------------------------------------------------------------------------


def test_folder_store_files_are_plain_files_under_the_root(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "root")
    store.check()
    store.put("packages/x/1.0.0/x.nuspec", io.BytesIO(b"<package/>"))
    assert (tmp_path / "root" / "packages" / "x" / "1.0.0" / "x.nuspec").read_bytes() == b"<package/>"
    assert store.describe() == (tmp_path / "root").as_uri()


def test_folder_store_check_reports_an_unusable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="cannot create the blob folder"):
        FilesystemBlobStore(blocker / "blobs").check()


def test_a_failed_source_read_removes_the_partial_staged_file(tmp_path: Path) -> None:
    class Broken(io.RawIOBase):
        def __init__(self) -> None:
            self.calls = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 2:
                raise OSError("connection reset")
            return b"x" * 1000

    store = FilesystemBlobStore(tmp_path / "root")
    store.check()
    with pytest.raises(OSError, match="connection reset"):
        store.stage(Broken())  # type: ignore[arg-type]
    assert list(store.list_keys()) == []


# --- URLs ---------------------------------------------------------------------------------------------------


def test_storage_urls_select_the_implementation(tmp_path: Path) -> None:
    assert isinstance(open_blob_store((tmp_path / "b").as_uri()), FilesystemBlobStore)
    with pytest.raises(StorageError, match="expected file:///ABSOLUTE/FOLDER"):
        open_blob_store("file://server/share")
    with pytest.raises(StorageError, match="unsupported storage URL 'gs://bucket'"):
        open_blob_store("gs://bucket")


def test_s3_urls_are_parsed_with_endpoint_region_and_prefix() -> None:
    location = S3Location.parse("s3://feed/nuseal/blobs?endpoint=http://127.0.0.1:8333&region=eu-west-1")
    assert location == S3Location("feed", "nuseal/blobs/", "http://127.0.0.1:8333", "eu-west-1")
    assert S3Location.parse("s3://feed") == S3Location("feed", "", None, "us-east-1")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://", "expected s3://BUCKET"),
        ("s3://b?endpoint=ftp://x", "invalid S3 endpoint 'ftp://x'"),
        ("s3://b?bucket=x&acl=public", "unknown parameter(s) acl, bucket"),
    ],
)
def test_bad_s3_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(StorageError) as caught:
        S3Location.parse(url)
    assert message in str(caught.value)
