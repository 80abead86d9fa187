"""Alembic environment: runs on the connection that :mod:`nuseal.server.db.migrate` hands over.

There is no alembic.ini and no URL here: the caller (``nuseal admin migrate``, server start-up, tests) opens the
database from the server settings and passes the connection in ``config.attributes["connection"]``. SQLite gets
batch mode so that later revisions that alter tables are generated in a form SQLite can run.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from nuseal.server.db.models import Base, UtcDateTime


def _render_item(kind: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # Revisions must not import the models (they change; revisions are frozen): render UtcDateTime as its column type.
    if kind == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise RuntimeError("nuseal migrations run through nuseal.server.db.migrate, which passes a connection")
_run(_connection)
