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

from nuseal.errors import NusealError

if TYPE_CHECKING:
    from nuseal.server.settings import ServerSettings

CONFIG = typer.Option(None, "--config", help="TOML settings file (env: NUSEAL_CONFIG).", show_default=False)
DATA = typer.Option(
    None, "--data", help="Data folder: database, blobs, queue (default: ./nuseal-data; env: NUSEAL_DATA).",
    show_default=False,
)  # fmt: skip
DATABASE_URL = typer.Option(
    None, "--database-url", show_default=False,
    help="sqlite:///FILE or postgresql://USER@HOST:PORT/DB (default: sqlite in the data folder).",
)  # fmt: skip
STORAGE = typer.Option(
    None, "--storage", show_default=False,
    help="file:///FOLDER or s3://BUCKET?endpoint=URL&region=R (default: file://DATA/blobs).",
)  # fmt: skip
HOST = typer.Option(None, "--host", help="Address to listen on (default: 127.0.0.1).", show_default=False)
PORT = typer.Option(None, "--port", help="Port to listen on; 0 picks a free one (default: 5555).", show_default=False)
PUBLIC_URL = typer.Option(
    None, "--public-url", show_default=False,
    help="URL clients use to reach the feed, e.g. https://nuget.example.com (default: from host and port).",
)  # fmt: skip
TLS_CERT = typer.Option(None, "--tls-cert", help="PEM certificate chain for HTTPS.", show_default=False)
TLS_KEY = typer.Option(None, "--tls-key", help="PEM private key for HTTPS.", show_default=False)
TRUST_ROOTS = typer.Option(
    None, "--trust-roots", help="PEM bundle of trusted code-signing roots for pushed packages.", show_default=False
)
TIMESTAMP_ROOTS = typer.Option(
    None, "--timestamp-roots", help="PEM bundle of trusted timestamping roots.", show_default=False
)
REVOCATION_MODE = typer.Option(
    None, "--revocation-mode", help="online or offline (default: online).", show_default=False
)

#: The Python modules the ``server`` extra installs (their absence gets a one-line install hint).
_SERVER_MODULES = ("fastapi", "uvicorn", "sqlalchemy", "alembic", "psycopg", "boto3", "multipart")


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def require_server_extra() -> None:
    missing = [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        fail(f"the feed server needs the 'server' extra ({', '.join(missing)} missing): "
             "pip install 'nuseal[server]'")  # fmt: skip


@contextmanager
def handled() -> Iterator[None]:
    """Turn nuseal's errors (settings, database, storage, refused requests) into ``error: ...`` and exit 1."""
    try:
        yield
    except NusealError as exc:
        fail(str(exc))


def load_settings(config: Path | None, **options: object) -> ServerSettings:
    """Settings from the options (``None`` = not given) over ``NUSEAL_*`` over the config file over defaults."""
    require_server_extra()
    from nuseal.server.settings import load_settings as load

    try:
        return load(options, config_file=config, environ=os.environ)
    except NusealError as exc:
        fail(str(exc))
