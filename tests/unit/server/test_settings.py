"""Server settings: precedence (defaults < config file < NUSEAL_* < options) and errors that name their source."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from nuseal.enums import RevocationMode
from nuseal.server import settings as settings_module
from nuseal.server.settings import (
    DEFAULT_PORT,
    ServerSettings,
    SettingsError,
    env_var,
    load_settings,
)


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_every_field_has_a_parser_an_env_var_and_an_option_name() -> None:
    names = {f.name for f in dataclasses.fields(ServerSettings)}
    assert set(settings_module._PARSERS) == names
    assert set(settings_module.OPTION_NAMES) == names
    assert env_var("data_dir") == "NUSEAL_DATA"
    assert env_var("database_url") == "NUSEAL_DATABASE_URL"


def test_defaults_derive_database_storage_and_queue_from_the_data_folder(tmp_path: Path) -> None:
    loaded = load_settings({"data_dir": tmp_path / "d"}, environ={})
    assert loaded.host == "127.0.0.1"
    assert loaded.port == DEFAULT_PORT
    assert loaded.data_dir == tmp_path / "d"
    assert loaded.database_url == f"sqlite:///{tmp_path / 'd' / 'nuseal.db'}"
    assert loaded.storage == (tmp_path / "d" / "blobs").as_uri()
    assert loaded.queue_url == f"sqlite:///{tmp_path / 'd' / 'queue.db'}"
    assert loaded.uses_embedded_database
    assert loaded.revocation_mode is RevocationMode.ONLINE
    assert loaded.base_url(6000) == "http://127.0.0.1:6000"


def test_the_default_data_folder_is_nuseal_data_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings(environ={}).data_dir == tmp_path / "nuseal-data"


def test_config_file_then_environment_then_options_win(tmp_path: Path) -> None:
    config = write_config(tmp_path / "nuseal.toml", 'port = 7001\nhost = "127.0.0.2"\nworkers = 3\n')
    environ = {"NUSEAL_PORT": "7002", "NUSEAL_WORKERS": "4"}
    loaded = load_settings({"data_dir": tmp_path, "port": 7003}, config_file=config, environ=environ)
    assert (loaded.port, loaded.workers, loaded.host) == (7003, 4, "127.0.0.2")
    loaded = load_settings({"data_dir": tmp_path, "port": None}, config_file=config, environ=environ)
    assert loaded.port == 7002  # None means "option not given"


def test_nuseal_config_names_the_file_unless_the_option_does(tmp_path: Path) -> None:
    from_env = write_config(tmp_path / "env.toml", "port = 7101\n")
    from_option = write_config(tmp_path / "option.toml", "port = 7102\n")
    environ = {"NUSEAL_CONFIG": str(from_env)}
    assert load_settings({"data_dir": tmp_path}, environ=environ).port == 7101
    assert load_settings({"data_dir": tmp_path}, config_file=from_option, environ=environ).port == 7102


def test_config_accepts_a_server_table_and_dashed_keys(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", '[server]\npublic-url = "https://nuget.example.com/"\n')
    loaded = load_settings({"data_dir": tmp_path}, config_file=config, environ={})
    assert loaded.public_url == "https://nuget.example.com"
    assert loaded.base_url(1) == "https://nuget.example.com"
    assert loaded.listen_url(1) == "http://127.0.0.1:1"


def test_relative_paths_in_a_config_file_are_relative_to_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "roots.pem").write_text("x")
    config = write_config(folder / "c.toml", 'data_dir = "data"\ntrust_roots = "roots.pem"\n')
    loaded = load_settings(config_file=config, environ={})
    assert loaded.data_dir == folder / "data"
    assert loaded.trust_roots == folder / "roots.pem"


@pytest.mark.parametrize(
    ("cli", "environ", "config", "expected"),
    [
        ({"port": 70000}, {}, "", "invalid port 70000 (option --port): expected a whole number from 0 to 65535"),
        ({}, {"NUSEAL_PORT": "http"}, "", "invalid port 'http' (environment variable NUSEAL_PORT)"),
        ({}, {}, 'port = "x"\n', "invalid port 'x' ({config}: key 'port')"),
        ({}, {}, "workers = 0\n", "invalid workers 0 ({config}: key 'workers')"),
        ({}, {"NUSEAL_STORAGE": "ftp://x"}, "", "NUSEAL_STORAGE): expected a URL starting with file: or s3:"),
        ({"database_url": "mysql://x"}, {}, "", "--database-url): expected a URL starting with sqlite: or postgresql:"),
        ({}, {"NUSEAL_REVOCATION_MODE": "sometimes"}, "", "NUSEAL_REVOCATION_MODE): expected online or offline"),
        ({}, {"NUSEAL_ALLOW_SELF_ISSUED_CERTIFICATES": "perhaps"}, "", "expected true or false"),
        ({"public_url": "nuget.example.com"}, {}, "", "--public-url): expected an absolute http"),
        ({"tls_cert": "/nonexistent/cert.pem"}, {}, "", "'/nonexistent/cert.pem' (option --tls-cert): no such"),
        ({}, {}, "colour = 'blue'\n", "unknown setting 'colour' in config file '{config}'"),
        ({}, {}, "port = \n", "is not valid TOML"),
    ],
)  # fmt: skip
def test_bad_values_name_the_setting_and_where_it_came_from(
    tmp_path: Path, cli: dict[str, object], environ: dict[str, str], config: str, expected: str
) -> None:
    config_file = write_config(tmp_path / "c.toml", config) if config else None
    with pytest.raises(SettingsError) as caught:
        load_settings({"data_dir": tmp_path, **cli}, config_file=config_file, environ=environ)
    assert expected.format(config=config_file) in str(caught.value)


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"config file '.*missing\.toml' does not exist"):
        load_settings(config_file=tmp_path / "missing.toml", environ={})


def test_tls_needs_both_certificate_and_key(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(SettingsError, match=r"--tls-cert \(option --tls-cert\) needs --tls-key as well"):
        load_settings({"data_dir": tmp_path, "tls_cert": cert}, environ={})
    both = load_settings({"data_dir": tmp_path, "tls_cert": cert, "tls_key": cert}, environ={})
    assert both.scheme == "https" and both.base_url(443) == "https://127.0.0.1:443"


def test_s3_credentials_come_in_pairs_and_the_secret_is_not_in_repr(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="must be set together"):
        load_settings({"data_dir": tmp_path}, environ={"NUSEAL_S3_ACCESS_KEY_ID": "k"})
    loaded = load_settings(
        {"data_dir": tmp_path}, environ={"NUSEAL_S3_ACCESS_KEY_ID": "k", "NUSEAL_S3_SECRET_ACCESS_KEY": "s3cr3t"}
    )
    assert loaded.s3_secret_access_key == "s3cr3t"
    assert "s3cr3t" not in repr(loaded)


def test_environment_booleans_and_external_database(tmp_path: Path) -> None:
    loaded = load_settings(
        {"data_dir": tmp_path},
        environ={
            "NUSEAL_DEV_ALLOW_HTTP_REPOSITORY_SIGNATURES": "yes",
            "NUSEAL_DATABASE_URL": "postgresql://nuseal@127.0.0.1:5432/feed",
            "NUSEAL_QUEUE_URL": "redis://127.0.0.1:6379/0",
            "NUSEAL_REVOCATION_MODE": "OFFLINE",
        },
    )
    assert loaded.dev_allow_http_repository_signatures is True
    assert not loaded.uses_embedded_database
    assert loaded.queue_url == "redis://127.0.0.1:6379/0"
    assert loaded.revocation_mode is RevocationMode.OFFLINE


def test_an_ipv6_host_is_bracketed_in_the_derived_url(tmp_path: Path) -> None:
    loaded = load_settings({"data_dir": tmp_path, "host": "::1"}, environ={})
    assert loaded.base_url(5) == loaded.listen_url(5) == "http://[::1]:5"
