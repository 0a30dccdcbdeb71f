"""The in-process httpx transport: the exchange without sockets, failing like a network.

``httpx.ASGITransport`` enforces no timeout and cannot lose a connection.
This transport adds both, so the client's error handling is exercised as it
would be on the wire:

* the app hangs up (``Fault.drop``): ``httpx.RemoteProtocolError``, as httpx
  raises when a server closes the connection without answering;
* no answer within the request's read timeout (``Fault.late``, latency):
  ``httpx.ReadTimeout``. The wait runs on the event loop's clock, so it takes
  no real time under a fake clock (``looptime``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import httpx

from ._exchange import DROP_EXTENSION

__all__ = ["SimTransport"]

_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]


class _Hungup(Exception):
    """The app closed the connection without answering."""


class SimTransport(httpx.AsyncBaseTransport):
    """Sends requests straight to the exchange's ASGI app, as from ``client_ip``."""

    def __init__(self, app: Any, *, client_ip: str = "127.0.0.1", client_port: int = 50000) -> None:
        self._app = app
        self._client = (client_ip, client_port)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        hung_up = False

        def drop() -> None:
            nonlocal hung_up
            hung_up = True

        async def app(scope: _Message, receive: _Receive, send: _Send) -> None:
            scope["extensions"] = {**(scope.get("extensions") or {}), DROP_EXTENSION: drop}
            await self._app(scope, receive, send)
            if hung_up:
                raise _Hungup

        asgi = httpx.ASGITransport(app=app, client=self._client)
        read = (request.extensions.get("timeout") or {}).get("read")
        try:
            with anyio.fail_after(read):
                return await asgi.handle_async_request(request)
        except _Hungup:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None
        except TimeoutError:
            raise httpx.ReadTimeout("The read operation timed out", request=request) from None

    def __repr__(self) -> str:
        return f"<SimTransport client={self._client[0]}>"
