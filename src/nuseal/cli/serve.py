"""``nuseal serve``: run the NuGet V3 feed server (FastAPI on uvicorn), 127.0.0.1:5555 by default.

Thin: load the settings, open the context (migrating the embedded database), finish pushes a crash interrupted,
bind, print one "listening" line on stdout, then serve until SIGINT/SIGTERM with JSON log lines on stderr. Server
modules are imported here, inside the command, so other commands never pay for them.
"""

from __future__ import annotations

import typer

from nuseal.cli import server_options as opt
from nuseal.cli.base import app, command


@command(app, "serve", opt.SERVE)
def serve(*, options: opt.ServeArgs) -> None:
    """Run the NuGet V3 feed server until interrupted (Ctrl+C)."""
    settings = options.settings()
    from nuseal.server import app as server_app
    from nuseal.server.bootstrap import open_context
    from nuseal.server.logs import configure_json_logging
    from nuseal.server.services.push import resume_interrupted
    from nuseal.x509.roots import trust_store_from_files

    configure_json_logging()
    trust_store_from_files(settings.trust_roots, settings.timestamp_roots)  # a bad bundle fails now, not on push
    ctx = open_context(settings)
    ctx.blobs.check()
    resume_interrupted(ctx)  # pushes a crash stopped between commit and publish (each logged)
    try:
        sock = server_app.bind(settings.host, settings.port)
    except OSError as exc:
        ctx.db.dispose()
        opt.fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}")
    bound_port = int(sock.getsockname()[1])
    url = settings.base_url(bound_port)
    typer.echo(f"nuseal feed listening on {settings.listen_url(bound_port)}/ "
               f"(service index {url}/v3/index.json, data {settings.data_dir})")  # fmt: skip
    server_app.run(ctx, sock, public_url=url)
