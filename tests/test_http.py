"""The default HTTP client's transports against real faults on loopback sockets.

Every error must say whether the request may have been written, in httpx's
terms that the transport classifies (``HTTPX_ERRORS``): "not sent" only when no
byte of the request left. The ``binance_transfers.on_write`` extension is
awaited once per request, with the connection ready and before the first byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import struct
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import anyio
import httpx
import looptime
import pytest
import respx
import yarl

from binance_transfers import Client, ConnectionFailedError, OutcomeUnknownError, TransferType
from binance_transfers._http import (
    AIOHTTP_MAYBE_SENT,
    AIOHTTP_NOT_SENT,
    ON_WRITE,
    WriteAwareAiohttpTransport,
    _has_cookies,
    _LoopTransport,
    default_http_client,
    direct_transport,
    send_profile,
    translate_aiohttp_error,
)
from binance_transfers._transport import HTTPX_ERRORS
from binance_transfers.sim import DEMO_API_KEY, DEMO_API_SECRET, SimulatedExchange, serve

from .conftest import last_json

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"tranId":1}'

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


def sent_kind(exc: BaseException) -> str | None:
    """How the transport classifies an httpx exception (None: not an httpx error)."""
    return next((HTTPX_ERRORS[c] for c in type(exc).__mro__ if c in HTTPX_ERRORS), None)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


class Server:
    """A loopback HTTP/1.1 server whose every connection runs ``behaviour``."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.received = b""
        self.connections = 0
        self.open_now = 0
        self.most_open = 0
        self.arrived = asyncio.Condition()
        self.hang_up = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            await self.behaviour(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_now -= 1
            writer.close()

    async def request(self, reader: asyncio.StreamReader) -> bytes:
        data = await read_request(reader)
        async with self.arrived:
            self.received += data
            self.arrived.notify_all()
        return data

    async def requests(self, count: int) -> None:
        """Until ``count`` requests have arrived in all."""
        async with self.arrived:
            await self.arrived.wait_for(lambda: self.received.count(b"POST ") >= count)


@contextlib.asynccontextmanager
async def serving(behaviour: Behaviour) -> AsyncIterator[tuple[Server, str]]:
    server = Server(behaviour)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield server, f"http://127.0.0.1:{port}/sapi/v1/asset/transfer"


async def answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Server) -> None:
    while True:
        await s.request(reader)
        writer.write(OK)
        await writer.drain()


class Hook:
    """An on_write extension that records what the server had seen when it ran."""

    def __init__(self, server: Server | None = None) -> None:
        self.server = server
        self.calls = 0
        self.seen_by_server: list[bytes] = []

    async def __call__(self) -> None:
        self.calls += 1
        if self.server is not None:
            self.seen_by_server.append(self.server.received)


def aiohttp_client(
    timeout: httpx.Timeout | float = 5.0, connections: int = 10
) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(timeout=timeout, transport=WriteAwareAiohttpTransport(limits=limits))


@pytest.fixture(params=["httpx", "raw"])
def via(request: pytest.FixtureRequest) -> str:
    """Both ways into the transport: httpx's request and response objects, or
    ``exchange`` without them (the default client's own path)."""
    param: str = request.param
    return param


async def post(
    client: httpx.AsyncClient,
    url: str,
    hook: Callable[[], Awaitable[None]] | None,
    via: str = "httpx",
    body: bytes = b"type=MAIN_UMFUTURE&amount=1",
) -> httpx.Response:
    if via == "raw":
        transport = client._transport
        if isinstance(transport, _LoopTransport):
            transport = transport.choose()
        assert isinstance(transport, WriteAwareAiohttpTransport)
        t = client.timeout
        response, content = await transport.exchange(
            "POST",
            yarl.URL(url, encoded=True),
            [("Content-Type", "application/x-www-form-urlencoded")],
            body,
            transport.timeout(t.connect, t.read, t.pool),
            hook,
        )
        return httpx.Response(response.status, content=content)
    extensions = {ON_WRITE: hook} if hook is not None else {}
    request = client.build_request("POST", url, content=body, extensions=extensions)
    return await client.send(request)


# -- success and the hook ---------------------------------------------------------


async def test_hook_runs_once_per_request_before_any_byte_new_and_reused_connections(
    via: str,
) -> None:
    async with serving(answer_ok) as (server, url), aiohttp_client() as client:
        hook = Hook(server)
        for _ in range(3):
            response = await post(client, url, hook, via)
            assert response.json() == {"tranId": 1}
        # One connection, created once then reused twice: the hook ran for each
        # request, each time before the server had any byte of that request.
        assert server.connections == 1
        assert hook.calls == 3
        requests = server.received.count(b"POST /sapi/v1/asset/transfer")
        assert requests == 3
        assert [seen.count(b"POST ") for seen in hook.seen_by_server] == [0, 1, 2]


