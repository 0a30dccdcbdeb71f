"""The ASGI application: one Starlette route per endpoint of the table.

Routes are built by iterating the endpoint table, so the simulator serves
exactly the paths and methods the client calls, with the table's weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ._exchange import CUT_EXTENSION, DROP_EXTENSION, Incoming

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .._endpoints import Endpoint
    from ._exchange import SimulatedExchange

__all__ = ["build_app"]


class _Hangup(Response):
    """No answer at all: the connection is closed instead."""

    def __init__(self) -> None:
        super().__init__(status_code=500)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        drop = (scope.get("extensions") or {}).get(DROP_EXTENSION)
        if drop is not None:
            drop()
        # Without the extension nothing is sent and the server answers 500 on
        # its own, which a client must also treat as an unknown outcome.


class _Cut(Response):
    """The status line, the headers (with the full ``Content-Length``) and half the body.

    Then the connection closes, as when a proxy or the network dies mid-answer.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send(
            {
                "type": "http.response.body",
                "body": self.body[: len(self.body) // 2],
                "more_body": True,
            }
        )
        cut = (scope.get("extensions") or {}).get(CUT_EXTENSION)
        if cut is not None:
            cut()
        # Without the extension the server sees an unfinished answer and closes
        # the connection itself: the client reads a truncated body all the same.


def build_app(exchange: SimulatedExchange) -> Starlette:
    """The Starlette app serving every endpoint of ``exchange.endpoints``."""
    routes = [
        Route(endpoint.path, _handler(exchange, endpoint), methods=[endpoint.method], name=name)
        for name, endpoint in exchange.endpoints.items()
    ]

    async def unserved(request: Request, exc: Exception) -> Response:
        # Still a request the exchange received: the ledger keeps it too.
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        exchange.unserved(_incoming(request, b""), status)
        return PlainTextResponse("Not Found" if status == 404 else "Method Not Allowed", status)

    return Starlette(routes=routes, exception_handlers={404: unserved, 405: unserved})


def _incoming(request: Request, body: bytes) -> Incoming:
    return Incoming(
        method=request.method,
        path=request.url.path,
        query=request.scope.get("query_string", b""),
        body=body,
        api_key=request.headers.get("x-mbx-apikey"),
        ip=request.client.host if request.client is not None else "unknown",
    )


def _handler(
    exchange: SimulatedExchange, endpoint: Endpoint
) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        answer = await exchange.handle(endpoint, _incoming(request, await request.body()))
        if answer.drop:
            return _Hangup()
        cls = _Cut if answer.reset else Response
        return cls(
            answer.body,
            status_code=answer.status,
            headers=dict(answer.headers),
            media_type=answer.content_type,
        )

    return handle
