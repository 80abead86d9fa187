"""HTTP/1.1 reason phrases chosen by the application: how nuget.org's push messages reach NuGet clients.

nuget.org answers a refused push with its message as the status line's reason phrase (NuGetGallery's
``HttpStatusCodeWithBodyResult``: the message on one line, at most 512 characters) and in the body; nuget.exe and
``dotnet nuget push`` print only the reason phrase: ``Response status code does not indicate success: 400 (This
package must be signed with a registered certificate.)``. ASGI has no field for a reason phrase and uvicorn
always writes the standard one, so this module adds one, as an ASGI extension:

- the server advertises :data:`EXTENSION` in ``scope["extensions"]``; an application that sees it may put a
  phrase under :data:`REASON_KEY` in its ``http.response.start`` message (:func:`send_with_reason`);
- :class:`ReasonPhraseProtocol` is uvicorn's httptools protocol whose request cycles write that phrase in the
  status line. Hand-written because neither of uvicorn's protocols (nor its config) can take a phrase; the
  change is confined to the status line of responses that ask for it: everything else is uvicorn's own code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final, cast

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

#: The extension's name in ``scope["extensions"]``.
EXTENSION: Final = "nuseal.reason_phrase"
#: The key of the phrase in the ``http.response.start`` message.
REASON_KEY: Final = "nuseal.reason_phrase"
#: nuget.org's ``MaxReasonPhraseLength``: longer phrases are cut to 509 characters and "...".
MAX_LENGTH: Final = 512

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


def reason_phrase(text: str) -> str:
    """``text`` as a reason phrase: one line (nuget.org joins the lines with a space), only visible Latin-1
    characters and spaces (others become ``?``), at most :data:`MAX_LENGTH` characters."""
    line = " ".join(text.split())
    line = "".join(c if (" " <= c <= "~") or ("\xa0" <= c <= "\xff") else "?" for c in line)
    return line if len(line) <= MAX_LENGTH else line[:MAX_LENGTH - 3] + "..."


def supports_reason(scope: MutableMapping[str, Any]) -> bool:
    return EXTENSION in (scope.get("extensions") or {})


def send_with_reason(send: Send, reason: str) -> Send:
    """``send`` that adds ``reason`` to the ``http.response.start`` message (the caller checks
    :func:`supports_reason`; servers ignore keys they do not know anyway)."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, REASON_KEY: reason_phrase(reason)}
        await send(message)

    return sending


class _StatusLineWriter:
    """The connection's transport, replacing the standard status line at the start of the one write that
    carries it (uvicorn writes the status line and the headers in one ``write``)."""

    def __init__(self, transport: asyncio.Transport, standard: bytes, custom: bytes) -> None:
        self._transport = transport
        self._standard = standard
        self._custom = custom

    def write(self, data: bytes | bytearray | memoryview) -> None:
        raw = bytes(data)
        if raw.startswith(self._standard):
            raw = self._custom + raw[len(self._standard):]
        self._transport.write(raw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _ReasonPhraseCycle(RequestResponseCycle):
    """uvicorn's request cycle, writing the phrase a ``http.response.start`` message carries."""

    async def send(self, message: Any) -> None:
        reason = message.get(REASON_KEY) if message["type"] == "http.response.start" else None
        if self.response_started or not isinstance(reason, str) or not reason:
            await super().send(message)
            return
        status = int(message["status"])
        custom = b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase(reason).encode("latin-1"))
        transport = self.transport
        self.transport = cast(asyncio.Transport, _StatusLineWriter(transport, STATUS_LINE[status], custom))
        try:
            await super().send(message)
        finally:
            self.transport = transport


class ReasonPhraseProtocol(HttpToolsProtocol):
    """uvicorn's httptools HTTP/1.1 protocol (its default), advertising :data:`EXTENSION` and writing the
    reason phrases the application sends."""

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is None or cycle is before:  # an upgrade (WebSocket): no request cycle was made
            return
        # The cycle was just made and its ASGI task has not run yet: make it ours before the application starts.
        cycle.__class__ = _ReasonPhraseCycle
        extensions = cast(dict[str, Any], cycle.scope).setdefault("extensions", {})
        extensions[EXTENSION] = {}
