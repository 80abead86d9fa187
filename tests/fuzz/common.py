"""Shared pieces of the robustness tests: the verify-command policy offline, a fixed clock, signed vectors."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from nuseal.verify.engine import TrustContext
from nuseal.verify.policy import RevocationMode, VerificationPolicy
from nuseal.verify.result import PackageVerdict
from nuseal.x509.revocation import RevocationChecker
from nuseal.x509.roots import default_trust_store
from tests.conftest import VECTORS

#: A fixed verification time (the vectors' certificates are judged at a timestamp, so the date does not decide).
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def signed_vectors() -> list[Path]:
    """Every signed package among the shared vectors (real and NuGet fixtures)."""
    candidates = sorted([*(VECTORS / "real").glob("*.nupkg"), *(VECTORS / "fixtures").glob("*.nupkg")])
    return [p for p in candidates if "__unsigned" not in p.name and "__MALFORMED" not in p.name]


def verify_policy() -> VerificationPolicy:
    return replace(VerificationPolicy.verify_command(), revocation_mode=RevocationMode.OFFLINE)


def assert_clean_verdict(verdict: PackageVerdict) -> None:
    """A verdict reached through the checks, not through the engine's last-resort exception handler."""
    assert "internal_error" not in verdict.extra, verdict.extra.get("internal_error")
    assert verdict.valid or verdict.error is not None or verdict.errors, verdict
    for finding in verdict.findings:
        assert finding.code.value.startswith("NU"), finding


def offline_trust() -> TrustContext:
    """nuseal's default roots, revocation offline (what EXPECTED.md states for the vectors)."""
    return TrustContext(default_trust_store(), RevocationChecker(RevocationMode.OFFLINE))
