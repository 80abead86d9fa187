"""``nuseal admin``: every command through the installed ``nuseal`` console script in a subprocess (the contract
scripts rely on: output lines, ``--json`` documents, exit codes), then error cases in-process."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.support.server_factories import package
from tests.support.server_fixtures import DatabaseFactory, FakeClock, make_context
from typer.testing import CliRunner

from nuseal.cli.app import app
from nuseal.server.db import migrate
from nuseal.server.db.session import Database
from nuseal.server.services import apikeys

NUSEAL = str(Path(sys.executable).with_name("nuseal"))
HEAD = migrate.head_revision()  # the newest revision this nuseal ships
_ENV_CLEAN = {k: v for k, v in os.environ.items() if not k.startswith("NUSEAL_")}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NUSEAL, *args], capture_output=True, text=True, timeout=120, check=False,
                          env=_ENV_CLEAN | (env or {}))  # fmt: skip


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    result = run(*args, env=env)
    assert result.returncode == 0, f"nuseal {' '.join(args)}: {result.stderr}"
    return result.stdout


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "feed"


def with_context(data: Path, action: Callable[..., object]) -> object:
    """Run ``action(ctx)`` in-process on the CLI's own SQLite database (to seed packages, check keys)."""
    db = Database(f"sqlite:///{data / 'nuseal.db'}")
    try:
        return action(make_context(db, data, FakeClock(datetime.now(UTC))))
    finally:
        db.dispose()


def test_every_admin_command_through_the_console_script(data: Path) -> None:
    d = ["admin", "--data", str(data)]
    assert ok(*d, "migrate") == f"Migrated the database from empty to revision {HEAD}.\n"
    assert ok(*d, "migrate") == f"The database is up to date (revision {HEAD}).\n"
    assert ok(*d, "user", "add", "alice", "--email", "alice@example.com") == "Added user alice.\n"
    assert ok(*d, "user", "add", "sam", "--site-admin") == "Added user sam (site admin).\n"
    ok(*d, "user", "add", "bob")
    assert ok(*d, "org", "add", "contoso", "--admin", "alice") == "Added organization contoso with admin alice.\n"
    assert ok(*d, "org", "member", "add", "contoso", "bob") == "Added bob to contoso as collaborator.\n"

    created = run(*d, "apikey", "create", "contoso", "--user", "bob", "--scope", "package:push", "--scope",
                  "package:unlist", "--glob", "Contoso.*", "--expires-days", "30", "--description", "CI")  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert re.fullmatch(r"nsk_[0-9a-f]{12}_[a-z2-7]{52}\n", created.stdout)
    token = created.stdout.strip()
    key_id = token.split("_")[1]
    assert f"Created API key {key_id} for contoso held by bob" in created.stderr
    principal = with_context(data, lambda ctx: apikeys.authenticate(ctx, token))
    assert isinstance(principal, apikeys.Principal) and principal.key is not None
    assert principal.key.globs == ("Contoso.*",)

    listed = json.loads(ok(*d, "apikey", "list", "contoso", "--json"))
    assert listed["schema"] == 1 and listed["owner"] == "contoso"
    [key] = listed["keys"]
    assert (key["key_id"], key["holder"], key["scopes"], key["globs"], key["state"], key["description"]) == (
        key_id, "bob", ["package:push", "package:unlist"], ["Contoso.*"], "active", "CI"
    )
    assert token not in json.dumps(listed)
    assert ok(*d, "apikey", "list", "contoso").startswith(f"{key_id}  active    holder bob")
    assert ok(*d, "apikey", "revoke", "contoso", key_id) == f"Revoked API key {key_id} of contoso.\n"

    with_context(data, lambda ctx: package(ctx, "Contoso.Lib", "contoso", versions=["1.0.0", "2.0.0-beta"]))
    assert ok(*d, "owner", "add", "Contoso.Lib", "alice") == "Added alice as an owner of Contoso.Lib.\n"
    assert json.loads(ok(*d, "owner", "list", "contoso.lib", "--json"))["owners"] == ["alice", "contoso"]
    assert ok(*d, "owner", "remove", "Contoso.Lib", "contoso") == "Removed contoso from the owners of Contoso.Lib.\n"
    assert ok(*d, "owner", "list", "Contoso.Lib") == "alice\n"

    assert ok(*d, "package", "list") == (
        "Contoso.Lib  owners: alice\n  1.0.0  available  listed\n  2.0.0-beta  available  listed\n"
    )
    assert ok(*d, "package", "delete", "Contoso.Lib", "1.0.0") == "Deleted Contoso.Lib 1.0.0.\n"
    document = json.loads(ok(*d, "package", "list", "--json"))
    assert [v["version"] for v in document["packages"][0]["versions"]] == ["2.0.0-beta"]
    assert not (data / "blobs" / "packages" / "contoso.lib" / "1.0.0").exists() or not any(
        (data / "blobs" / "packages" / "contoso.lib" / "1.0.0").iterdir()
    )

    assert ok(*d, "org", "member", "remove", "contoso", "bob") == "Removed bob from contoso; revoked 0 API key(s).\n"

    events = json.loads(ok(*d, "audit", "--json"))["events"]
    assert [e["action"] for e in events] == [
        "database:schema:migrate", "account:user:add", "account:user:add", "account:user:add",
        "account:organization:add", "account:member:add", "account:apikey:create", "account:apikey:revoke",
        "package:owner:add", "package:owner:remove", "package:version:delete", "account:member:remove",
    ]  # fmt: skip
    assert {e["actor"] for e in events} == {"admin-cli"}
    assert (events[0]["subject"], events[0]["before"], events[0]["after"]) == (
        "database", {"revision": None}, {"revision": HEAD}
    )
    last_two = ok(*d, "audit", "--limit", "2").splitlines()
    assert len(last_two) == 2 and last_two[1].endswith("admin-cli  account:member:remove  contoso/bob")


