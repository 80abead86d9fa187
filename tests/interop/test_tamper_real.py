"""NuGet's tamper suite (spec §9.2) on real nuget.org packages: default trust roots, offline revocation.

``TAMPERS`` is shared with ``tests/integration/test_tamper_signed.py``, which runs it on nuseal-signed packages.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nuseal.enums import RevocationMode
from nuseal.verify.engine import TrustContext, verify_package
from nuseal.verify.policy import VerificationPolicy
from nuseal.verify.result import PackageVerdict, Severity
from nuseal.x509.revocation import RevocationChecker
from nuseal.x509.roots import default_trust_store
from tests.conftest import VECTORS
from tests.support import tamper

Tamper = Callable[[Path, Path], None]


@dataclass(frozen=True)
class Case:
    """One tamper and its outcome: the exact error codes under the verify policy, validity under accept mode."""

    name: str
    apply: Tamper
    verify_errors: frozenset[str]
    accept_valid: bool


def _case(name: str, fn: Callable[..., None], errors: str, accept_valid: bool, **kwargs: Any) -> Case:
    apply: Tamper = functools.partial(fn, **kwargs) if kwargs else fn
    return Case(name, apply, frozenset(filter(None, errors.split(","))), accept_valid)


TAMPERS: list[Case] = [
    # Integrity (NU3008): always an error, under every policy.
    _case("delete-entry", tamper.delete_entry, "NU3008", False),
    _case("add-entry", tamper.add_entry, "NU3008", False),
    _case("append-to-entry", tamper.append_to_entry, "NU3008", False),
    _case("truncate-entry", tamper.truncate_entry, "NU3008", False),
    _case("entry-dos-time", tamper.change_entry_time, "NU3008", False),
    _case("eocd-comment", tamper.set_eocd_comment, "NU3008", False),
    _case("trailing-bytes", tamper.append_trailing_bytes, "NU3008", False),
    # The signature itself.
    _case("signature-removed", tamper.remove_signature, "NU3004", True),
    _case("signature-random-bytes", tamper.randomize_signature, "NU3003", True),
    _case("uppercase-name", tamper.uppercase_signature_name, "NU3004", True),
    # Signature entry fields (NU3005).
    _case("deflated", tamper.deflate_signature, "NU3005", True),
    _case("flags-nonzero", tamper.set_signature_flags, "NU3005", True, flags=1),
    _case("size-mismatch", tamper.set_signature_size_mismatch, "NU3005", True),
    _case("external-attributes", tamper.set_signature_external_attributes, "NU3005", True),
    _case("utf8-flag", tamper.set_signature_utf8_flag, "NU3005", True),
    # Moving the signature entry is allowed (spec §1.2).
    *(
        _case(f"moved-{where}-{order}", mover, "", True, order=order)
        for where, mover in (("first", tamper.move_signature_first), ("middle", tamper.move_signature_to_middle))
        for order in ("local", "central", "both")
    ),
]

REAL_PACKAGES = ["Newtonsoft.Json.13.0.1", "Microsoft.Bcl.AsyncInterfaces.8.0.0", "Antlr.3.5.0.2"]


def verify_policy() -> VerificationPolicy:
    return VerificationPolicy.verify_command()


def accept_policy() -> VerificationPolicy:
    return VerificationPolicy.accept_mode()


def error_codes(verdict: PackageVerdict) -> set[str]:
    return {f.code.value for f in verdict.findings if f.severity is Severity.ERROR}


def check_tamper(case: Case, src: Path, dst: Path, trust: TrustContext, now: datetime) -> None:
    """Apply ``case`` to ``src`` (a package valid under both policies) and assert the exact verdicts."""
    case.apply(src, dst)
    assert dst.read_bytes() != src.read_bytes()
    strict = verify_package(dst, policy=verify_policy(), trust=trust, now=now)
    assert strict.error is None, strict.error
    assert error_codes(strict) == case.verify_errors, strict.findings
    assert strict.valid is (not case.verify_errors)
    lenient = verify_package(dst, policy=accept_policy(), trust=trust, now=now)
    assert lenient.valid is case.accept_valid, lenient.findings
    if case.accept_valid:
        assert not lenient.errors, lenient.findings


@pytest.fixture(scope="module")
def trust() -> TrustContext:
    return TrustContext(default_trust_store(), RevocationChecker(RevocationMode.OFFLINE))


@pytest.mark.parametrize("package", REAL_PACKAGES)
def test_untampered_real_package_is_valid(package: str, trust: TrustContext) -> None:
    for policy in (verify_policy(), accept_policy()):
        verdict = verify_package(VECTORS / "real" / f"{package}.nupkg", policy=policy, trust=trust,
                                 now=datetime.now(UTC))
        assert verdict.valid and not verdict.errors, verdict.findings


@pytest.mark.parametrize("package", REAL_PACKAGES)
@pytest.mark.parametrize("case", TAMPERS, ids=[c.name for c in TAMPERS])
def test_tampered_real_package(case: Case, package: str, trust: TrustContext, tmp_path: Path) -> None:
    check_tamper(case, VECTORS / "real" / f"{package}.nupkg", tmp_path / f"{package}.nupkg", trust,
                 datetime.now(UTC))
