"""``nuseal admin cert ...`` and ``nuseal admin signer ...`` through the installed console script (the contract
scripts rely on: output lines, ``--json`` documents, exit codes; data options before or after the command)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.support.pki import TestPki
from tests.support.server_factories import package
from tests.support.server_fixtures import FakeClock, make_context

from nuseal.server.db.session import Database

NUSEAL = str(Path(sys.executable).with_name("nuseal"))
_ENV_CLEAN = {k: v for k, v in os.environ.items() if not k.startswith("NUSEAL_")}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NUSEAL, *args], capture_output=True, text=True, timeout=120, check=False,
                          env=_ENV_CLEAN | (env or {}))  # fmt: skip


def ok(*args: str) -> str:
    result = run(*args)
    assert result.returncode == 0, f"nuseal {' '.join(args)}: {result.stderr}"
    return result.stdout


def refused(*args: str, env: dict[str, str] | None = None) -> str:
    result = run(*args, env=env)
    assert result.returncode == 1, result
    assert result.stdout == "" and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    return result.stderr


def test_cert_and_signer_commands_through_the_console_script(tmp_path: Path, pki: TestPki) -> None:
    data = tmp_path / "feed"
    d = ["admin", "--data", str(data)]
    ok(*d, "migrate")
    for name in ("alice", "bob", "eve"):
        ok(*d, "user", "add", name)
    db = Database(f"sqlite:///{data / 'nuseal.db'}")
    try:
        package(make_context(db, data, FakeClock(datetime.now(UTC))), "Shared.Lib", "alice")
    finally:
        db.dispose()
    ok(*d, "owner", "add", "Shared.Lib", "bob")

    cer = tmp_path / "leaf.cer"
    cer.write_bytes(pki.leaf.der)
    fp = pki.leaf.sha256_fingerprint.lower()
    added = run(*d, "cert", "add", "alice", str(cer))
    assert (added.returncode, added.stdout) == (0, f"{fp}\n")
    assert added.stderr.startswith(f"Registered certificate {fp} (O=nuseal tests, CN=nuseal test leaf, expires ")
    again = run(*d, "cert", "add", "alice", str(cer))
    assert (again.returncode, again.stdout, again.stderr) == (0, f"{fp}\n",
                                                             f"Certificate {fp} already is registered to alice.\n")

    pem = tmp_path / "leaf-pem.cer"
    pem.write_bytes(pki.leaf.pem)
    assert refused(*d, "cert", "add", "alice", str(pem)).startswith(
        "error: The file must be a DER encoded binary X.509 certificate. 'leaf-pem.cer' is PEM")
    assert refused(*d, "cert", "add", "alice", str(tmp_path / "missing.cer")).startswith(
        f"error: cannot read '{tmp_path / 'missing.cer'}'")
    self_issued = tmp_path / "self.cer"
    self_issued.write_bytes(pki.self_issued.der)
    assert "it is self-issued" in refused(*d, "cert", "add", "bob", str(self_issued))
    allowed = run(*d, "cert", "add", "bob", str(self_issued), env={"NUSEAL_ALLOW_SELF_ISSUED_CERTIFICATES": "true"})
    assert (allowed.returncode, allowed.stdout) == (0, f"{pki.self_issued.sha256_fingerprint.lower()}\n")

    # data options after the command work too
    listed = ok("admin", "cert", "list", "alice", "--data", str(data)).splitlines()
    assert len(listed) == 1 and listed[0].startswith(f"{fp}  expires ")
    assert listed[0].endswith("  O=nuseal tests, CN=nuseal test leaf  issuer O=nuseal tests, CN=nuseal test "
                              "intermediate")  # fmt: skip
    document = json.loads(ok(*d, "cert", "list", "alice", "--json"))
    assert (document["schema"], document["account"]) == (1, "alice")
    [entry] = document["certificates"]
    assert (entry["sha256"], entry["expired"], entry["self_issued"]) == (fp, False, False)
    assert ok(*d, "cert", "list", "eve") == "No certificates for eve.\n"

    assert ok(*d, "signer", "set", "Shared.Lib", "bob") == "The required signer of Shared.Lib is now bob.\n"
    assert ok(*d, "signer", "set", "shared.lib", "BOB") == "The required signer of Shared.Lib already is bob.\n"
    assert refused(*d, "signer", "set", "Shared.Lib", "eve").startswith(
        "error: 'eve' is not an owner of 'Shared.Lib': the required signer must be one of its owners")
    assert ok(*d, "signer", "show", "Shared.Lib").splitlines() == [
        "Shared.Lib  required signer: bob",
        "signing: required",
        "'bob' currently has at least one certificate, which means future package submissions must be signed.",
        "owners: alice (1 certificate), bob (1 certificate)",
    ]
    assert ok(*d, "signer", "set", "Shared.Lib", "Any") == "The required signer of Shared.Lib is now Any.\n"
    shown = json.loads(ok("admin", "signer", "show", "Shared.Lib", "--json", "--data", str(data)))
    assert shown == {"schema": 1, "package": "Shared.Lib", "required_signer": "Any", "signing": "required",
                     "message": "All package owners have at least one certificate, which means future package "
                                "submissions must be signed.",
                     "owners": [{"name": "alice", "certificates": 1}, {"name": "bob", "certificates": 1}]}
    assert "no package 'Nope'" in refused(*d, "signer", "show", "Nope")

    assert ok(*d, "cert", "remove", "alice", fp.upper()) == f"Removed certificate {fp} from alice.\n"
    assert ok(*d, "cert", "remove", "alice", fp) == f"Certificate {fp} is not registered to alice.\n"
    assert "is a SHA-1 fingerprint" in refused(*d, "cert", "remove", "alice", pki.leaf.sha1_fingerprint)

    events = json.loads(ok(*d, "audit", "--json"))["events"]
    governance = [(e["action"], e["subject"]) for e in events if ":certificate:" in e["action"] or ":signer:" in
                  e["action"]]  # fmt: skip
    assert governance == [
        ("account:certificate:add", f"alice/{fp}"),
        ("account:certificate:add", f"bob/{pki.self_issued.sha256_fingerprint.lower()}"),
        ("package:signer:set", "Shared.Lib"),
        ("package:signer:set", "Shared.Lib"),
        ("account:certificate:remove", f"alice/{fp}"),
    ]
    assert {e["actor"] for e in events} == {"admin-cli"}
