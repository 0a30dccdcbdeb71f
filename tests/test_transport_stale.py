"""A keep-alive connection the server has closed is not used for a POST (B4-1).

A server (or a load balancer) may close an idle keep-alive connection without
``Connection: close`` on the answer before. httpcore checks a pooled socket for
EOF before reusing it and opens a fresh connection. The default aiohttp path
used to hand out the dead connection: aiohttp refused to write to it ("Cannot
write to closing transport", nothing written) and the transfer was reported as
OutcomeUnknownError, "maybe sent" for a request that never left. It now checks
a reused connection's socket the same way before anything is written.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from binance_transfers import Client, OutcomeUnknownError, TransferType

SERVER_MS = 1_767_225_600_000


class _OneShot:
    """HTTP/1.1 on 127.0.0.1: answers one request per connection, then closes it
    (no ``Connection: close`` header: an idle keep-alive timeout, as servers do)."""

    def __init__(self) -> None:
        self.posts = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            if head.startswith(b"POST"):
                self.posts += 1
                answer = b'{"tranId": 7}'
            else:
                answer = b'{"serverTime": %d}' % SERVER_MS
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer)
            )
            await writer.drain()
            # Closed one loop turn after the answer: the client has the connection
            # back in its pool, as when an idle timeout fires just as a request goes.
            await asyncio.sleep(0)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


@pytest.mark.parametrize("library", ["default (aiohttp)", "httpcore"])
async def test_a_post_on_a_connection_the_server_closed_is_not_unknown(
    library: str,
) -> None:
    """Five transfers, 50 ms apart, against a server that closes each connection after
    its answer: none may be reported "maybe executed" when none reached the server
    unanswered. The first transfer goes right after the clock sync's GET, on the
    GET's connection, which the server closes as it goes back to the pool (before
    the fix: OutcomeUnknownError on the default aiohttp path, 4 POSTs received)."""
    server = _OneShot()
    outcomes: list[str] = []
    kwargs: dict[str, Any] = {}
    if library == "httpcore":
        kwargs["transport"] = httpx.AsyncHTTPTransport()
    async with server as url, Client("k" * 64, "s" * 64, api_url=url, **kwargs) as client:
        await client.server_time()
        for _ in range(5):
            await asyncio.sleep(0.05)
            try:
                await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
                outcomes.append("done")
            except OutcomeUnknownError:
                outcomes.append("unknown")
    unknown_but_never_received = outcomes.count("unknown") - (server.posts - outcomes.count("done"))
    assert unknown_but_never_received == 0, (outcomes, server.posts)
    assert outcomes == ["done"] * 5, (outcomes, server.posts)
