"""The ``--json`` document: one object for the whole run, stable keys, ``schema`` version 1."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from nuseal.verify.result import PackageVerdict

SCHEMA_VERSION = 1


def verify_document(verdicts: Sequence[PackageVerdict]) -> dict[str, Any]:
    """``{"schema": 1, "packages": [...], "errors": E, "warnings": W, "valid": bool}``."""
    packages = [v.to_dict() for v in verdicts]
    errors = sum(len(v.errors) + (1 if v.error else 0) for v in verdicts)
    warnings = sum(len(v.warnings) for v in verdicts)
    return {"schema": SCHEMA_VERSION, "packages": packages, "errors": errors, "warnings": warnings,
            "valid": all(v.valid for v in verdicts) and bool(verdicts)}


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False, default=str)
