"""S3 writes that must never overwrite: the conditional PutObject (``If-None-Match: *``) where the server honours
it, the HEAD-first path where it does not, and the probe that tells the two apart.

A key that names the full SHA-256 of the bytes needs neither (one PutObject, tested against rclone). The tests' real
server (``rclone serve s3``) ignores the header and overwrites, so the HEAD path is tested against it (here and in
test_blob_store.py); the conditional path is the answers of a server that honours it (AWS S3's 412
``PreconditionFailed`` and 409 ``ConditionalRequestConflict``), given through botocore's own ``Stubber``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber
from tests.support.s3 import S3Server
from tests.support.server_fixtures import s3_storage

from nuseal.server.services.rotation import package_blob_key
from nuseal.server.storage import PutResult, StorageError, digests_of
from nuseal.server.storage.base import names_content
from nuseal.server.storage.s3 import S3BlobStore, S3Location

BUCKET = "feed"
KEY = "packages/a/1.0.0/0123456789ab.nupkg"
DATA = b"re-signed package bytes"


def test_rclone_ignores_if_none_match_so_writes_check_first(s3_server: S3Server) -> None:
    store = s3_storage(s3_server, s3_server.create_bucket()).open()
    assert isinstance(store, S3BlobStore)
    assert store.conditional_puts() is False  # the fact the HEAD before each write rests on
    assert list(store.list_keys("incoming/")) == []  # the probe object is gone
    sent: list[str] = []
    store._client.meta.events.register("before-send.s3.*", lambda request, **_: sent.append(request.method))
    assert store.put_new(KEY, DATA, digests_of(DATA)) is PutResult.CREATED
    assert sent == ["HEAD", "PUT"]  # probed once per store: two requests per new blob from then on
    other = b"other bytes under the same key"
    assert store.put_new(KEY, other, digests_of(other)) is PutResult.CONFLICT
    with store.open(KEY) as reader:
        assert reader.read() == DATA  # not overwritten
    # The store's own botocore session leaves answer timestamps unparsed (nuseal reads none).
    assert isinstance(store._client.head_object(Bucket=store.location.bucket, Key=KEY)["LastModified"], str)


def test_a_key_that_names_the_full_sha256_is_written_with_one_put_and_nothing_else(s3_server: S3Server) -> None:
    store = s3_storage(s3_server, s3_server.create_bucket()).open()
    assert isinstance(store, S3BlobStore)
    digests = digests_of(DATA)
    key = package_blob_key("a", "1.0.0", digests.sha256)
    assert key == f"packages/a/1.0.0/{digests.sha256}.nupkg"
    sent: list[str] = []
    store._client.meta.events.register("before-send.s3.*", lambda request, **_: sent.append(request.method))
    assert store.put_new(key, DATA, digests) is PutResult.CREATED
    assert store.put_new(key, DATA, digests) is PutResult.CREATED  # the same bytes again: written over, unchanged
    assert sent == ["PUT", "PUT"]  # no HEAD, and no probe: nothing to guard against
    assert store._conditional is None
    with store.open(key) as reader:
        assert reader.read() == DATA
    head = store._client.head_object(Bucket=store.location.bucket, Key=key)
    # rclone gives user metadata names back capitalised ("Sha256"): S3 names are case-insensitive.
    assert {name.lower(): value for name, value in head["Metadata"].items()} == {"sha256": digests.sha256}
    # A 12-digit key (written before full-hash keys, or by anyone else) keeps the guard: other bytes are refused.
    short = f"packages/a/1.0.0/{digests.sha256[:12]}.nupkg"
    assert store.put_new(short, DATA, digests) is PutResult.CREATED
    other = b"other bytes whose hash shares nothing, under the short key"
    assert store.put_new(short, other, digests_of(other)) is PutResult.CONFLICT


def test_an_existing_object_is_told_apart_by_its_metadata_without_downloading_it(s3_server: S3Server) -> None:
    store = s3_storage(s3_server, s3_server.create_bucket()).open()
    assert isinstance(store, S3BlobStore)
    assert store.put_new(KEY, DATA, digests_of(DATA)) is PutResult.CREATED
    sent: list[str] = []
    store._client.meta.events.register("before-send.s3.*", lambda request, **_: sent.append(request.method))
    assert store.put_new(KEY, DATA, digests_of(DATA)) is PutResult.ALREADY_EXISTS
    other = b"other bytes under the same key"
    assert store.put_new(KEY, other, digests_of(other)) is PutResult.CONFLICT
    assert sent == ["HEAD", "HEAD"]  # rclone's "Sha256" is the sha256 metadata: no GET to hash the object


@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("{h}.nupkg", True),
        ("{h}.nuspec", True),
        ("{h12}.nupkg", False),  # a prefix only: other bytes can share it
        ("{h}x.nupkg", False),
        ("{h}", False),  # no suffix: not the key form
        ("{other}.nupkg", False),
        ("x{h}.nupkg", False),
    ],
)
def test_names_content_needs_the_whole_digest_as_the_last_segment_name(name: str, named: bool) -> None:
    digest = digests_of(DATA).sha256
    other = digests_of(b"other").sha256
    key = "packages/a/1.0.0/" + name.format(h=digest, h12=digest[:12], other=other)
    assert names_content(key, digest) is named
    assert names_content(f"packages/a/{digest}/1.nupkg", digest) is False  # in a folder name, not the blob's name
    assert names_content(key, digest[:12]) is False


@pytest.fixture
def stubbed() -> Iterator[tuple[S3BlobStore, Stubber]]:
    store = S3BlobStore(S3Location.parse(f"s3://{BUCKET}?endpoint=http://127.0.0.1:9"), access_key_id="k",
                        secret_access_key="s")  # fmt: skip
    with Stubber(store._client) as stubber:
        yield store, stubber
        stubber.assert_no_pending_responses()


def _put(key: str, body: bytes, **extra: Any) -> dict[str, Any]:
    return {"Bucket": BUCKET, "Key": key, "Body": body, **extra}


def _honouring(stubber: Stubber) -> None:
    """The probe's three requests against a server that refuses the second, conditional write."""
    stubber.add_response("put_object", {})
    stubber.add_client_error("put_object", "PreconditionFailed", http_status_code=412)
    stubber.add_response("delete_object", {})


