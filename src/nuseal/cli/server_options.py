"""Options shared by ``nuseal serve`` and ``nuseal admin`` (defined once), and turning them into settings.

Every option defaults to ``None`` = "not given", so that the settings loader can apply its precedence
(defaults < ``--config`` file < ``NUSEAL_*`` environment < options). Server modules are imported lazily, and
only after checking that the ``server`` extra is installed.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from nuseal.cli.base import OptionGroup
from nuseal.cli.options import roots_option
from nuseal.errors import NusealError

if TYPE_CHECKING:
    from nuseal.server.settings import ServerSettings

def _setting(flag: str, metavar: str, help: str) -> Any:
    """An option whose default is None, "not given", so that the settings loader applies its precedence."""
    return typer.Option(None, flag, metavar=metavar, help=help, show_default=False)


CONFIG = _setting("--config", "FILE", "TOML settings file (env: NUSEAL_CONFIG).")
DATA = _setting("--data", "FOLDER", "Data folder: database, blobs, queue (default: ./nuseal-data; env: NUSEAL_DATA).")
DATABASE_URL = _setting(
    "--database-url", "URL", "sqlite:///FILE or postgresql://USER@HOST:PORT/DB (default: sqlite in the data folder).")
STORAGE = _setting(
    "--storage", "URL", "file:///FOLDER or s3://BUCKET?endpoint=URL&region=R (default: file://DATA/blobs).")
HOST = _setting("--host", "HOST", "Address to listen on (default: 127.0.0.1).")
PORT = _setting("--port", "PORT", "Port to listen on; 0 picks a free one (default: 5555).")
PUBLIC_URL = _setting(
    "--public-url", "URL", "URL clients use to reach the feed, e.g. https://nuget.example.com (default: from host "
    "and port).")
TLS_CERT = _setting("--tls-cert", "FILE", "PEM certificate chain for HTTPS.")
TLS_KEY = _setting("--tls-key", "FILE", "PEM private key for HTTPS.")
TRUST_ROOTS = roots_option("--trust-roots", "code-signing", "for pushed packages; default: the .NET SDK's bundle")
TIMESTAMP_ROOTS = roots_option("--timestamp-roots", "timestamping")
REVOCATION_MODE = _setting(
    "--revocation-mode", "online|offline",
    "Check revocation of pushed packages' certificates over the network or not (default: online).")

@dataclass(frozen=True)
class ServeArgs:
    """``nuseal serve``'s options, each None when not given."""

    config: Path | None
    data: Path | None
    host: str | None
    port: int | None
    public_url: str | None
    tls_cert: Path | None
    tls_key: Path | None
    database_url: str | None
    storage: str | None
    trust_roots: Path | None
    timestamp_roots: Path | None
    revocation_mode: str | None

    def settings(self, **extra: object) -> ServerSettings:
        """The settings, with ``extra`` command-specific options (field name -> value, None = not given)."""
        given = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("config", "data")}
        return load_settings(self.config, data_dir=self.data, **given, **extra)


SERVE = OptionGroup(ServeArgs, dict(
    config=CONFIG, data=DATA, host=HOST, port=PORT, public_url=PUBLIC_URL, tls_cert=TLS_CERT, tls_key=TLS_KEY,
    database_url=DATABASE_URL, storage=STORAGE, trust_roots=TRUST_ROOTS, timestamp_roots=TIMESTAMP_ROOTS,
    revocation_mode=REVOCATION_MODE), "options")

#: The Python modules the ``server`` extra installs (their absence gets a one-line install hint).
_SERVER_MODULES = ("fastapi", "uvicorn", "sqlalchemy", "alembic", "psycopg", "boto3", "multipart")


def fail(message: str) -> NoReturn:
    """``error: message``, exit 1, through the CLI's one error handler."""
    raise NusealError(message)


def require_server_extra() -> None:
    missing = [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        fail(f"the feed server needs the 'server' extra ({', '.join(missing)} missing): "
             "pip install 'nuseal[server]'")  # fmt: skip


def load_settings(config: Path | None, **options: object) -> ServerSettings:
    """Settings from the options (``None`` = not given) over ``NUSEAL_*`` over the config file over defaults."""
    require_server_extra()
    from nuseal.server.settings import load_settings as load

    return load(options, config_file=config, environ=os.environ)