async def test_a_raising_hook_propagates_unchanged_and_nothing_is_written(via: str) -> None:
    class Refused(Exception):
        pass

    async def refuse() -> None:
        raise Refused("permit gone")

    async with serving(answer_ok) as (server, url), aiohttp_client() as client:
        with pytest.raises(Refused, match="permit gone"):
            await post(client, url, refuse, via, b"x=1")
        # Reusing the connection, the same.
        await post(client, url, None, via)
        before = server.received
        with pytest.raises(Refused):
            await post(client, url, refuse, via, b"x=1")
        await asyncio.sleep(0)
        assert server.received == before
        # The connection, untouched, went back to the pool: the next request reuses it.
        await post(client, url, None, via)
        assert server.connections == 1


# -- not written ------------------------------------------------------------------


async def test_connection_refused_is_not_sent_and_the_hook_never_runs(via: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        hook = Hook()
        async with aiohttp_client() as client:
            with pytest.raises(httpx.ConnectError) as caught:
                await post(client, f"http://127.0.0.1:{port}/x", hook, via)
    assert sent_kind(caught.value) == "not sent"
    assert hook.calls == 0


async def test_reset_during_tls_handshake_is_not_sent(via: str) -> None:
    async def reset_at_once(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await r.read(1)  # the TLS ClientHello, not a request
        reset(w)

    async with serving(reset_at_once) as (server, url), aiohttp_client() as client:
        hook = Hook(server)
        with pytest.raises(httpx.ConnectError) as caught:
            await post(client, url.replace("http://", "https://"), hook, via)
    assert sent_kind(caught.value) == "not sent"
    assert hook.calls == 0


@looptime.enabled(strict=True)
async def test_no_free_connection_in_time_is_not_sent(via: str) -> None:
    release = asyncio.Event()

    async def slow(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.request(r)
        await release.wait()
        w.write(OK)
        await w.drain()

    timeout = httpx.Timeout(5.0, pool=1.0)
    async with serving(slow) as (server, url), aiohttp_client(timeout, connections=1) as client:
        first = asyncio.create_task(post(client, url, None, via))
        await server.requests(1)
        hook = Hook()
        with pytest.raises(httpx.TimeoutException) as caught:
            await post(client, url, hook, via)
        assert sent_kind(caught.value) == "not sent"
        assert hook.calls == 0
        release.set()
        assert (await first).status_code == 200


# -- maybe written ----------------------------------------------------------------


async def test_closed_after_the_request_without_an_answer_is_maybe_sent(via: str) -> None:
    # httpx-aiohttp alone calls this ConnectTimeout ("not sent"): a double transfer.
    async def hang_up(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.request(r)
        w.close()

    async with serving(hang_up) as (server, url), aiohttp_client() as client:
        with pytest.raises(httpx.TransportError) as caught:
            await post(client, url, Hook(), via)
    assert sent_kind(caught.value) == "maybe sent"
    assert b"POST" in server.received


async def test_reset_after_the_request_is_maybe_sent(via: str) -> None:
    async def rst(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.request(r)
        reset(w)

    async with serving(rst) as (_, url), aiohttp_client() as client:
        with pytest.raises(httpx.TransportError) as caught:
            await post(client, url, Hook(), via)
    assert sent_kind(caught.value) == "maybe sent"


@looptime.enabled(strict=True)
async def test_read_timeout_is_maybe_sent(via: str) -> None:
    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.request(r)
        await asyncio.Event().wait()

    timeout = httpx.Timeout(5.0, read=30.0)
    async with serving(silent) as (_, url), aiohttp_client(timeout) as client:
        with pytest.raises(httpx.ReadTimeout) as caught:
            await post(client, url, Hook(), via)
    assert sent_kind(caught.value) == "maybe sent"


async def test_truncated_body_is_maybe_sent(via: str) -> None:
    async def truncated(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.request(r)
        w.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"tranId":')
        await w.drain()
        w.close()

    async with serving(truncated) as (_, url), aiohttp_client() as client:
        with pytest.raises(httpx.TransportError) as caught:
            await post(client, url, Hook(), via)
    assert sent_kind(caught.value) == "maybe sent"


async def test_garbage_instead_of_http_is_maybe_sent(via: str) -> None:
    async def garbage(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.request(r)
        w.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await w.drain()

    async with serving(garbage) as (_, url), aiohttp_client() as client:
        with pytest.raises(httpx.TransportError) as caught:
            await post(client, url, Hook(), via)
    assert sent_kind(caught.value) == "maybe sent"


# -- limits and the choice of transport -------------------------------------------


async def test_connections_never_exceed_max_in_flight(via: str) -> None:
    gate = asyncio.Event()

    async def held(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        while True:
            await s.request(r)
            await gate.wait()
            w.write(OK)
            await w.drain()

    async with serving(held) as (server, url):
        async with default_http_client(timeout=5.0, max_in_flight=3) as client:
            calls = [asyncio.create_task(post(client, url, None, via)) for _ in range(12)]
            await server.requests(3)
            gate.set()
            assert all(r.status_code == 200 for r in await asyncio.gather(*calls))
            transport = client._transport
            assert isinstance(transport, _LoopTransport)
            assert isinstance(transport.inner, WriteAwareAiohttpTransport)
        assert server.most_open == 3


def test_trio_gets_httpcore_and_its_errors() -> None:
    async def main() -> tuple[object, BaseException]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            async with default_http_client(timeout=5.0, max_in_flight=2) as client:
                try:
                    await client.post(f"http://127.0.0.1:{port}/x", content=b"x")
                except httpx.HTTPError as exc:
                    transport = client._transport
                    assert isinstance(transport, _LoopTransport)
                    return transport.inner, exc
        raise AssertionError("no error")

    inner, exc = anyio.run(main, backend="trio")
    assert type(inner) is httpx.AsyncHTTPTransport
    assert isinstance(exc, httpx.ConnectError)


# -- the maps -----------------------------------------------------------------------


def _subclasses(cls: type[BaseException]) -> set[type[BaseException]]:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= _subclasses(sub)
    return found


@pytest.mark.parametrize("written", [False, True])
def test_every_aiohttp_error_is_classified_as_its_phase_allows(written: bool) -> None:
    table = AIOHTTP_MAYBE_SENT if written else AIOHTTP_NOT_SENT
    expected = "maybe sent" if written else "not sent"
    classes = _subclasses(aiohttp.ClientError) | {asyncio.TimeoutError, ConnectionResetError}
    assert len(classes) > 20
    for cls in classes:
        mapped = next((table[c] for c in cls.__mro__ if c in table), None)
        assert mapped is not None, cls
        assert sent_kind(mapped("x")) == expected, cls
    # Timeouts stay timeouts.
    assert next(table[c] for c in aiohttp.SocketTimeoutError.__mro__ if c in table) is (
        httpx.ReadTimeout if written else httpx.ConnectTimeout
    )


def test_the_maps_only_hold_httpx_errors_of_their_kind() -> None:
    assert {sent_kind(cls("x")) for cls in AIOHTTP_NOT_SENT.values()} == {"not sent"}
    assert {sent_kind(cls("x")) for cls in AIOHTTP_MAYBE_SENT.values()} == {"maybe sent"}


def test_non_transport_errors_pass_unchanged() -> None:
    bug = KeyError("bug")
    assert translate_aiohttp_error(bug, written=True) is bug
    cancelled = asyncio.CancelledError()
    assert translate_aiohttp_error(cancelled, written=False) is cancelled
    mine = httpx.ReadTimeout("x")
    assert translate_aiohttp_error(mine, written=False) is mine


# -- through the client ---------------------------------------------------------------

KEY, SECRET = "k" * 64, "s" * 64


async def binance(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
    """Answers the time, then behaves as ``s.transfer`` says for transfers."""
    while True:
        request = await read_request(r)
        if request.startswith(b"GET /api/v3/time"):
            body = b'{"serverTime": %d}' % int(time.time() * 1000)
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await w.drain()
            continue
        async with s.arrived:
            s.received += request
            s.arrived.notify_all()
        if s.hang_up:
            w.close()
            return
        w.write(OK)
        await w.drain()


def client_http(via: str) -> httpx.AsyncClient:
    """The default client's own (requests skip httpx's objects), or the same
    transport brought by a user (requests go through httpx)."""
    if via == "raw":
        return default_http_client(timeout=5.0, max_in_flight=4)
    return aiohttp_client(connections=4)


def path_taken(c: Client) -> str:
    templates = c._transport._templates.values()
    return "raw" if any(t.aiohttp is not None for t in templates) else "httpx"


async def test_client_over_aiohttp_never_resends_a_transfer_whose_connection_dropped(
    via: str,
) -> None:
    async with serving(binance) as (server, url):
        base = url.split("/sapi")[0]
        server.hang_up = True
        http = client_http(via)
        async with http, Client(KEY, SECRET, api_url=base, papi_url=base, http_client=http) as c:
            with pytest.raises(OutcomeUnknownError):
                await c.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
            assert server.received.count(b"POST /sapi/v1/asset/transfer") == 1
            server.hang_up = False
            done = await c.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
            assert done.tran_id == 1
            assert path_taken(c) == via


async def test_client_over_aiohttp_retries_what_never_left(via: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        http = client_http(via)
        async with http, Client(KEY, SECRET, api_url=base, papi_url=base, http_client=http) as c:
            c._transport.connect_retries = 0
            with pytest.raises(ConnectionFailedError):
                await c.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
            assert path_taken(c) == via


async def test_client_reads_a_compressed_answer_on_both_paths(via: str) -> None:
    """The default client asks for gzip (httpx's Accept-Encoding) on its own path too,
    so it must decode a gzip answer there as httpx does on its path."""

    async def gzipped(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        while True:
            request = await read_request(r)
            if request.startswith(b"GET /api/v3/time"):
                body = b'{"serverTime": %d}' % int(time.time() * 1000)
            else:
                s.received += request
                body = b'{"tranId": 77}'
            packed = gzip.compress(body)
            w.write(
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
                % (len(packed), packed)
            )
            await w.drain()

    async with serving(gzipped) as (server, url):
        base = url.split("/sapi")[0]
        http = client_http(via)
        async with http, Client(KEY, SECRET, api_url=base, papi_url=base, http_client=http) as c:
            done = await c.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
            assert done.tran_id == 77
            assert path_taken(c) == via
    assert b"accept-encoding: gzip" in server.received.lower()


# -- direct_transport ---------------------------------------------------------------


def _ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200)


async def test_direct_transport_is_the_clients_own_when_send_adds_nothing() -> None:
    mock = httpx.MockTransport(_ok)
    async with httpx.AsyncClient(transport=mock) as plain:
        assert direct_transport(plain, "https://api.binance.com") is mock
    mounted = httpx.MockTransport(_ok)
    async with httpx.AsyncClient(
        transport=mock, mounts={"https://papi.binance.com": mounted}
    ) as client:
        assert direct_transport(client, "https://papi.binance.com") is mounted
        assert direct_transport(client, "https://api.binance.com") is mock


async def _hook(_: object) -> None:
    pass


@pytest.mark.parametrize(
    "options",
    [
        {"event_hooks": {"request": [_hook]}},
        {"event_hooks": {"response": [_hook]}},
        {"auth": ("user", "password")},
        {"cookies": {"session": "1"}},
        {"follow_redirects": True},
        {"params": {"x": "1"}},
    ],
    ids=["request hook", "response hook", "auth", "cookies", "redirects", "params"],
)
async def test_direct_transport_is_none_when_send_does_something(options: dict[str, Any]) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(_ok), **options) as client:
        assert direct_transport(client, "https://api.binance.com") is None


async def test_the_cookie_check_never_misses_a_cookie_in_the_jar() -> None:
    """send_profile reads the standard jar's store (not a count over the jar): a
    cookie added, removed, or cleared for one domain only is never missed."""
    async with httpx.AsyncClient(transport=httpx.MockTransport(_ok)) as client:
        jar = client.cookies.jar
        assert not _has_cookies(jar) and not send_profile(client)[4]
        client.cookies.set("session", "1", domain="api.binance.com")
        client.cookies.set("other", "2", domain="example.com")
        assert _has_cookies(jar) and send_profile(client)[4]
        jar.clear("example.com")  # one domain's cookies gone, another's left
        assert len(jar) == 1 and _has_cookies(jar)
        jar.clear("api.binance.com", "/", "session")  # empty dicts may stay: "maybe"
        assert len(jar) == 0
        client.cookies.clear()
        assert not _has_cookies(jar) and not any(send_profile(client))


def test_the_cookie_check_asks_a_jar_of_another_kind() -> None:
    class Jar:
        def __init__(self, cookies: list[str]) -> None:
            self.cookies = cookies

        def __iter__(self) -> Any:
            return iter(self.cookies)

    assert not _has_cookies(Jar([])) and _has_cookies(Jar(["c"]))


async def test_respx_mocks_still_see_the_requests() -> None:
    with respx.mock:
        route = respx.post("https://api.binance.com/x").respond(json={"tranId": 3})
        async with default_http_client(timeout=5.0, max_in_flight=2) as client:
            response = await client.post("https://api.binance.com/x", content=b"a=1")
            assert response.json() == {"tranId": 3}
            transport = client._transport
            assert isinstance(transport, _LoopTransport)
            assert type(transport.inner) is httpx.AsyncHTTPTransport
        assert route.call_count == 1


async def test_a_header_aiohttp_would_refuse_is_refused_before_anything_is_written() -> None:
    async with serving(answer_ok) as (server, url), aiohttp_client() as client:
        hook = Hook(server)
        secret = "key-with-a-newline\n"
        request = client.build_request(
            "POST",
            url,
            content=b"x=1",
            headers={"X-MBX-APIKEY": secret},
            extensions={ON_WRITE: hook},
        )
        with pytest.raises(httpx.LocalProtocolError) as caught:
            await client.send(request)
        assert sent_kind(caught.value) == "not sent"
        assert "x-mbx-apikey" in str(caught.value).lower()
        assert secret.strip() not in str(caught.value)
        assert hook.calls == 0
        assert server.connections == 0


# -- the bytes on the wire are the bytes signed -------------------------------------

# Percent-escapes yarl (under aiohttp) would turn back into characters when
# given the URL as text: `%40` -> `@`, `%3A` -> `:`, `%2F` -> `/`, `%7E` -> `~`...
SIGNED_QUERY = (
    "email=desk-1%40sim.invalid&symbol=%3A%2F%3F&tag=%7E%21%24%27%28%29%2A%2C%3B%3D"
    "&timestamp=1&signature=ab%2Bc%2F%3D"
)


async def test_a_signed_query_goes_on_the_wire_byte_for_byte() -> None:
    """The server verifies the signature over the query it receives: not one escape may change.

    (aiohttp re-quotes a URL given as text; httpx-aiohttp gives it text, so a
    sub-account history by e-mail was refused with -1022, "signature not valid".)
    """
    async with serving(answer_ok) as (server, url), aiohttp_client() as client:
        response = await client.get(f"{url}?{SIGNED_QUERY}")
        assert response.status_code == 200
    request_line = server.received.split(b"\r\n", 1)[0]
    assert request_line == f"GET /sapi/v1/asset/transfer?{SIGNED_QUERY} HTTP/1.1".encode()


async def test_the_default_client_reads_sub_account_history_by_email_from_the_simulator() -> None:
    """End to end, over loopback: a signed GET with an e-mail in it is accepted."""
    exchange = SimulatedExchange()
    exchange.add_demo_account()
    async with serve(exchange) as server:
        http = default_http_client(timeout=5.0, max_in_flight=4)
        async with (
            http,
            Client(
                DEMO_API_KEY,
                DEMO_API_SECRET,
                api_url=server.url,
                papi_url=server.url,
                http_client=http,
            ) as client,
        ):
            await client.sub_account_transfer(
                to_email="desk-1@sim.invalid",
                from_account_type="SPOT",
                to_account_type="SPOT",
                asset="USDT",
                amount="3",
                client_tran_id="by-email-1",
            )
            rows = [
                row
                async for row in client.sub_account_transfer_history(to_email="desk-1@sim.invalid")
            ]
            assert isinstance(http._transport, _LoopTransport)
            assert isinstance(http._transport.inner, WriteAwareAiohttpTransport)
    assert [row.client_tran_id for row in rows] == ["by-email-1"]


async def test_a_header_name_aiohttp_would_refuse_is_refused_before_anything_is_written() -> None:
    async with serving(answer_ok) as (server, url), aiohttp_client() as client:
        hook = Hook(server)
        request = client.build_request(
            "POST", url, content=b"x=1", headers=[(b"X-Bad\x01", b"1")], extensions={ON_WRITE: hook}
        )
        with pytest.raises(httpx.LocalProtocolError, match="header name") as caught:
            await client.send(request)
        assert sent_kind(caught.value) == "not sent"
        assert hook.calls == 0
        assert server.connections == 0


# -- B6-3: the transport library is imported by Client(), not by its first call (the first
# call itself: tests/test_first_call_imports.py) ---

_TRIO_CLIENT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import trio
    from binance_transfers import Client

    async def main():
        before = set(sys.modules)
        client = Client("k" * 64, "s" * 64)
        built = sorted(m for m in set(sys.modules) - before if "." not in m)
        await client.aclose()
        print(json.dumps({"built": built}))

    trio.run(main)
    """
)


def test_a_client_built_under_trio_imports_httpcore_not_aiohttp() -> None:
    """Under trio the default client sends through httpcore: Client() imports that
    (not inside the first call, B6-3), and not aiohttp, which trio never uses."""
    built = last_json(_TRIO_CLIENT_SCRIPT, timeout=120)["built"]
    assert "aiohttp" not in built and "yarl" not in built, built
    assert "httpcore" in built, built
