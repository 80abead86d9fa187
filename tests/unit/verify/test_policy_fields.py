"""Every ``VerificationPolicy`` field changes some verdict: no field is write-only (STYLE §7.5, §8).

Each scenario verifies one package under a base policy and under the base with one field changed, and names what
must differ. Adding a field without a scenario fails ``test_every_field_has_a_scenario``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support.pki import TestPki
from tests.support.signed_packages import Packages, trust_for

from nuseal.codes import IssueCode, NuCode
from nuseal.enums import SignatureKind
from nuseal.findings import Severity
from nuseal.record import fields, replace
from nuseal.trust.policy_builder import fingerprint_allow_list
from nuseal.verify.engine import TrustContext, verify_package
from nuseal.verify.policy import CountersignatureBehavior, Placement, VerificationPolicy
from nuseal.verify.result import PackageVerdict, Status


@dataclass(frozen=True)
class Scenario:
    package: Callable[[Packages], Path]
    base: Callable[[], VerificationPolicy]
    value: Callable[[TestPki], Any]  # the changed field's new value
    before: Callable[[PackageVerdict], bool]
    after: Callable[[PackageVerdict], bool]
    trust: Callable[[TestPki], TrustContext] = trust_for


def codes(verdict: PackageVerdict, severity: Severity | None = None) -> set[str]:
    return {f.code.value for f in verdict.findings if severity is None or f.severity is severity}


def valid(verdict: PackageVerdict) -> bool:
    return verdict.valid


def invalid(verdict: PackageVerdict) -> bool:
    return not verdict.valid


verify_command = VerificationPolicy.verify_command
SCENARIOS: dict[str, Scenario] = {
    "allow_unsigned": Scenario(
        lambda p: p.unsigned, verify_command, lambda _: True,
        lambda v: invalid(v) and codes(v) == {"NU3004"}, lambda v: valid(v) and not v.findings),
    "allow_illegal": Scenario(
        lambda p: p.corrupt_signature, verify_command, lambda _: True,
        lambda v: invalid(v) and bool(codes(v, Severity.ERROR)),
        lambda v: valid(v) and not codes(v, Severity.ERROR) and bool(codes(v, Severity.WARNING))),
    "allow_untrusted": Scenario(
        lambda p: p.untrusted, verify_command, lambda _: True,
        lambda v: invalid(v) and "NU3018" in codes(v, Severity.ERROR),
        lambda v: valid(v) and "NU3018" in codes(v, Severity.WARNING)),
    # The TSA's root is not trusted for timestamping here, so the timestamp is invalid (NU3028).
    "allow_ignore_timestamp": Scenario(
        lambda p: p.author, verify_command, lambda _: True,
        lambda v: invalid(v) and "NU3028" in codes(v), lambda v: valid(v),
        trust=lambda pki: trust_for(pki, timestamping=(pki.untrusted_root,))),
    "allow_multiple_timestamps": Scenario(
        lambda p: p.two_timestamps, verify_command, lambda _: False,
        lambda v: valid(v), lambda v: invalid(v) and "NU3000" in codes(v, Severity.ERROR)),
    "allow_no_timestamp": Scenario(
        lambda p: p.author_no_timestamp, verify_command, lambda _: False,
        lambda v: valid(v) and "NU3027" in codes(v, Severity.WARNING),
        lambda v: invalid(v) and "NU3027" in codes(v, Severity.ERROR)),
    # Offline revocation: NU3018 is information only, but an unknown status still counts when it is not allowed.
    "allow_unknown_revocation": Scenario(
        lambda p: p.author, verify_command, lambda _: False,
        lambda v: valid(v) and "NU3018" in codes(v, Severity.INFO), lambda v: invalid(v)),
    "report_unknown_revocation": Scenario(
        lambda p: p.author, verify_command, lambda _: False,
        lambda v: "NU3018" in codes(v, Severity.INFO), lambda v: valid(v) and "NU3018" not in codes(v)),
    "verification_targets": Scenario(
        lambda p: p.author, verify_command, lambda _: frozenset({SignatureKind.REPOSITORY}),
        lambda v: valid(v) and v.signatures[0].status is Status.VALID,
        lambda v: invalid(v) and codes(v, Severity.ERROR) == {IssueCode.NO_VERIFIABLE_SIGNATURE.value}
        and v.signatures[0].status is Status.UNKNOWN),
    "signature_placement": Scenario(
        lambda p: p.countersigned, verify_command, lambda _: Placement.PRIMARY,
        lambda v: valid(v) and [s.status for s in v.signatures] == [Status.VALID, Status.VALID],
        lambda v: valid(v) and [s.status for s in v.signatures] == [Status.VALID, Status.UNKNOWN]),
    "repository_countersignature": Scenario(
        lambda p: p.author, verify_command, lambda _: CountersignatureBehavior.ALWAYS,
        lambda v: valid(v), lambda v: invalid(v) and "NU3038" in codes(v, Severity.ERROR)),
    "allow_lists": Scenario(
        lambda p: p.author, verify_command, lambda _: (fingerprint_allow_list(["00" * 32]),),
        lambda v: valid(v), lambda v: invalid(v) and "NU3034" in codes(v, Severity.ERROR)),
    "allow_untrusted_root_fingerprints": Scenario(
        lambda p: p.untrusted, verify_command, lambda pki: frozenset({pki.untrusted_leaf.sha256_fingerprint}),
        lambda v: invalid(v) and "NU3018" in codes(v, Severity.ERROR),
        lambda v: valid(v) and not codes(v, Severity.ERROR)),
    "unsigned_message": Scenario(
        lambda p: p.unsigned, verify_command, lambda _: "Unsigned packages are refused here.",
        lambda v: v.findings[0].message != "Unsigned packages are refused here.",
        lambda v: invalid(v) and v.findings[0].message == "Unsigned packages are refused here."),
}


def test_every_field_has_a_scenario() -> None:
    assert set(SCENARIOS) == {f.name for f in fields(VerificationPolicy)}


@pytest.mark.parametrize("field", sorted(SCENARIOS))
def test_changing_the_field_changes_the_verdict(field: str, pki: TestPki, signed_packages: Packages) -> None:
    scenario = SCENARIOS[field]
    base = scenario.base()
    changed = replace(base, **{field: scenario.value(pki)})
    assert getattr(changed, field) != getattr(base, field)
    path = scenario.package(signed_packages)
    trust = scenario.trust(pki)
    before = verify_package(path, policy=base, trust=trust, now=signed_packages.now)
    after = verify_package(path, policy=changed, trust=trust, now=signed_packages.now)
    assert scenario.before(before), before.findings
    assert scenario.after(after), after.findings
    assert before.to_dict() != after.to_dict()


def test_the_two_timestamp_package_really_has_two(signed_packages: Packages, pki: TestPki) -> None:
    verdict = verify_package(signed_packages.two_timestamps, policy=verify_command(), trust=trust_for(pki),
                             now=signed_packages.now)
    assert verdict.valid and NuCode.NU3000 not in {f.code for f in verdict.findings}
    strict = replace(verify_command(), allow_multiple_timestamps=False)
    findings = verify_package(signed_packages.two_timestamps, policy=strict, trust=trust_for(pki),
                              now=signed_packages.now).findings
    assert any(f.code is NuCode.NU3000 and "Multiple timestamps" in f.message for f in findings)
