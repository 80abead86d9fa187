"""Verifying many packages, and the accept / exit decision shared by ``nuseal verify``, ``nuseal install`` and the
feed server.

Guarantees: results come back in input order; one bad package never stops the batch (an unreadable file is a
verdict with ``error``, and so is a bug in nuseal while verifying it: ``IssueCode.VERIFICATION_FAILED``, never an
exception). ``on_verdict`` is called once per package, in input order, as soon as its verdict is known, so a caller
can print or advance a progress bar while the batch runs.

Parallelism slots in behind ``verify_batch``: the ``VerificationSetup`` pickles, so a process pool's initializer
can receive it and open one ``TrustContext`` per worker; workers call ``verify_guarded`` per path and ``imap`` keeps
input order, so callers, ``on_verdict`` and the result order stay the same.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from nuseal.codes import IssueCode
from nuseal.verify.engine import TrustContext, verify_package
from nuseal.verify.policy import VerificationPolicy
from nuseal.verify.result import PackageVerdict
from nuseal.verify.setup import VerificationSetup

if TYPE_CHECKING:
    import httpx

#: Called with each verdict, in input order, as soon as it is known.
VerdictCallback = Callable[[PackageVerdict], None]


def expand_paths(patterns: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Paths and globs → existing files (sorted per pattern, patterns in order) and the patterns that matched
    nothing. ``**`` recurses, as in NuGet's verify command."""
    found: list[Path] = []
    missing: list[str] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        else:
            matches = [Path(pattern)] if Path(pattern).is_file() else []
        if not matches:
            missing.append(pattern)
        found.extend(matches)
    return found, missing


def missing_verdict(pattern: str) -> PackageVerdict:
    """The verdict for a path or glob that names no file (NuGet: "File does not exist")."""
    return PackageVerdict(pattern, None, None, False, (), error=f"File does not exist ({pattern}).",
                          error_code=IssueCode.PACKAGE_NOT_FOUND)


def verify_guarded(path: Path, *, policy: VerificationPolicy, trust: TrustContext, now: datetime,
                   compute_content_hash: bool = False) -> PackageVerdict:
    """``verify_package`` that never raises: an exception escaping the engine (a bug, or an environment failure
    such as MemoryError) becomes this package's verdict, invalid, with ``error_code`` VERIFICATION_FAILED."""
    try:
        return verify_package(path, policy=policy, trust=trust, now=now, compute_content_hash=compute_content_hash)
    except Exception as exc:
        return PackageVerdict(str(path), None, None, False, (), error_code=IssueCode.VERIFICATION_FAILED,
                              error=f"'{path}' could not be verified: internal error {type(exc).__name__}: {exc}")


def verify_batch(paths: Sequence[Path], setup: VerificationSetup, *, now: datetime,
                 on_verdict: VerdictCallback | None = None, client: httpx.Client | None = None,
                 compute_content_hash: bool = False) -> list[PackageVerdict]:
    """Verify ``paths`` in order under ``setup`` as of ``now``; one verdict per path, in input order.

    One ``TrustContext`` (one revocation checker and its cache) serves the whole batch. ``client`` is the HTTP
    client for revocation requests (optional).
    """
    verdicts: list[PackageVerdict] = []
    with setup.open(client) as trust:
        for path in paths:
            verdict = verify_guarded(path, policy=setup.policy, trust=trust, now=now,
                                     compute_content_hash=compute_content_hash)
            verdicts.append(verdict)
            if on_verdict is not None:
                on_verdict(verdict)
    return verdicts


def accepted(verdict: PackageVerdict) -> bool:
    """The one accept decision: the package is valid and no error-level finding was reported (docs/decisions.md,
    "Exit code"; NuGet counts errors only, nuseal also requires validity so a corrupt download never passes)."""
    return verdict.valid and not verdict.errors


def exit_code(verdicts: Sequence[PackageVerdict]) -> int:
    """0 only when there was at least one package and every one is accepted; 1 otherwise."""
    return 0 if verdicts and all(accepted(v) for v in verdicts) else 1
