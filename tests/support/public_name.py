"""Reaching a test feed at its public https name from a client subprocess, without DNS or /etc/hosts.

A feed pinned to a public URL (``https://feed.example.test``) names that host in its service index, its
repository signatures and every document; a client must reach it there. :class:`ConnectProxy` is a loopback
HTTP ``CONNECT`` proxy that tunnels only the pinned ``host:443`` to the feed's real loopback port (anything else is
refused with 403), so a client given ``HTTPS_PROXY`` talks TLS end to end to the feed under its public name, as it
would behind a reverse proxy. ``tls_for`` (server_fixtures) issues the feed a TLS certificate for that name
(plus 127.0.0.1 and localhost, so tests can still reach it directly). Hand-written: a CONNECT tunnel is ~40 lines
of sockets, and no test dependency offers one.
"""

from __future__ import annotations

import select
import socket
import socketserver
import threading


class ConnectProxy:
    """Tunnels ``CONNECT {host}:443`` to ``127.0.0.1:{port}``; records every CONNECT target it was asked for."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.requested: list[str] = []
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._handle(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk or len(head) > 65536:
                return
            head += chunk
        method, target, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        self.requested.append(f"{method} {target}")
        if method != "CONNECT" or target.lower() != f"{self.host}:443":
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as upstream:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            rest = head.split(b"\r\n\r\n", 1)[1]
            if rest:
                upstream.sendall(rest)
            _pump(client, upstream)


def _pump(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    peers = {a: b, b: a}
    while True:
        readable, _, _ = select.select(list(peers), [], [], 120)
        if not readable:
            return
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            peers[sock].sendall(data)
