"""What the verification modules take from cryptography's private modules to keep start-up lean (issue 12): the
very objects of the public API, so that nothing changes but the import cost."""

from __future__ import annotations

import subprocess
import sys

from cryptography.hazmat.primitives import serialization

from nuseal.x509 import facts, revocation


def test_encoding_enums_are_the_public_ones() -> None:
    for module in (facts, revocation):
        assert module.Encoding is serialization.Encoding
        assert module.PublicFormat is serialization.PublicFormat


def test_loading_certificates_does_not_import_the_serialization_package() -> None:
    code = ("import sys\n"
            "import nuseal.x509.facts, nuseal.x509.revocation, nuseal.x509.roots, nuseal.cms.parse\n"
            "print(' '.join(m for m in ('cryptography.hazmat.primitives.serialization', 'cryptography.x509.ocsp',\n"
            "                           'importlib.resources') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == []
