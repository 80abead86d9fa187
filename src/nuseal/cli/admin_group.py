"""The ``nuseal admin`` command group object and what every admin command shares.

:mod:`nuseal.cli.admin` holds the account, key, owner and package commands; :mod:`nuseal.cli.admin_governance`
adds ``cert`` and ``signer``, :mod:`nuseal.cli.admin_repo` adds ``repo-cert``. All attach to this one object and
take the data options given to ``nuseal admin`` (``--data``, ``--database-url``, ``--storage``, ``--config``) from
here, so none imports another's commands.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from nuseal.cli import server_options as opt
from nuseal.cli.base import OptionGroup, group, show_help_without_command

if TYPE_CHECKING:
    from nuseal.server.services.context import ServiceContext
    from nuseal.server.services.permissions import Operator
    from nuseal.server.settings import ServerSettings

admin_app = group("admin", "Administer a nuseal feed (operators).")


@dataclass(frozen=True)
class DataOptions:
    """Where the feed's data is: given to ``nuseal admin`` and, for some commands, after the command too."""

    config: Path | None
    data: Path | None
    database_url: str | None
    storage: str | None

    def over(self, earlier: DataOptions | None) -> DataOptions:
        """These options, each falling back to ``earlier``'s when not given."""
        if earlier is None:
            return self
        return DataOptions(
            config=self.config if self.config is not None else earlier.config,
            data=self.data if self.data is not None else earlier.data,
            database_url=self.database_url if self.database_url is not None else earlier.database_url,
            storage=self.storage if self.storage is not None else earlier.storage,
        )


#: The data options accepted after a command as well (``nuseal admin cert list alice --data DIR``); they win.
LATE_DATA = OptionGroup(
    DataOptions, dict(config=opt.CONFIG, data=opt.DATA, database_url=opt.DATABASE_URL, storage=opt.STORAGE), "late"
)


@admin_app.callback()
def admin_options(
    ctx: typer.Context,
    config: Path | None = opt.CONFIG,
    data: Path | None = opt.DATA,
    database_url: str | None = opt.DATABASE_URL,
    storage: str | None = opt.STORAGE,
) -> None:
    """Administer a nuseal feed: the same data folder, database and storage options as 'nuseal serve'."""
    ctx.obj = DataOptions(config, data, database_url, storage)
    show_help_without_command(ctx)


def settings(ctx: typer.Context, late: DataOptions | None = None) -> ServerSettings:
    options = ctx.find_object(DataOptions)
    assert options is not None  # set by the admin callback
    if late is not None:
        options = late.over(options)
    return opt.load_settings(
        options.config, data_dir=options.data, database_url=options.database_url, storage=options.storage
    )


def context(ctx: typer.Context, late: DataOptions | None = None) -> ServiceContext:
    from nuseal.server.bootstrap import open_context

    return open_context(settings(ctx, late))


def operator() -> Operator:
    from nuseal.server.services.permissions import Operator

    return Operator()


def print_json(document: dict[str, Any]) -> None:
    typer.echo(json.dumps({"schema": 1} | document, indent=2))


