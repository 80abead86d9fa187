"""Default trust bundles and PEM bundle loading (spec §7.2)."""

from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path

import pytest
from cryptography import x509
from tests.support.pki import TestPki

from nuseal.errors import TrustConfigError
from nuseal.x509 import roots, roots_index
from nuseal.x509.facts import facts
from nuseal.x509.roots import (
    RootSet,
    bundle_index,
    default_trust_store,
    load_pem_bundle,
    load_roots_file,
    parse_pem_bundle,
    trust_store_from_files,
    write_index,
)

ROOTS_DIR = Path(roots.__file__).parent / "roots"


def test_default_store_has_the_sdk_bundles() -> None:
    store = default_trust_store()
    assert len(store.code_signing) == 299
    assert len(store.timestamping) == 310
    assert all(isinstance(c, x509.Certificate) for part in (store.code_signing, store.timestamping) for c in part)


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


# --- the prebuilt index of the bundled roots ----------------------------------------------------------------------


def test_the_shipped_index_is_the_index_of_the_shipped_bundles(tmp_path: Path) -> None:
    # Fails after a bundle update until scripts/roots-index is run (nuseal then parses whole bundles every run).
    for name in ("codesignctl.pem", "timestampctl.pem"):
        assert roots_index.BUNDLES[name] == bundle_index((ROOTS_DIR / name).read_bytes())
    fresh = tmp_path / "roots_index.py"
    write_index(fresh)
    assert fresh.read_text() == Path(roots_index.__file__).read_text()


def test_bundled_roots_are_parsed_only_when_a_lookup_reaches_them() -> None:
    bundled = RootSet.bundled("codesignctl.pem")
    assert bundled.parsed == 0
    some_root = bundled[17]
    assert bundled.parsed == 1
    assert bundled.named(facts(some_root).subject_key)[0] is some_root
    assert bundled.contains(some_root) and bundled.trusts(some_root)
    assert bundled.parsed <= 2  # another root with the same subject (a re-issued root), at most


def _lookups(roots: RootSet, probes: list[x509.Certificate]) -> list[tuple[bool, bool, list[bytes]]]:
    return [(roots.contains(c), roots.trusts(c), [facts(r).der for r in roots.named(facts(c).subject_key)])
            for c in probes]


def test_indexed_lookups_equal_those_of_the_parsed_bundle(pki: TestPki) -> None:
    for name in ("codesignctl.pem", "timestampctl.pem"):
        parsed = RootSet.of(parse_pem_bundle((ROOTS_DIR / name).read_bytes(), name))
        probes = [*parsed, pki.root.cert, pki.intermediate.cert]
        assert _lookups(RootSet.bundled(name), probes) == _lookups(parsed, probes)


def test_a_stale_index_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    bundles = dict(roots_index.BUNDLES)
    bundles["codesignctl.pem"] = ("00" * 32, bundles["codesignctl.pem"][1])  # made from other bytes
    monkeypatch.setattr(roots, "_prebuilt_index", lambda: (roots_index.UNICODE, bundles))
    fallback = RootSet.bundled("codesignctl.pem")
    assert fallback.parsed == len(fallback) == 299  # parsed whole, as a user's roots file is
    first = fallback[0]
    assert fallback.named(facts(first).subject_key) == [first]


def test_non_ascii_subject_keys_are_recomputed_under_other_unicode_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(roots, "_prebuilt_index", lambda: ("0.0.0", roots_index.BUNDLES))
    bundled = RootSet.bundled("timestampctl.pem")
    rows = roots_index.BUNDLES["timestampctl.pem"][1]
    non_ascii = [i for i, row in enumerate(rows) if not row[4]]
    assert non_ascii, "the bundle has roots with non-ASCII names"
    assert bundled.parsed == 0
    root = bundled[non_ascii[0]]
    assert root in bundled.named(facts(root).subject_key)
    assert bundled.parsed == len(non_ascii)  # the deferred ones, parsed on the first subject lookup


def test_root_sets_pickle_bundled_by_name_and_others_as_der(pki: TestPki) -> None:
    bundled = default_trust_store().code_signing
    assert isinstance(bundled, RootSet)
    assert len(pickle.dumps(bundled)) < 200
    assert pickle.loads(pickle.dumps(bundled)) is bundled  # the process's own copy
    mine = RootSet.of([pki.root.cert, pki.untrusted_root.cert])
    copy = pickle.loads(pickle.dumps(mine))
    assert [facts(c).der for c in copy] == [pki.root.der, pki.untrusted_root.der]
    assert copy.contains(pki.root.cert) and not copy.contains(pki.intermediate.cert)


def test_a_bundled_set_plus_certificates_stays_lazy_and_trusts_both(pki: TestPki) -> None:
    bundled = RootSet.bundled("codesignctl.pem")
    extra = (pki.root.cert,)
    joined = bundled + extra
    assert isinstance(joined, RootSet) and len(joined) == len(bundled) + 1
    assert bundled.parsed == 0  # adding reads no bundled root
    assert joined.trusts(pki.root.cert) and not bundled.trusts(pki.root.cert)
    assert joined[len(bundled)] is pki.root.cert
    assert not joined.trusts(pki.intermediate.cert)
    some_root = bundled[17]
    assert joined.trusts(some_root) and joined.named(facts(some_root).subject_key)[0] is some_root
    copy = pickle.loads(pickle.dumps(joined))
    assert copy.trusts(pki.root.cert) and len(pickle.dumps(joined)) < len(pki.root.der) + 400



def test_the_default_store_parts_take_extra_roots(pki: TestPki) -> None:
    # What a feed does with its own repository root (server/services/repository_keys.verification_trust).
    store = trust_store_from_files(None, None)
    own = (pki.root.cert,)
    joined = store.code_signing + own
    assert joined.trusts(pki.root.cert) if isinstance(joined, RootSet) else pki.root.cert in joined
    assert not RootSet.of(store.code_signing[:3]).trusts(pki.root.cert)
