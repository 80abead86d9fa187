"""Default trust bundles and PEM bundle loading (spec §7.2)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from cryptography import x509
from tests.support.pki import TestPki

from nuseal.errors import TrustConfigError
from nuseal.x509 import roots
from nuseal.x509.roots import (
    default_trust_store,
    load_pem_bundle,
    load_roots_file,
    parse_pem_bundle,
    trust_store_from_files,
)

ROOTS_DIR = Path(roots.__file__).parent / "roots"


def test_default_store_has_the_sdk_bundles() -> None:
    store = default_trust_store()
    assert len(store.code_signing) == 299
    assert len(store.timestamping) == 310
    assert all(isinstance(c, x509.Certificate) for c in store.code_signing + store.timestamping)


def test_default_store_is_parsed_once() -> None:
    assert default_trust_store() is default_trust_store()


def test_bundled_files_equal_the_shared_fixtures(vectors: Path) -> None:
    for name in ("codesignctl.pem", "timestampctl.pem"):
        assert (ROOTS_DIR / name).read_bytes() == (vectors / "fixtures" / name).read_bytes()


def test_readme_states_the_real_checksums_and_counts() -> None:
    readme = (ROOTS_DIR / "README.md").read_text()
    for name in ("codesignctl.pem", "timestampctl.pem"):
        data = (ROOTS_DIR / name).read_bytes()
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}`"))
        assert hashlib.sha256(data).hexdigest() in row
        assert re.search(rf"\| {data.count(b'BEGIN CERTIFICATE')} \|$", row)


def test_bundle_with_comments_loads_in_order(pki: TestPki, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(b"# my roots\n" + pki.root.pem + b"\n# Subject: other\n" + pki.untrusted_root.pem)
    assert load_pem_bundle(bundle) == (pki.root.cert, pki.untrusted_root.cert)


def test_bad_certificate_names_file_and_index(pki: TestPki, tmp_path: Path) -> None:
    broken = b"-----BEGIN CERTIFICATE-----\nTUlJQm9vb29vb28=\n-----END CERTIFICATE-----\n"
    bundle = tmp_path / "broken.pem"
    bundle.write_bytes(pki.root.pem + broken + pki.intermediate.pem)
    with pytest.raises(TrustConfigError) as info:
        load_pem_bundle(bundle)
    assert str(bundle) in info.value.message
    assert "certificate #2" in info.value.message


def test_unterminated_block_is_an_error(pki: TestPki) -> None:
    data = pki.root.pem + b"-----BEGIN CERTIFICATE-----\nMIIB\n"
    with pytest.raises(TrustConfigError, match=r"roots\.pem: certificate #2 .* no END line"):
        parse_pem_bundle(data, "roots.pem")


def test_empty_bundle_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TrustConfigError, match="no PEM certificate"):
        parse_pem_bundle(b"nothing here", "empty.pem")
    with pytest.raises(TrustConfigError, match=r"missing\.pem"):
        load_pem_bundle(tmp_path / "missing.pem")


def test_trust_store_from_files_replaces_only_given_parts(pki: TestPki, tmp_path: Path) -> None:
    bundle = pki.root.write_cert(tmp_path / "root.pem")
    store = trust_store_from_files(bundle, None)
    assert store.code_signing == (pki.root.cert,)
    assert store.timestamping is default_trust_store().timestamping
    store = trust_store_from_files(None, bundle)
    assert store.code_signing is default_trust_store().code_signing
    assert store.timestamping == (pki.root.cert,)


def test_roots_file_may_be_one_der_certificate(pki: TestPki, tmp_path: Path) -> None:
    # What `nuseal cert create --cer` and Windows' certificate export write.
    cer = tmp_path / "root.cer"
    cer.write_bytes(pki.root.der)
    assert load_roots_file(cer) == (pki.root.cert,)
    assert trust_store_from_files(None, cer).timestamping == (pki.root.cert,)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pki.root.pem + pki.untrusted_root.pem)
    assert load_roots_file(bundle) == (pki.root.cert, pki.untrusted_root.cert)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "the file is empty"), (b"just some text\n", "neither a PEM bundle"), (b"\x30\x03\x02\x01\x05", "neither")],
    ids=["empty", "text", "truncated-der"],
)
def test_roots_file_that_is_neither_pem_nor_der_names_the_file(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "roots.cer"
    path.write_bytes(content)
    with pytest.raises(TrustConfigError) as info:
        load_roots_file(path)
    assert str(path) in info.value.message and reason in info.value.message
    with pytest.raises(TrustConfigError, match=r"missing\.cer"):
        load_roots_file(tmp_path / "missing.cer")