def test_bad_input_is_one_error_line_and_exit_1_usage_errors_exit_2(data: Path) -> None:
    d = ["admin", "--data", str(data)]
    ok(*d, "user", "add", "alice")
    bad = run(*d, "user", "add", "Alice")
    assert (bad.returncode, bad.stdout, bad.stderr) == (1, "", "error: the name 'Alice' is already taken\n")
    usage = run(*d, "user", "add")
    assert usage.returncode == 2 and "Missing argument 'NAME'" in usage.stderr and usage.stdout == ""
    setting = run("admin", "--data", str(data), "--database-url", "mysql://x", "migrate")
    assert setting.returncode == 1
    assert setting.stderr.startswith("error: invalid database_url 'mysql://x' (option --database-url)")
    assert setting.stderr.count("\n") == 1


def test_the_data_folder_can_come_from_the_environment_or_a_config_file(tmp_path: Path) -> None:
    ok("admin", "user", "add", "alice", env={"NUSEAL_DATA": str(tmp_path / "env-data")})
    assert (tmp_path / "env-data" / "nuseal.db").is_file()
    config = tmp_path / "nuseal.toml"
    config.write_text('data_dir = "cfg-data"\n')
    ok("admin", "--config", str(config), "user", "add", "bob")
    assert (tmp_path / "cfg-data" / "nuseal.db").is_file()


runner = CliRunner()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with alice, bob, organization contoso (admin alice) and Alice.Lib 1.0.0 owned by alice."""
    folder = tmp_path_factory.mktemp("seeded") / "feed"
    for setup in (["user", "add", "alice"], ["user", "add", "bob"], ["org", "add", "contoso", "--admin", "alice"]):
        assert runner.invoke(app, ["admin", "--data", str(folder), *setup]).exit_code == 0
    with_context(folder, lambda ctx: package(ctx, "Alice.Lib", "alice"))
    return folder


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["org", "add", "contoso", "--admin", "ghost"], "error: no account named 'ghost'"),
        (["org", "member", "add", "alice", "bob"], "error: 'alice' is a user, not an organization"),
        (["org", "member", "remove", "contoso", "alice"], "error: alice is the last admin of contoso"),
        (["apikey", "create", "contoso"], "error: a key acting for the organization contoso needs the member"),
        (["apikey", "create", "alice", "--scope", "package:delete"], "error: unknown scope 'package:delete'"),
        (["apikey", "create", "alice", "--glob", "a/b"], "error: invalid package glob 'a/b'"),
        (["apikey", "create", "alice", "--expires-days", "0"], "error: expiry must be 1 to 3650 days"),
        (["apikey", "revoke", "alice", "0123456789ab"], "error: no API key '0123456789ab' acting for alice"),
        (["owner", "list", "Nope"], "error: no package 'Nope'"),
        (["owner", "remove", "Alice.Lib", "alice"], "error: alice is the last owner of 'Alice.Lib'"),
        (["package", "delete", "Alice.Lib", "not-a-version"], "error: 'not-a-version' is not a valid version"),
        (["package", "delete", "Alice.Lib", "9.9.9"], "error: no version '9.9.9' of package 'Alice.Lib'"),
    ],
)
def test_refused_changes_exit_1_with_the_reason(seeded: Path, tmp_path: Path, args: list[str], message: str) -> None:
    shutil.copytree(seeded, tmp_path / "feed")
    result = runner.invoke(app, ["admin", "--data", str(tmp_path / "feed"), *args])
    assert result.exit_code == 1
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_postgresql_is_migrated_by_admin_migrate_and_refused_before(database_factory: DatabaseFactory) -> None:
    server = database_factory.postgres()
    server.psql("CREATE DATABASE cli_admin")
    url = server.url("cli_admin")
    refused = runner.invoke(app, ["admin", "--database-url", url, "user", "add", "alice"])
    assert refused.exit_code == 1
    assert f"is empty, this nuseal needs revision {HEAD}: run 'nuseal admin migrate'" in refused.stderr
    assert ok("admin", "--database-url", url, "migrate") == f"Migrated the database from empty to revision {HEAD}.\n"
    added = runner.invoke(app, ["admin", "--database-url", url, "user", "add", "alice"])
    assert (added.exit_code, added.stdout) == (0, "Added user alice.\n")


def test_without_the_server_extra_serve_and_admin_say_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name: str, *args: object, **kwargs: object) -> object:
        return None if name in ("fastapi", "sqlalchemy") else real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for args in (["serve", "--data", str(tmp_path)], ["admin", "--data", str(tmp_path), "migrate"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1
        assert result.stderr == (
            "error: the feed server needs the 'server' extra (fastapi, sqlalchemy missing): "
            "pip install 'nuseal[server]'\n"
        )
    assert not (tmp_path / "nuseal.db").exists()
