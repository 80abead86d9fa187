"""Deferred S3 writes: ``put_new(..., durable=False)`` of a key that names its bytes' full SHA-256 hands the PutObject
to the upload threads and returns; ``sync`` waits for every upload and raises the first failure (a re-signing batch
then commits nothing). Against the tests' real server (``rclone serve s3``); a failing upload is a real one, a
PutObject into a bucket that does not exist."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from concurrent.futures import Future

import pytest
from tests.support.s3 import S3Server
from tests.support.server_fixtures import s3_storage

from nuseal.server.services.rotation import package_blob_key
from nuseal.server.storage import PutResult, StorageError, digests_of
from nuseal.server.storage.s3 import UPLOAD_THREADS, S3BlobStore, S3Location


def _store(s3_server: S3Server) -> S3BlobStore:
    store = s3_storage(s3_server, s3_server.create_bucket()).open()
    assert isinstance(store, S3BlobStore)
    return store


def _like(store: S3BlobStore, location: S3Location) -> S3BlobStore:
    access_key_id, secret_access_key = store._credentials
    return S3BlobStore(location, access_key_id=access_key_id, secret_access_key=secret_access_key)


def _blob(index: int) -> tuple[str, bytes]:
    data = f"re-signed package {index}".encode() * 100
    return package_blob_key(f"p{index}", "1.0.0", digests_of(data).sha256), data


def _read(store: S3BlobStore, key: str) -> bytes:
    with store.open(key) as reader:
        return reader.read()


def _upload_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("nuseal-upload")]


def test_deferred_puts_run_on_the_upload_threads_and_sync_waits_for_them(s3_server: S3Server) -> None:
    store = _store(s3_server)
    senders: list[str] = []
    store._client.meta.events.register("before-send.s3.PutObject",
                                       lambda **_: senders.append(threading.current_thread().name))  # fmt: skip
    for _ in range(3):  # three batches: the pool is kept, not grown
        blobs = [_blob(i) for i in range(12)]
        for key, data in blobs:
            assert store.put_new(key, data, digests_of(data), durable=False) is PutResult.CREATED
        store.sync([key for key, _ in blobs])
        assert store._pending == {}  # nothing left to wait for
        assert all(_read(store, key) == data for key, data in blobs)
        assert 1 <= len(_upload_threads()) <= UPLOAD_THREADS
    assert len(senders) == 36 and all(name.startswith("nuseal-upload") for name in senders)
    # A durable write (and a key with a short hash) is still written by the caller.
    key, data = _blob(99)
    store.put_new(key, data, digests_of(data))
    assert senders[-1] == threading.current_thread().name


def test_a_failed_upload_is_raised_by_sync_once_every_upload_has_ended(s3_server: S3Server) -> None:
    store = _store(s3_server)
    missing = _like(store, dataclasses.replace(store.location, bucket="nuseal-no-such-bucket"))
    (bad, bad_data), (slow, slow_data) = _blob(1), _blob(2)
    real = store._put_content

    def put_content(key: str, data: bytes, sha256: str) -> None:
        if key == bad:
            missing._put_content(key, data, sha256)  # NoSuchBucket from the server
        time.sleep(0.3)  # ends well after the failure
        real(key, data, sha256)

    store._put_content = put_content  # type: ignore[method-assign]
    assert store.put_new(bad, bad_data, digests_of(bad_data), durable=False) is PutResult.CREATED
    assert store.put_new(slow, slow_data, digests_of(slow_data), durable=False) is PutResult.CREATED
    with pytest.raises(StorageError, match=f"^cannot write '{bad}' in s3://nuseal-no-such-bucket/.*NoSuchBucket"):
        store.sync([bad, slow])
    assert _read(store, slow) == slow_data  # sync waited for it: nothing is still writing
    assert store.stat(bad) is None and store._pending == {}


def test_a_forked_child_starts_its_own_upload_threads(s3_server: S3Server) -> None:
    store = _store(s3_server)
    key, data = _blob(1)
    store.put_new(key, data, digests_of(data), durable=False)
    store.sync([key])  # the parent's pool is running
    assert _upload_threads()
    never: Future[None] = Future()
    store._pending["packages/parent/1.0.0/x.nupkg"] = never  # an upload of the parent's, under way at the fork
    child_key, child_data = _blob(2)
    pid = os.fork()
    if pid == 0:  # the child: exits with 0 only if it uploaded on threads of its own
        code = 1
        try:
            signal.alarm(20)  # a child waiting on the parent's threads would hang
            fresh = _like(store, store.location)
            if store._pending == {} and not _upload_threads():
                fresh.put_new(child_key, child_data, digests_of(child_data), durable=False)
                fresh.sync([child_key])
                store.sync(["packages/parent/1.0.0/x.nupkg"])
                code = 0 if _upload_threads() else 2
        finally:
            os._exit(code)
    store._pending.clear()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _read(store, child_key) == child_data
