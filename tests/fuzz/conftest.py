"""Fixtures of the robustness tests."""

from __future__ import annotations

import pytest

from nuseal.verify.engine import TrustContext
from tests.fuzz.common import offline_trust


@pytest.fixture(scope="module")
def trust() -> TrustContext:
    return offline_trust()
