"""``nuseal serve`` and ``nuseal worker``: the NuGet V3 feed server (FastAPI on uvicorn, 127.0.0.1:5555 by
default) and its background job workers. Both commands take exactly the same options (``opt.SERVE``).

Thin: load the settings, open the context (migrating the embedded database), then
- ``serve``: finish pushes a crash interrupted, bind, (``--demo``: seed the demo feed), print one "listening" line
  on stdout (``--demo``: then the demo's user, key and URLs), run the job workers inside the process (unless
  ``serve_worker`` is off), serve until SIGINT/SIGTERM (``--workers N``: in N HTTP worker processes) with JSON log
  lines on stderr;
- ``worker``: print one "running" line, then run the job workers until SIGINT/SIGTERM.
Server modules are imported inside the commands, so other commands never pay for them.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import typer

from nuseal.cli import server_options as opt
from nuseal.cli.base import app, command

if TYPE_CHECKING:
    from nuseal.server.jobs.workers import EmbeddedWorkers
    from nuseal.server.services.context import ServiceContext
    from nuseal.server.settings import ServerSettings


@command(app, "serve", opt.SERVE)
def serve(
    workers: int | None = typer.Option(
        None, "--workers", metavar="N", show_default=False,
        help="HTTP worker processes sharing the port (default: 1; env: NUSEAL_HTTP_WORKERS)."),
    demo: bool = typer.Option(
        False, "--demo",
        help="Seed a demo feed first (user 'demo', a new API key, package Nuseal.Demo) and print the URLs to use."),
    *,
    options: opt.ServeArgs,
) -> None:
    """Run the NuGet V3 feed server until interrupted (Ctrl+C)."""
    _serve(options.settings(http_workers=workers), demo=demo)


@command(app, "worker", opt.SERVE)
def worker(*, options: opt.ServeArgs) -> None:
    """Run background job workers (validation, re-signing) for a feed until interrupted.

    Same options as 'nuseal serve'.
    """
    _worker(options.settings())


def _open(settings: ServerSettings) -> ServiceContext:
    from nuseal.server.bootstrap import open_context
    from nuseal.server.faults import arm_from_environ
    from nuseal.server.logs import configure_json_logging
    from nuseal.x509.roots import trust_store_from_files

    configure_json_logging()
    try:
        arm_from_environ(os.environ)  # crash tests only (NUSEAL_TEST_CRASH_AT); off otherwise
    except ValueError as exc:
        opt.fail(str(exc))
    trust_store_from_files(settings.trust_roots, settings.timestamp_roots)  # a bad bundle fails now, not on push
    ctx = open_context(settings)
    ctx.blobs.check()
    return ctx


def _warn(text: str) -> None:
    """A start-up warning, one JSON log line per line of text (stderr carries JSON lines only), so that it reads
    as a block in the log."""
    import logging

    log = logging.getLogger("nuseal.server")
    for line in text.splitlines():
        log.warning(line)


def _repository_signing_warnings(ctx: ServiceContext, base_url: str, *, create_development: bool) -> None:
    from nuseal.server.services import dev_signing, repository_signatures
    from nuseal.server.services.repository_signing import http_signing_warning

    if create_development:
        dev_signing.ensure_development_certificate(ctx)
    row = dev_signing.development_certificate(ctx)
    if row is not None:
        _warn(dev_signing.development_warning(row, ctx.settings))
    for warning in (http_signing_warning(base_url), repository_signatures.http_warning(ctx.settings, base_url)):
        if warning is not None:
            _warn(warning)


def _demo_lines(ctx: ServiceContext, url: str) -> list[str]:
    """Seed the demo feed (:mod:`nuseal.server.services.demo`) and say how to use it."""
    from nuseal.server.services import demo

    seeded = demo.wait_available(ctx, demo.seed(ctx, ctx.settings.data_dir / "tmp"))
    lower_id, version = seeded.package_id.lower(), seeded.version
    index = f"{url}/v3/index.json"
    state = "" if seeded.status == "available" else f" ({seeded.status})"
    return [
        "demo feed ready:",
        f"  service index   {index}",
        f"  user            {seeded.user}",
        f"  API key         {seeded.api_key}",
        f"  package         {seeded.package_id} {version}{state}",
        f"  .nupkg          {url}/v3/flatcontainer/{lower_id}/{version}/{lower_id}.{version}.nupkg",
        f"  registration    {url}/v3/registration/{lower_id}/index.json",
        f"  search          {url}/v3/search?q={lower_id}",
        f"  status          {url}/api/v1/packages/{lower_id}/{version}",
        f"  install         nuseal install {seeded.package_id} --source {index} --allow-insecure-loopback",
        f"  push            dotnet nuget push PACKAGE.nupkg --source {index} --api-key {seeded.api_key}",
    ]


def _serve(settings: ServerSettings, *, demo: bool = False) -> None:
    from nuseal.server import app as server_app
    from nuseal.server.services.push import resume_interrupted

    ctx = _open(settings)
    resume_interrupted(ctx)  # pushes a crash stopped between commit and publish (each logged)
    try:
        sock = server_app.bind(settings.host, settings.port)
    except OSError as exc:
        ctx.db.dispose()
        opt.fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}")
    bound_port = int(sock.getsockname()[1])
    url = settings.base_url(bound_port)
    _repository_signing_warnings(ctx, url, create_development=True)
    workers = _start_embedded_workers(ctx, url) if settings.serve_worker else None
    try:
        demo_lines = _demo_lines(ctx, url) if demo else []  # after the job workers start: they may publish it
    except BaseException:
        if workers is not None:
            workers.stop()
        raise
    processes = f", {settings.http_workers} HTTP worker processes" if settings.http_workers > 1 else ""
    typer.echo(f"nuseal feed listening on {settings.listen_url(bound_port)}/ "
               f"(service index {url}/v3/index.json, data {settings.data_dir}{processes})")  # fmt: skip
    for line in demo_lines:
        typer.echo(line)
    sys.stdout.flush()  # read line by line by scripts and tests while the server runs
    from nuseal.server.services.dev_signing import stop_local_tsas

    # Stopped during uvicorn's graceful shutdown: it re-raises the signal afterwards, so nothing after run() runs.
    hooks = ([workers.stop] if workers is not None else []) + [stop_local_tsas]
    server_app.run(ctx, sock, public_url=url, on_shutdown=hooks)


def _start_embedded_workers(ctx: ServiceContext, url: str) -> EmbeddedWorkers:
    from nuseal.server.jobs.queue import JobQueue, open_huey
    from nuseal.server.jobs.runtime import make_runtime
    from nuseal.server.jobs.workers import EmbeddedWorkers

    workers = EmbeddedWorkers(JobQueue(open_huey(ctx.settings)), make_runtime(ctx, url), threads=ctx.settings.workers)
    workers.start()
    return workers


def _worker(settings: ServerSettings) -> None:
    from nuseal.server.jobs.queue import JobQueue, open_huey
    from nuseal.server.jobs.runtime import make_runtime
    from nuseal.server.jobs.workers import run_workers

    if settings.public_url is None and settings.port == 0:
        opt.fail("a worker signs for the feed's public URL: give --public-url (the feed's URL), or the --port the "
                 "feed listens on")  # fmt: skip
    ctx = _open(settings)
    url = settings.base_url()
    _repository_signing_warnings(ctx, url, create_development=False)
    queue = JobQueue(open_huey(settings))
    runtime = make_runtime(ctx, url)
    typer.echo(f"nuseal worker running {settings.workers} thread(s) for {url}/v3/index.json "
               f"(queue {_safe_queue(settings.queue_url)}, data {settings.data_dir})")  # fmt: skip
    sys.stdout.flush()
    try:
        run_workers(queue, runtime, threads=settings.workers)
    finally:
        from nuseal.server.services.dev_signing import stop_local_tsas

        stop_local_tsas()
        ctx.db.dispose()


def _safe_queue(url: str) -> str:
    """The queue URL without a password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@")
