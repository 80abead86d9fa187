"""Options shared by ``nuseal serve`` and ``nuseal admin`` (defined once), and turning them into settings.

Every option defaults to ``None`` = "not given", so that the settings loader can apply its precedence
(defaults < ``--config`` file < ``NUSEAL_*`` environment < options). Server modules are imported lazily, and
only after checking that the ``server`` extra is installed.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from nuseal.cli.options import roots_option
from nuseal.errors import NusealError

if TYPE_CHECKING:
    from nuseal.server.settings import ServerSettings

CONFIG = typer.Option(
    None, "--config", metavar="FILE", help="TOML settings file (env: NUSEAL_CONFIG).", show_default=False)
DATA = typer.Option(
    None, "--data", metavar="FOLDER", show_default=False,
    help="Data folder: database, blobs, queue (default: ./nuseal-data; env: NUSEAL_DATA).",
)  # fmt: skip
DATABASE_URL = typer.Option(
    None, "--database-url", metavar="URL", show_default=False,
    help="sqlite:///FILE or postgresql://USER@HOST:PORT/DB (default: sqlite in the data folder).",
)  # fmt: skip
STORAGE = typer.Option(
    None, "--storage", metavar="URL", show_default=False,
    help="file:///FOLDER or s3://BUCKET?endpoint=URL&region=R (default: file://DATA/blobs).",
)  # fmt: skip
HOST = typer.Option(
    None, "--host", metavar="HOST", help="Address to listen on (default: 127.0.0.1).", show_default=False)
PORT = typer.Option(
    None, "--port", metavar="PORT", help="Port to listen on; 0 picks a free one (default: 5555).", show_default=False)
PUBLIC_URL = typer.Option(
    None, "--public-url", metavar="URL", show_default=False,
    help="URL clients use to reach the feed, e.g. https://nuget.example.com (default: from host and port).",
)  # fmt: skip
TLS_CERT = typer.Option(None, "--tls-cert", metavar="FILE", help="PEM certificate chain for HTTPS.", show_default=False)
TLS_KEY = typer.Option(None, "--tls-key", metavar="FILE", help="PEM private key for HTTPS.", show_default=False)
TRUST_ROOTS = roots_option("--trust-roots", "code-signing", "for pushed packages; default: the .NET SDK's bundle")
TIMESTAMP_ROOTS = roots_option("--timestamp-roots", "timestamping")
REVOCATION_MODE = typer.Option(
    None, "--revocation-mode", metavar="online|offline", help="Check revocation of pushed packages' certificates "
    "over the network or not (default: online).", show_default=False,
)  # fmt: skip

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


@contextmanager
def handled() -> Iterator[None]:
    """Marks where nuseal's errors (settings, database, storage, refused requests) are expected; the CLI's one
    error handler (``nuseal.cli.base.run_guarded``) turns them into ``error: ...`` and exit 1."""
    yield


def load_settings(config: Path | None, **options: object) -> ServerSettings:
    """Settings from the options (``None`` = not given) over ``NUSEAL_*`` over the config file over defaults."""
    require_server_extra()
    from nuseal.server.settings import load_settings as load

    return load(options, config_file=config, environ=os.environ)
