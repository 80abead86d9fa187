"""Importing ``cryptography.x509`` for ``nuseal verify`` without importing ``email.utils`` with it.

``cryptography.x509.general_name`` does ``from email.utils import parseaddr`` at import, for one use: checking the
value a caller gives ``RFC822Name(...)`` (certificates that are read build their names without it). ``email.utils``
imports ``socket``, ``selectors``, ``random``, ``calendar``, ``locale``, ``base64``, ``quopri``, ``email.charset``
and more: ~36 M instructions, ~4.5 % of verifying the 18 real vectors, for a function a verification never calls
(issue 12, docs/performance.md "Batch verify, part 4").

:func:`load` imports ``cryptography.x509`` while ``sys.modules`` holds, under the name ``email.utils``, a module
whose only attribute is :func:`parseaddr`, and takes that module out again right after: so ``general_name`` binds
:func:`parseaddr`, which imports the real ``email.utils`` on its first call and hands the call to the real
``parseaddr``: the same answers and errors, later. Anything else that imports ``email.utils`` afterwards gets the
real module. Nothing is done when either module is loaded already (then there is nothing to save).
``tests/unit/cli/test_x509_import.py`` checks all of it.
"""

from __future__ import annotations

import sys
import types
from typing import Any

_NAME = "email.utils"


def parseaddr(*args: Any, **kwargs: Any) -> Any:
    """``email.utils.parseaddr``, imported on first use."""
    if sys.modules.get(_NAME) is _stand_in:  # only while cryptography.x509 imports, which never calls it
        del sys.modules[_NAME]
    from email.utils import parseaddr as real

    return real(*args, **kwargs)


_stand_in = types.ModuleType(_NAME, "Stands for email.utils while cryptography.x509 imports (nuseal.cli.x509_import).")
_stand_in.parseaddr = parseaddr  # type: ignore[attr-defined]


def load() -> None:
    """Import ``cryptography.x509`` with ``email.utils`` deferred (see the module docstring)."""
    if "cryptography.x509" in sys.modules or _NAME in sys.modules:
        return
    sys.modules[_NAME] = _stand_in
    try:
        import cryptography.x509  # noqa: F401
    finally:
        if sys.modules.get(_NAME) is _stand_in:
            del sys.modules[_NAME]
