"""nginx (Debian's ``nginx``) serving one directory on 127.0.0.1: the baseline for feed read-throughput benchmarks.

The config is generated per instance into its own prefix dir (pid file, error log, temp paths: nothing under
/etc/nginx or /var), with ``access_log off``, ``sendfile on``, ``tcp_nopush on``, keep-alive (long timeout,
unlimited requests per connection) and a configurable ``worker_processes``. ``daemon off`` keeps the master our
child, so it stops with us.

From pytest: the session fixture ``nginx_factory`` (``start(directory, worker_processes=1) -> NginxServer``);
from a ``bench/`` script: ``with running_nginx(directory, worker_processes=2) as nginx: ... nginx.url("/x")``.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import (
    ManagedProcess,
    RealPartError,
    failing_clearly,
    find_binary,
    free_port,
    port_open,
)

START_TIMEOUT = 30.0

_CONFIG = """\
daemon off;
master_process on;
worker_processes {workers};
{user}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    types {{
        application/json json;
        application/octet-stream nupkg snupkg;
        application/xml nuspec xml;
        text/plain txt;
    }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    server_tokens off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;

    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{
            try_files $uri =404;
        }}
    }}
}}
"""


@dataclass(frozen=True)
class NginxServer:
    port: int
    root: Path
    worker_processes: int | str
    config: Path
    master_pid: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """The URL of ``path`` (relative to the served directory, with or without a leading slash)."""
        return f"{self.base_url}/{path.lstrip('/')}"


def render_config(root: Path, port: int, prefix: Path, worker_processes: int | str) -> str:
    # As root, nginx's workers default to user "nobody", who cannot read pytest's 0700 temp dirs: keep them root
    # (a loopback-only test server).
    user = "user root root;" if os.geteuid() == 0 else ""
    return _CONFIG.format(workers=worker_processes, user=user, prefix=prefix, port=port, root=root.resolve())


@contextmanager
def running_nginx(root: Path, worker_processes: int | str = 1, attempts: int = 3) -> Iterator[NginxServer]:
    """Serve ``root`` on a free loopback port until the block ends."""
    if not root.is_dir():
        raise RealPartError(f"nginx: {root} is not a directory")
    binary = find_binary("nginx", "/usr/sbin/nginx", package="nginx")
    prefix = Path(tempfile.mkdtemp(prefix="nuseal-nginx-"))
    try:
        (prefix / "tmp").mkdir()
        for attempt in range(attempts):
            port = free_port()
            config = prefix / "nginx.conf"
            config.write_text(render_config(root, port, prefix, worker_processes))
            # -e: the startup error log, which nginx otherwise opens in /var/log/nginx before reading the config.
            process = ManagedProcess(
                "nginx", [binary, "-p", str(prefix), "-c", str(config), "-e", str(prefix / "error.log")],
                prefix / f"nginx-{attempt}.log", cwd=prefix,
            )  # fmt: skip
            try:
                process.wait_ready(functools.partial(port_open, port), START_TIMEOUT)
            except RealPartError:
                if "Address already in use" in process.log_tail(40) and attempt + 1 < attempts:
                    continue
                raise
            break
        try:
            yield NginxServer(port, root, worker_processes, config, process.pid)
        finally:
            process.stop()  # SIGTERM: nginx's fast shutdown
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


#: ``start(directory, worker_processes=1)`` -> a running nginx serving that directory until the session ends.
NginxFactory = Callable[..., NginxServer]


@pytest.fixture(scope="session")
def nginx_factory() -> Iterator[NginxFactory]:
    """Start nginx instances on demand; all of them stop at the end of the session."""
    with ExitStack() as stack:

        def start(root: Path, worker_processes: int | str = 1) -> NginxServer:
            with failing_clearly():
                return stack.enter_context(running_nginx(root, worker_processes))

        yield start