def test_a_server_that_honours_if_none_match_gets_one_conditional_put(stubbed: tuple[S3BlobStore, Stubber]) -> None:
    store, stubber = stubbed
    digests = digests_of(DATA)
    _honouring(stubber)
    conditional = _put(KEY, DATA, Metadata={"sha256": digests.sha256}, IfNoneMatch="*")
    stubber.add_response("put_object", {}, conditional)  # no HEAD before it
    stubber.add_response("put_object", {}, conditional)  # the probe ran once per store
    assert store.put_new(KEY, DATA, digests) is PutResult.CREATED
    assert store.put_new(KEY, DATA, digests) is PutResult.CREATED


@pytest.mark.parametrize(("existing", "outcome"), [(DATA, PutResult.ALREADY_EXISTS), (b"other", PutResult.CONFLICT)])
def test_a_refused_conditional_put_tells_same_bytes_from_a_conflict(
    stubbed: tuple[S3BlobStore, Stubber], existing: bytes, outcome: PutResult
) -> None:
    store, stubber = stubbed
    _honouring(stubber)
    stubber.add_client_error("put_object", "PreconditionFailed", http_status_code=412)
    stubber.add_response("head_object", {"ContentLength": len(existing),
                                         "Metadata": {"sha256": digests_of(existing).sha256}})  # fmt: skip
    assert store.put_new(KEY, DATA, digests_of(DATA)) is outcome


def test_a_concurrent_conditional_write_that_left_nothing_is_an_error_to_retry(
    stubbed: tuple[S3BlobStore, Stubber],
) -> None:
    store, stubber = stubbed
    _honouring(stubber)
    stubber.add_client_error("put_object", "ConditionalRequestConflict", http_status_code=409)
    stubber.add_client_error("head_object", "404", http_status_code=404)
    with pytest.raises(StorageError, match="another write to it is under way; try again"):
        store.put_new(KEY, DATA, digests_of(DATA))


def test_a_server_that_answers_the_probe_otherwise_gets_a_head_first(stubbed: tuple[S3BlobStore, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_response("put_object", {})
    stubber.add_client_error("put_object", "NotImplemented", http_status_code=501)  # header not supported
    stubber.add_response("delete_object", {})
    stubber.add_client_error("head_object", "404", http_status_code=404)
    stubber.add_response("put_object", {}, _put(KEY, DATA, Metadata={"sha256": digests_of(DATA).sha256}))
    assert store.put_new(KEY, DATA, digests_of(DATA)) is PutResult.CREATED
    assert store.conditional_puts() is False


def test_a_failing_probe_is_a_storage_error_and_is_tried_again(stubbed: tuple[S3BlobStore, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error("put_object", "AccessDenied", "no", http_status_code=403)
    with pytest.raises(StorageError, match="cannot probe conditional writes with 'incoming/conditional-put-probe-"):
        store.put_new(KEY, DATA, digests_of(DATA))
    _honouring(stubber)
    assert store.conditional_puts() is True


def test_boto3_is_loaded_only_when_the_store_is_used() -> None:
    code = ("import sys; from nuseal.server.storage import open_blob_store; "
            "s = open_blob_store('s3://feed?endpoint=http://127.0.0.1:9'); before = 'boto3' in sys.modules; "
            "s._client; print(before, 'boto3' in sys.modules)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]
