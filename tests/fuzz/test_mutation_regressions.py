"""The five crash causes of the mutation campaign (issue 8) as regression tests: the issue's recorded examples,
plus one for cause 2 (which had none) and one damaging a certificate the chain needs for cause 3.

Each example flips one byte (XOR) of a real signed vector. Before the fix ``verify_package`` raised a non-nuseal
exception for each; now each gives a verdict reached through the checks, with the NU code NuGet would report.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nuseal.findings import Severity
from nuseal.verify.engine import TrustContext, verify_package
from tests.conftest import VECTORS
from tests.fuzz.common import NOW, RECORDED_MUTANTS, assert_clean_verdict, verify_policy


def _mutant(tmp_path: Path, package: str, offset: int, xor: int) -> Path:
    data = bytearray((VECTORS / "real" / package).read_bytes())
    data[offset] ^= xor
    path = tmp_path / package
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(("cause", "package", "offset", "xor", "code"), RECORDED_MUTANTS,
                         ids=[e[0] for e in RECORDED_MUTANTS])
def test_recorded_mutant_gives_a_verdict(cause: str, package: str, offset: int, xor: int, code: str,
                                         trust: TrustContext, tmp_path: Path) -> None:
    verdict = verify_package(_mutant(tmp_path, package, offset, xor), policy=verify_policy(), trust=trust, now=NOW)
    assert_clean_verdict(verdict)
    if code == "valid":
        assert verdict.valid and not verdict.errors, verdict.findings
        return
    assert not verdict.valid
    errors = {f.code.value for f in verdict.findings if f.severity is Severity.ERROR}
    assert code in errors, (cause, verdict.findings)
