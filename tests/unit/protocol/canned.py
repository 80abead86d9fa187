"""Canned V3 documents in the shapes nuget.org serves (``data/``), read as bytes like an HTTP body."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"


def body(name: str) -> bytes:
    return (DATA / name).read_bytes()


def decoded(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(body(name))
    return document
