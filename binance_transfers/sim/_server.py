"""Serving the exchange over TCP with uvicorn.

``serve(exchange)`` binds and listens *before* uvicorn starts, so the URL is
usable the moment it is known (even with port 0) and nothing polls for
readiness. Connection drops are real: the HTTP protocol is uvicorn's h11 one,
taught to abort the socket when the app asks (``Fault.drop``), or to close it
after part of the answer was written (``Fault.reset``). uvicorn runs on
asyncio only (the in-process transport works under trio too).
"""

from __future__ import annotations

import asyncio
import socket
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._extras import extra
from ._exchange import CUT_EXTENSION, DROP_EXTENSION

if TYPE_CHECKING:
    from ._exchange import SimulatedExchange

__all__ = ["SimServer", "serve"]


class SimServer:
    """The exchange listening on ``url``; an async context manager.

    ::

        async with serve(exchange) as server:
            client = Client(key, secret, api_url=server.url, papi_url=server.url)

    :meth:`run` serves in the foreground until :meth:`stop` (or Ctrl-C, when
    run from the main thread) instead.
    """

    def __init__(
        self, exchange: SimulatedExchange, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        with extra("sim", "serving the simulated exchange"):
            import uvicorn

            protocol = _dropping_protocol()
        app = exchange.app  # before binding: a missing extra leaves no socket open
        self.exchange = exchange
        self._socket = _listen(host, port)
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            app,
            lifespan="off",
            http=protocol,
            ws="none",
            # Leave the process's logging and the caller's IP alone: a client
            # cannot claim another IP with X-Forwarded-For at Binance either.
            log_config=None,
            access_log=False,
            proxy_headers=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """Base URL for both ``api_url`` and ``papi_url``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def run(self) -> None:
        """Serve until :meth:`stop` is called (or SIGINT/SIGTERM in the main thread)."""
        await self._server.serve([self._socket])

    def stop(self) -> None:
        """Ask the server to finish: open requests complete, then it closes."""
        self._server.should_exit = True

    async def __aenter__(self) -> SimServer:
        # A plain asyncio task rather than a task group: uvicorn only runs on
        # asyncio anyway, and this way a fixture may enter the server in one
        # task and leave it in another (pytest-asyncio does exactly that).
        self._task = asyncio.get_running_loop().create_task(self.run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                task.cancel()
                raise

    def __repr__(self) -> str:
        return f"<SimServer {self.url}>"


def serve(exchange: SimulatedExchange, *, host: str = "127.0.0.1", port: int = 0) -> SimServer:
    """Serve ``exchange`` over TCP on ``host:port`` (0: any free port)::

    async with serve(exchange) as server:
        print(server.url)
    """
    return SimServer(exchange, host=host, port=port)


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket, made so asyncio will set TCP_NODELAY on its connections.

    asyncio disables Nagle's algorithm only on sockets whose protocol is
    ``IPPROTO_TCP``; ``socket.create_server`` leaves it 0, and every answer
    would then wait ~40 ms for a delayed ACK between its header and body writes.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def _dropping_protocol() -> type[asyncio.Protocol]:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class DroppingH11Protocol(H11Protocol):
        """uvicorn's h11 protocol, plus a way for the app to hang up."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            inner = self.app

            async def app(scope: Any, receive: Any, send: Any) -> None:
                scope["extensions"] = {
                    **(scope.get("extensions") or {}),
                    DROP_EXTENSION: self.hang_up,
                    CUT_EXTENSION: self.cut,
                }
                await inner(scope, receive, send)

            self.app = app

        def hang_up(self) -> None:
            # Marked disconnected first, so uvicorn neither answers 500 nor
            # logs the app "returning without a response".
            if self.cycle is not None:
                self.cycle.disconnected = True
            self.transport.abort()

        def cut(self) -> None:
            # close(), not abort(): what was written (headers, part of the
            # body) still leaves, then the peer reads end-of-stream mid-body.
            if self.cycle is not None:
                self.cycle.disconnected = True
            self.transport.close()

    return DroppingH11Protocol
