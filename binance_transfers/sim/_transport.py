"""The in-process httpx transport: the exchange without sockets, failing like a network.

``httpx.ASGITransport`` enforces no timeout, cannot lose a connection, and
runs the app inside the caller's task, so cancelling the caller cancels the
exchange too. This transport behaves as TCP does instead:

* once the request is "written", the exchange serves it in a task of its
  own, to the end: a caller that is cancelled, or times out, only stops
  waiting, and the transfer still executes (as the server carries on after a
  client closes its socket);
* the app hangs up before answering (``Fault.drop``):
  ``httpx.RemoteProtocolError``, as httpx raises when a server closes the
  connection without answering;
* the app closes the connection mid-body (``Fault.reset``): the response
  arrives, and reading its body raises ``httpx.RemoteProtocolError``, as
  httpx does when a socket ends before ``Content-Length`` bytes;
* no answer within the request's read timeout (``Fault.late``, latency):
  ``httpx.ReadTimeout``. The wait runs on the event loop's clock, so it takes
  no real time under a fake clock (``looptime``).

The "stamp at the write" hook of the SDK's transport
(``request.extensions["binance_transfers.on_write"]``) is awaited right
before the request is handed to the exchange; if it raises, nothing is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import httpx

from ._exchange import CUT_EXTENSION, DROP_EXTENSION

__all__ = ["ON_WRITE_EXTENSION", "SimTransport"]

#: Request extension: ``async def () -> None`` awaited immediately before the first byte leaves.
ON_WRITE_EXTENSION = "binance_transfers.on_write"

log = logging.getLogger(__name__)

_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]


class _Hungup(Exception):
    """The app closed the connection; ``status`` is None if nothing was answered yet."""

    def __init__(self, status: int | None, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        super().__init__("the connection was closed")
        self.status = status
        self.headers = headers
        self.body = body


class _CutBody(httpx.AsyncByteStream):
    """Part of a body, then the error httpx raises when the socket ends too early."""

    def __init__(self, received: bytes, expected: str | None, request: httpx.Request) -> None:
        self._received = received
        self._expected = expected
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._received:
            yield self._received
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body: "
            f"received {len(self._received)} bytes, expected {self._expected}",
            request=self._request,
        )


class _Exchange:
    """One request's trip through the app, run to its end whatever its caller does."""

    def __init__(self, app: Any, client: tuple[str, int], request: httpx.Request) -> None:
        self._app = app
        self._client = client
        self._request = request
        self.done = anyio.Event()
        self.response: httpx.Response | None = None
        self.error: Exception | None = None
        self._abandoned = False

    async def run(self) -> None:
        try:
            asgi = httpx.ASGITransport(app=self._serve, client=self._client)
            self.response = await asgi.handle_async_request(self._request)
            # Read the body here, so the caller never waits on the app again.
            await self.response.aread()
        except Exception as exc:  # handed to the caller, who may be gone
            self.error = exc
        finally:
            self.done.set()
            self._report()

    def abandon(self) -> None:
        """The caller stopped waiting: nobody will see what happens next."""
        self._abandoned = True
        if self.done.is_set():
            self._report()

    def _report(self) -> None:
        # A hang-up is a fault the test asked for; anything else is a failure of
        # the app that no caller is left to see, so it must not vanish.
        if self._abandoned and self.error is not None and not isinstance(self.error, _Hungup):
            log.error(
                "the simulated exchange failed serving %s %s after its caller gave up",
                self._request.method,
                self._request.url.path,
                exc_info=self.error,
            )

    async def _serve(self, scope: _Message, receive: _Receive, send: _Send) -> None:
        status: int | None = None
        headers: list[tuple[bytes, bytes]] = []
        body = bytearray()
        closed = False

        def close() -> None:
            nonlocal closed
            closed = True

        async def watch(message: _Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
            await send(message)

        scope["extensions"] = {
            **(scope.get("extensions") or {}),
            DROP_EXTENSION: close,
            CUT_EXTENSION: close,
        }
        await self._app(scope, receive, watch)
        if closed:
            raise _Hungup(status, headers, bytes(body))

    def answer(self) -> httpx.Response:
        """What the caller sees: the response, or the network error a socket would give."""
        if isinstance(self.error, _Hungup):
            hungup = self.error
            if hungup.status is None:
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=self._request
                ) from None
            expected = dict(hungup.headers).get(b"content-length", b"?").decode()
            return httpx.Response(
                hungup.status,
                headers=hungup.headers,
                stream=_CutBody(hungup.body, expected, self._request),
                request=self._request,
            )
        if self.error is not None:
            raise self.error
        assert self.response is not None  # noqa: S101 - run() sets one or the other
        return self.response


class SimTransport(httpx.AsyncBaseTransport):
    """Sends requests straight to the exchange's ASGI app, as from ``client_ip``."""

    def __init__(self, app: Any, *, client_ip: str = "127.0.0.1", client_port: int = 50000) -> None:
        self._app = app
        self._client = (client_ip, client_port)
        # Strong references to the exchange's running asyncio tasks (the loop keeps weak ones).
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        on_write = request.extensions.get(ON_WRITE_EXTENSION)
        if on_write is not None:
            await on_write()
        trip = _Exchange(self._app, self._client, request)
        self._detach(trip.run)
        read = (request.extensions.get("timeout") or {}).get("read")
        try:
            with anyio.fail_after(read):
                await trip.done.wait()
        except TimeoutError:
            trip.abandon()
            raise httpx.ReadTimeout("The read operation timed out", request=request) from None
        except BaseException:  # cancelled: stop waiting, as a socket's reader would
            trip.abandon()
            raise
        return trip.answer()

    def _detach(self, run: Callable[[], Awaitable[None]]) -> None:
        """Start ``run`` in a task that outlives the caller (it ends with the event loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio: trio, the other backend anyio runs on
            import trio

            trio.lowlevel.spawn_system_task(run)
            return

        async def main() -> None:
            await run()

        task = loop.create_task(main())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def __repr__(self) -> str:
        return f"<SimTransport client={self._client[0]}>"
