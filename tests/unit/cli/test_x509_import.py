"""nuseal.cli.x509_import: cryptography.x509 imported without email.utils, and RFC822Name(...) answering exactly as
with the real parseaddr (which it then imports); nothing done when either module was loaded before."""

from __future__ import annotations

import json
import subprocess
import sys

#: RFC822Name values whose check ``parseaddr`` decides (valid, a display name, empty, odd forms).
_VALUES = ["a@example.com", "Name <a@example.com>", "", "<a@example.com>", "a", "a@b@c", "\"q\" <a@b>", "a@b, c@d",
           "(comment) a@b", "@", "a@"]

_OUTCOMES = """
import json, sys
{prepare}
from cryptography import x509
before = {{"email.utils": "email.utils" in sys.modules, "email": "email" in sys.modules}}
outcomes = []
for value in {values!r}:
    try:
        outcomes.append(["ok", x509.RFC822Name(value).value])
    except ValueError as exc:
        outcomes.append(["ValueError", str(exc)])
import email.utils
real = email.utils.parseaddr("Name <a@example.com>") == ("Name", "a@example.com") and hasattr(email.utils, "formataddr")
print(json.dumps({{"before": before, "outcomes": outcomes, "real": real,
                  "bound_real": x509.general_name.parseaddr is email.utils.parseaddr}}))
"""


def _run(prepare: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", _OUTCOMES.format(prepare=prepare, values=_VALUES)],
                          capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_cryptography_x509_loads_without_email_and_rfc822_names_answer_as_before() -> None:
    deferred = _run("from nuseal.cli import x509_import\nx509_import.load()")
    plain = _run("")
    assert deferred["before"] == {"email.utils": False, "email": False}
    assert plain["before"]["email.utils"] is True  # type: ignore[index]  (what the stand-in saves)
    assert deferred["outcomes"] == plain["outcomes"]
    assert any(kind == "ValueError" for kind, _ in deferred["outcomes"])  # type: ignore[attr-defined]
    assert any(kind == "ok" for kind, _ in deferred["outcomes"])  # type: ignore[attr-defined]
    assert deferred["real"] is True  # later importers get the real module
    assert deferred["bound_real"] is False and plain["bound_real"] is True


def test_nothing_is_done_when_email_utils_is_loaded_already() -> None:
    loaded = _run("import email.utils\nfrom nuseal.cli import x509_import\nx509_import.load()")
    assert loaded["bound_real"] is True


_REFUSED_IMPORT = """
import sys


class Refuse:
    @staticmethod
    def find_spec(name, *args):
        if name == "cryptography.x509":
            raise ImportError("refused")
        return None


sys.meta_path.insert(0, Refuse())
from nuseal.cli import x509_import
try:
    x509_import.load()
except ImportError:
    print("refused", "email.utils" in sys.modules)
"""


def test_the_stand_in_is_taken_out_again_when_the_import_fails() -> None:
    done = subprocess.run([sys.executable, "-c", _REFUSED_IMPORT], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["refused", "False"]
