"""What a worker process needs to run jobs: the service context, the keyring of opened signing keys and
timestampers, and the service index URL its repository signatures name."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from nuseal.server.services import dev_signing
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.repository_keys import Keyring
from nuseal.server.services.repository_signing import service_index_url


def worker_name() -> str:
    """``host:pid``, for logs."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class WorkerRuntime:
    ctx: ServiceContext
    keyring: Keyring
    #: The feed's service index (``{public_url}/v3/index.json``): what repository signatures name.
    service_index_url: str
    name: str = field(default_factory=worker_name)

    def close(self) -> None:
        self.keyring.close()


def make_runtime(ctx: ServiceContext, base_url: str) -> WorkerRuntime:
    """A runtime for a feed reached at ``base_url``; the development TSA is started on first use."""
    keyring = Keyring(ctx.settings, local_tsa_url=lambda: dev_signing.local_tsa(ctx.settings, ctx.clock).url,
                      clock=ctx.clock)  # fmt: skip
    return WorkerRuntime(ctx, keyring, service_index_url(base_url))
