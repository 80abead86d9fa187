"""The one finding type and its JSON shapes (STYLE §7.4; the ``--json`` contract in the README)."""

from __future__ import annotations

import re

import pytest

from nuseal.codes import IssueCode, NuCode
from nuseal.findings import Finding, Severity, Target
from nuseal.record import replace
from nuseal.verify.result import PackageVerdict, issue_dict

FINDING = Finding(NuCode.NU3018, Severity.WARNING, "untrusted root", Target.PRIMARY, "AB" * 32)


def test_to_dict_has_the_five_fields_with_string_values() -> None:
    assert FINDING.to_dict() == {"code": "NU3018", "severity": "warning", "message": "untrusted root",
                                 "target": "primary", "subject": "AB" * 32}


def test_an_issue_code_serializes_as_its_name() -> None:
    finding = Finding(IssueCode.UNSAFE_PACKAGE_CONTENT, Severity.ERROR, "entry '../x' escapes")
    assert finding.to_dict()["code"] == "UnsafePackageContent"
    assert finding.target == "package" and finding.subject is None and finding.is_error


def test_str_is_code_then_message() -> None:
    assert str(FINDING) == "NU3018: untrusted root"


def test_verify_json_issue_keeps_schema_1_keys_first_and_adds_the_rest() -> None:
    data = issue_dict(FINDING)
    assert list(data)[:3] == ["code", "level", "message"]
    assert data["level"] == data["severity"] == "warning"
    assert {k: data[k] for k in ("target", "subject")} == {"target": "primary", "subject": "AB" * 32}


def test_findings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        FINDING.message = "changed"  # type: ignore[misc]
    assert replace(FINDING, severity=Severity.ERROR).is_error


def test_issue_codes_are_pascal_case_documented_and_never_nu_codes() -> None:
    nu_values = {c.value for c in NuCode}
    for code in IssueCode:
        assert re.fullmatch(r"(?:[A-Z][a-z0-9]+)+", code.value), code
        assert code.value not in nu_values
        assert code.summary.endswith(".")


def test_a_verdict_error_becomes_an_error_finding_with_its_code() -> None:
    verdict = PackageVerdict("x.nupkg", None, None, False, (), error="'x.nupkg' is not a valid package file")
    error = verdict.error_finding
    assert error is not None and error.code is IssueCode.INVALID_PACKAGE_FILE and error.is_error
    assert verdict.to_dict()["error_code"] == "InvalidPackageFile"
    broken = replace(verdict, error_code=IssueCode.VERIFICATION_FAILED)
    assert broken.error_finding is not None and broken.error_finding.code is IssueCode.VERIFICATION_FAILED
    verified = PackageVerdict("y.nupkg", None, None, False, ())
    assert verified.error_finding is None and verified.to_dict()["error_code"] is None
