"""The import contracts (pyproject.toml, run by lint-imports) cover every top-level module of nuseal."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import nuseal

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
FRONT_ENDS = {"nuseal.__main__", "nuseal.cli", "nuseal.server"}
SERVER_LIBRARIES = {"fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg", "boto3", "botocore", "huey",
                    "redis"}


def _top_level_modules() -> set[str]:
    root = Path(nuseal.__file__).parent
    packages = {p.name for p in root.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in root.glob("*.py") if p.name != "__init__.py"}
    return {f"nuseal.{name}" for name in packages | modules}


def _contract(kind: str) -> dict[str, Any]:
    contracts = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]
    (contract,) = [c for c in contracts if c["type"] == kind]
    return contract


def test_the_layers_contract_lists_every_top_level_module() -> None:
    listed = {name.strip("() ") for layer in _contract("layers")["layers"] for name in re.split(r"[:|]", layer)}
    assert _top_level_modules() <= listed, "add the new module to the layers contract in pyproject.toml"


def test_the_core_contract_covers_every_module_but_the_front_ends() -> None:
    contract = _contract("forbidden")
    core = _top_level_modules() - FRONT_ENDS
    assert set(contract["source_modules"]) == core, "the core's forbidden contract must list exactly the core"
    forbidden = set(contract["forbidden_modules"])
    assert {"nuseal.cli", "typer", "rich"} | SERVER_LIBRARIES <= forbidden
    assert any(m.startswith("nuseal.server") for m in forbidden)
