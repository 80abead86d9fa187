"""The feed server's settings: one frozen :class:`ServerSettings` and the one function that builds it.

Sources, lowest precedence first: built-in defaults < the TOML file given by ``--config`` (or ``NUSEAL_CONFIG``)
< ``NUSEAL_*`` environment variables < command-line options. Every value is checked when it is read, and a bad
value raises :class:`SettingsError` naming its source (``/etc/nuseal.toml: key 'port'``, ``environment variable
NUSEAL_PORT``, ``option --port``). Nothing here reads the environment or files on its own initiative: the caller
passes ``environ`` and the CLI values in, so tests and the CLI see the same rules.

Paths in a config file are relative to the file's folder; paths from the environment or options are relative to
the working directory. Defaults that depend on the data folder (database, blobs, queue) are derived after merging.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from nuseal.enums import RevocationMode
from nuseal.errors import NusealError

#: Environment variable prefix; each field ``x_y`` is read from ``NUSEAL_X_Y``.
ENV_PREFIX: Final = "NUSEAL_"
#: Environment variable naming the config file when ``--config`` is not given.
CONFIG_ENV: Final = "NUSEAL_CONFIG"
#: Default port: unassigned by IANA and clear of the usual development ports (8000, 8080, 5000).
DEFAULT_PORT: Final = 5555
#: nuget.org's upload limit (250 MiB), the default for ``max_package_bytes``.
DEFAULT_MAX_PACKAGE_BYTES: Final = 250 * 1024 * 1024


class SettingsError(NusealError):
    """A setting has a bad value; the message names the setting, the value and where it came from."""


@dataclass(frozen=True)
class ServerSettings:
    """Everything ``nuseal serve`` / ``nuseal admin`` / ``nuseal worker`` need to know, fully resolved."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    #: The URL clients use to reach the feed (service index at ``{public_url}/v3/index.json``); without a
    #: trailing slash. ``None`` means "derive it from host, port and TLS at start-up".
    public_url: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    database_url: str = ""
    storage: str = ""
    trust_roots: Path | None = None
    timestamp_roots: Path | None = None
    revocation_mode: RevocationMode = RevocationMode.ONLINE
    queue_url: str = ""
    max_package_bytes: int = DEFAULT_MAX_PACKAGE_BYTES
    allow_self_issued_certificates: bool = False
    dev_allow_http_repository_signatures: bool = False
    workers: int = 1
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = field(default=None, repr=False)
    # --- reposign (issue 11): repository signing and background jobs ---------------------------------------
    #: Encrypts the repository signing keys stored in the database (every worker needs the same one). Default:
    #: generated once into ``{data_dir}/repository-key.secret`` (mode 0600), for the embedded SQLite database only.
    repository_key_secret: str | None = field(default=None, repr=False)
    #: User PIN of the PKCS#11 token holding a repository signing key (never stored in the database).
    repository_pkcs11_pin: str | None = field(default=None, repr=False)
    #: Whether ``nuseal serve`` runs job workers itself (``workers`` threads); off when ``nuseal worker`` does it.
    serve_worker: bool = True
    #: How long a job holds a package version before another worker may take it over (a crashed worker's work).
    job_lease_seconds: int = 300
    #: Package versions one re-signing task takes at a time.
    resign_batch_size: int = 50
    # --- interop (issue 9): HTTP worker processes and the access log -------------------------------------------
    #: HTTP worker processes of ``nuseal serve`` sharing its socket (``--workers``); the job workers still run once.
    http_workers: int = 1
    #: One JSON line per request on stderr (``nuseal.access``); off saves about a tenth of a cached read.
    access_log: bool = True

    @property
    def uses_embedded_database(self) -> bool:
        """True for the SQLite database (migrated automatically at start-up)."""
        return self.database_url.startswith("sqlite")

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert is not None else "http"

    def listen_url(self, bound_port: int | None = None) -> str:
        """Where the server listens: scheme, host (IPv6 in brackets) and the (bound) port; no trailing slash."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{bound_port if bound_port is not None else self.port}"

    def base_url(self, bound_port: int | None = None) -> str:
        """The URL clients use: ``public_url``, else :meth:`listen_url`; no trailing slash."""
        return self.public_url if self.public_url is not None else self.listen_url(bound_port)


# ---------------------------------------------------------------------------------------------------------------
# Value parsers: each takes the raw value (TOML value, env string or CLI value) and the source label.


def _fail(name: str, value: object, source: str, expected: str) -> SettingsError:
    return SettingsError(f"invalid {name} {value!r} ({source}): {expected}")


def _text(name: str, value: object, source: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(name, value, source, "expected a non-empty string")
    return value.strip()


def _integer(low: int, high: int) -> Callable[[str, object, str], int]:
    def parse(name: str, value: object, source: str) -> int:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and value.strip().lstrip("+").isdigit():
            number = int(value.strip())
        if number is None or not low <= number <= high:
            raise _fail(name, value, source, f"expected a whole number from {low} to {high}")
        return number

    return parse


def _boolean(name: str, value: object, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    raise _fail(name, value, source, "expected true or false")


def _path(name: str, value: object, source: str) -> Path:
    if isinstance(value, Path):
        return value
    return Path(_text(name, value, source)).expanduser()


def _existing_file(name: str, value: object, source: str) -> Path:
    path = _path(name, value, source)
    if not path.is_file():
        raise _fail(name, str(path), source, "no such file")
    return path


def _url(*schemes: str) -> Callable[[str, object, str], str]:
    def parse(name: str, value: object, source: str) -> str:
        text = _text(name, value, source)
        parts = urlsplit(text)
        if parts.scheme.split("+")[0] not in schemes:
            raise _fail(name, text, source, "expected a URL starting with " + " or ".join(f"{s}:" for s in schemes))
        return text

    return parse


def _public_url(name: str, value: object, source: str) -> str:
    text = _text(name, value, source)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise _fail(name, text, source, "expected an absolute http:// or https:// URL without query or fragment")
    return text.rstrip("/")


def _secret(min_length: int) -> Callable[[str, object, str], str]:
    def parse(name: str, value: object, source: str) -> str:
        text = _text(name, value, source)
        if len(text) < min_length:
            # The value is a secret: the message never repeats it.
            raise SettingsError(f"invalid {name} ({source}): expected at least {min_length} characters")
        return text

    return parse


def _revocation_mode(name: str, value: object, source: str) -> RevocationMode:
    if isinstance(value, RevocationMode):
        return value
    text = _text(name, value, source).lower()
    try:
        return RevocationMode(text)
    except ValueError:
        raise _fail(name, value, source, "expected online or offline") from None


#: One parser per field (a test checks the two lists agree).
_PARSERS: Final[Mapping[str, Callable[[str, object, str], Any]]] = {
    "data_dir": _path,
    "host": _text,
    "port": _integer(0, 65535),
    "public_url": _public_url,
    "tls_cert": _existing_file,
    "tls_key": _existing_file,
    "database_url": _url("sqlite", "postgresql"),
    "storage": _url("file", "s3"),
    "trust_roots": _existing_file,
    "timestamp_roots": _existing_file,
    "revocation_mode": _revocation_mode,
    "queue_url": _url("sqlite", "redis", "rediss"),
    "max_package_bytes": _integer(1, 4 * 2**30),  # zip64 packages are refused anyway; S3 copies up to 5 GiB
    "allow_self_issued_certificates": _boolean,
    "dev_allow_http_repository_signatures": _boolean,
    "workers": _integer(1, 256),
    "s3_access_key_id": _text,
    "s3_secret_access_key": _text,
    "repository_key_secret": _secret(16),
    "repository_pkcs11_pin": _text,
    "serve_worker": _boolean,
    "job_lease_seconds": _integer(1, 86400),
    "resign_batch_size": _integer(1, 10_000),
    "http_workers": _integer(1, 64),
    "access_log": _boolean,
}
_PATH_FIELDS: Final = frozenset({"data_dir", "tls_cert", "tls_key", "trust_roots", "timestamp_roots"})

#: CLI option spelling of each field (for error messages): ``data_dir`` is ``--data``.
OPTION_NAMES: Final[Mapping[str, str]] = {name: "--" + name.replace("_", "-") for name in _PARSERS} | {
    "data_dir": "--data", "http_workers": "--workers"
}


def env_var(name: str) -> str:
    """The environment variable of a setting: ``port`` → ``NUSEAL_PORT``; ``data_dir`` → ``NUSEAL_DATA``."""
    return ENV_PREFIX + ("DATA" if name == "data_dir" else name.upper())


def _read_config_file(path: Path) -> dict[str, tuple[object, str]]:
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"config file '{path}' does not exist") from None
    except OSError as exc:
        raise SettingsError(f"cannot read config file '{path}': {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file '{path}' is not valid TOML: {exc}") from None
    # A [server] table is accepted as well as top-level keys, so the file can later hold other sections.
    server_table = document.get("server")
    table = server_table if isinstance(server_table, dict) else document
    values: dict[str, tuple[object, str]] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        source = f"{path}: key '{key}'"
        if name not in _PARSERS:
            raise SettingsError(f"unknown setting '{key}' in config file '{path}'")
        if name in _PATH_FIELDS and isinstance(value, str) and value.strip():
            candidate = Path(value.strip()).expanduser()
            value = candidate if candidate.is_absolute() else path.parent / candidate
        values[name] = (value, source)
    return values


def load_settings(
    cli: Mapping[str, object | None] | None = None,
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> ServerSettings:
    """Merge defaults < config file < ``NUSEAL_*`` environment < CLI values into checked settings.

    ``cli`` maps field names to option values; ``None`` means "option not given". ``config_file`` (the
    ``--config`` option) wins over ``NUSEAL_CONFIG``. Raises :class:`SettingsError` for any bad value.
    """
    environ = environ or {}
    raw: dict[str, tuple[object, str]] = {}

    if config_file is None and environ.get(CONFIG_ENV, "").strip():
        config_file = Path(environ[CONFIG_ENV].strip()).expanduser()
    if config_file is not None:
        raw.update(_read_config_file(config_file))
    for name in _PARSERS:
        variable = env_var(name)
        if variable in environ:
            raw[name] = (environ[variable], f"environment variable {variable}")
    for name, value in (cli or {}).items():
        if name not in _PARSERS:
            raise ValueError(f"unknown setting {name!r}")  # programmer error: the CLI passes field names
        if value is not None:
            raw[name] = (value, f"option {OPTION_NAMES[name]}")

    values: dict[str, Any] = {name: _PARSERS[name](name, value, source) for name, (value, source) in raw.items()}
    data_dir = Path(values.pop("data_dir", Path("nuseal-data"))).absolute()
    settings = ServerSettings(data_dir=data_dir, **values)
    _check_consistency(settings, raw)
    return _with_derived_defaults(settings)


def _source(raw: Mapping[str, tuple[object, str]], name: str) -> str:
    return raw[name][1] if name in raw else "default"


def _check_consistency(settings: ServerSettings, raw: Mapping[str, tuple[object, str]]) -> None:
    if (settings.tls_cert is None) != (settings.tls_key is None):
        given = "tls_cert" if settings.tls_cert is not None else "tls_key"
        missing = "--tls-key" if given == "tls_cert" else "--tls-cert"
        raise SettingsError(f"{OPTION_NAMES[given]} ({_source(raw, given)}) needs {missing} as well")
    if (settings.s3_access_key_id is None) != (settings.s3_secret_access_key is None):
        raise SettingsError(
            f"{env_var('s3_access_key_id')} and {env_var('s3_secret_access_key')} must be set together"
        )


def _with_derived_defaults(settings: ServerSettings) -> ServerSettings:
    data = settings.data_dir
    derived: dict[str, Any] = {}
    if not settings.database_url:
        derived["database_url"] = f"sqlite:///{data / 'nuseal.db'}"
    if not settings.storage:
        derived["storage"] = (data / "blobs").as_uri()
    if not settings.queue_url:
        derived["queue_url"] = f"sqlite:///{data / 'queue.db'}"
    return replace(settings, **derived) if derived else settings
