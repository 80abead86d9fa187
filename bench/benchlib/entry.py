"""Start a benchmark area from its script in ``bench/``, inside the repository's virtual environment if needed."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(area: str) -> None:
    try:
        import cryptography  # noqa: F401  (the fixtures need it: are we in nuseal's environment?)

        import nuseal  # noqa: F401  (bench/batch reads the bundled roots through it)
    except ImportError:
        venv_python = REPO / ".venv" / "bin" / "python"
        # The venv's python is often a symlink to the same binary: compare the environments, not the binaries.
        if venv_python.is_file() and Path(sys.prefix).resolve() != venv_python.parent.parent.resolve():
            os.execv(venv_python, [str(venv_python), *sys.argv])
        sys.exit("error: run the benchmarks with nuseal's environment (scripts/install, then .venv/bin/python)")
    module = importlib.import_module(f"benchlib.{area}")
    sys.exit(module.main(sys.argv[1:]))
