"""``verify_package(read_identity=False)`` (a feed re-signing its own packages) judges exactly as the default: only
the verdict's id and version are left out."""

from __future__ import annotations

import csv
from datetime import UTC, datetime

from tests.conftest import VECTORS

from nuseal.enums import RevocationMode
from nuseal.verify.engine import TrustContext, verify_package
from nuseal.verify.policy import VerificationPolicy
from nuseal.x509.revocation import RevocationChecker
from nuseal.x509.roots import default_trust_store


def test_verdicts_without_the_identity_are_the_same_otherwise() -> None:
    with (VECTORS / "EXPECTED.tsv").open(newline="") as f:
        paths = [row["path"] for row in csv.DictReader(f, delimiter="\t")]
    assert paths
    policy, now = VerificationPolicy.verify_command(), datetime.now(UTC)
    with RevocationChecker(RevocationMode.OFFLINE) as checker:
        trust = TrustContext(default_trust_store(), checker)
        identified = 0
        for path in paths:
            full = verify_package(VECTORS / path, policy=policy, trust=trust, now=now, compute_content_hash=True)
            bare = verify_package(VECTORS / path, policy=policy, trust=trust, now=now, compute_content_hash=True,
                                  read_identity=False)  # fmt: skip
            assert bare.package_id is None and bare.version is None
            identified += full.package_id is not None
            assert bare.to_dict() | {"id": full.package_id, "version": full.version} == full.to_dict()
    assert identified > len(paths) // 2  # the default does read them
