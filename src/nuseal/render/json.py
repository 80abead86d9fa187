"""The ``--json`` documents of ``verify`` and ``install``: one object for the whole run, stable keys.

The verify document is a contract (README): ``schema`` 1, keys are only ever added, never renamed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nuseal.errors import NusealError
from nuseal.verify.result import PackageVerdict

if TYPE_CHECKING:
    from nuseal.client.install import InstalledPackage

SCHEMA_VERSION = 1


def verify_document(verdicts: Sequence[PackageVerdict]) -> dict[str, Any]:
    """``{"schema": 1, "packages": [...], "errors": E, "warnings": W, "valid": bool}``."""
    packages = [v.to_dict() for v in verdicts]
    errors = sum(len(v.errors) + (1 if v.error else 0) for v in verdicts)
    warnings = sum(len(v.warnings) for v in verdicts)
    return {"schema": SCHEMA_VERSION, "packages": packages, "errors": errors, "warnings": warnings,
            "valid": all(v.valid for v in verdicts) and bool(verdicts)}


def install_document(installed: Sequence[InstalledPackage], failure: NusealError | None) -> dict[str, Any]:
    """``{"success": bool, "installed": [...], "errors": [{"level", "code", "message", ...}]}``.

    An ``InstallError`` contributes its findings (restore's lines); any other error (feed, resolution) is one entry
    whose code is its NU code or null.
    """
    # Imported here: ``nuseal verify --json`` uses this module and must not pay for the feed client (httpx).
    from nuseal.client.install import InstallError

    errors: list[dict[str, Any]] = []
    if isinstance(failure, InstallError):
        errors = [{"level": f.severity.value, **f.to_dict()} for f in failure.findings]
    elif failure is not None:
        errors = [{"level": "error", "code": failure.code.value if failure.code else None, "message": str(failure)}]
    return {"success": failure is None, "installed": [p.to_dict() for p in installed], "errors": errors}


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False, default=str)
