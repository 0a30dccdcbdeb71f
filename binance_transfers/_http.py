"""The default HTTP client: httpx's API over the fastest transport for the running loop.

On asyncio, requests go through aiohttp (:class:`WriteAwareAiohttpTransport`),
which costs about half of httpcore's CPU per request; on trio (and any
other loop), and wherever respx or pytest-httpx has patched httpx's transports,
they go through httpcore. The choice is made at the first request,
inside the loop, because a client may be built before any loop runs.

aiohttp's exceptions do not tell whether a request was written: a connection
dropped *after* the request left (``ServerDisconnectedError``) is a
``ClientConnectionError`` like a refused one (``httpx-aiohttp`` maps both to
``httpx.ConnectTimeout``, "never sent", which would let a transfer be sent
twice). :class:`WriteAwareAiohttpTransport` therefore classifies every error
by whether aiohttp had handed over a ready connection for the request (its
connector's ``connect()`` returned, just before the first byte is written):
errors before that become httpx's "not sent" exceptions
(:data:`AIOHTTP_NOT_SENT`), errors after it "maybe sent" ones
(:data:`AIOHTTP_MAYBE_SENT`), reading the body included.

The same moment awaits the request's ``binance_transfers.on_write``
extension, if any ("stamp at the write"): once per request, with the connection
ready, before the first byte is written. If it raises, nothing is written and
the exception propagates unchanged.
"""

from __future__ import annotations

import contextvars
import functools
import re
import select
import sys
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import aiohttp
    import yarl

__all__ = [
    "AIOHTTP_MAYBE_SENT",
    "AIOHTTP_NOT_SENT",
    "ON_WRITE",
    "RefusedBeforeWriting",
    "WriteAwareAiohttpTransport",
    "default_http_client",
    "direct_transport",
    "raw_aiohttp",
    "send_profile",
    "translate_aiohttp_error",
    "writable",
]

#: The request extension awaited just before the request's first byte is written.
ON_WRITE = "binance_transfers.on_write"

OnWrite = Callable[[], Awaitable[None]]


class RefusedBeforeWriting(httpx.LocalProtocolError):
    """A request the transport refused before connecting: not one byte of it was written.

    httpx's ``LocalProtocolError`` may come after a write (HTTP/2); this one never does.
    """


def default_http_client(
    *, timeout: httpx.Timeout | float | tuple[float, float, float, float], max_in_flight: int
) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` a :class:`Client` builds when given none.

    At most ``max_in_flight`` connections, all kept alive. The transport is
    chosen at the first request: aiohttp on asyncio when it is installed,
    httpcore otherwise (trio included).

    With a proxy in the environment (``HTTP_PROXY``, ``HTTPS_PROXY``,
    ``ALL_PROXY``), httpx's own client is returned instead: httpx honours
    them (and ``NO_PROXY``) only for the transports it builds itself.
    """
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    if _environment_proxies():
        return httpx.AsyncClient(timeout=timeout, limits=limits)
    return httpx.AsyncClient(timeout=timeout, transport=_LoopTransport(limits))


def _environment_proxies() -> bool:
    """Whether the environment names a proxy httpx would use for http(s)."""
    from urllib.request import getproxies  # httpx imports it already: free

    return any(scheme in ("http", "https", "all") for scheme in getproxies())


class _LoopTransport(httpx.AsyncBaseTransport):
    """Picks the transport for the loop the first request runs in."""

    #: Both choices tell when a request is written: aiohttp's awaits the
    #: ``on_write`` extension, httpcore reports through its ``trace`` extension.
    reports_writes = True

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        self._inner: httpx.AsyncBaseTransport | None = None
        # B7-2: built here, not by the first request (certifi's bundle
        # read and parsed: 0.1-0.3 s at load 8, on the loop, inside the call's
        # max_wait). The context httpx builds by default (trust_env included).
        self._ssl = httpx.create_ssl_context()
        self._prepared: object = None  # the library prepare() imported for
        self.prepare()

    @property
    def inner(self) -> httpx.AsyncBaseTransport | None:
        """The transport chosen (None before the first request)."""
        return self._inner

    def _choose(self) -> httpx.AsyncBaseTransport:
        import sniffio

        if sniffio.current_async_library() == "asyncio" and not _mocked():
            try:
                return WriteAwareAiohttpTransport(limits=self._limits, ssl=self._ssl)
            except ImportError:  # aiohttp not installed
                pass
        return httpx.AsyncHTTPTransport(limits=self._limits, verify=self._ssl)

    def prepare(self) -> None:
        """Import what requests in the running event loop will need: call it before
        the first request, where a wait is not inside a call's ``max_wait``.

        ``Client()`` calls it, and ``async with client`` again (a client built
        outside any loop learns its library there). Each library once.
        """
        library = _running_library()
        if library is not None and library == self._prepared:
            return
        _preload(library)
        self._prepared = library

    def choose(self) -> httpx.AsyncBaseTransport:
        """The transport for the running loop, chosen now if it was not yet."""
        inner = self._inner
        if inner is None:
            inner = self._inner = self._choose()
        return inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await (self._inner or self.choose()).handle_async_request(request)

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()


def prepare(http: httpx.AsyncClient) -> None:
    """Run ``_LoopTransport.prepare`` if ``http`` is the package's default client."""
    transport = getattr(http, "_transport", None)  # httpx's own attribute; absent: nothing
    if isinstance(transport, _LoopTransport):
        transport.prepare()


def _running_library() -> str | None:
    """``"asyncio"``, ``"trio"``... or None outside any event loop."""
    import sniffio

    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None


def _preload(library: str | None) -> None:
    """Import now what the first request in ``library``'s loop would import.

    B6-3, B7-2: imported by the first request, they ran on the
    event loop inside its ``max_wait`` (0.3-0.8 s at load 8-10: "clock could not
    be synced within max_wait", every other coroutine stalled meanwhile). Under
    trio that is httpcore (trio never uses aiohttp); under asyncio aiohttp (and
    yarl, multidict); inside a loop also anyio's backend for it, and the anyio
    modules httpx and httpcore use per connection. Outside any loop (a client
    built at module level) both transports' libraries: no loop waits, and the
    loop's own part follows at ``async with client`` (``prepare``).
    ``import binance_transfers`` stays light: only building the default client
    pays, once. Which transport serves the loop is still decided at the first
    request (``choose``).
    """
    httpcore_too = library != "asyncio"
    try:
        if library != "trio":
            import aiohttp  # noqa: F401
            import yarl  # noqa: F401
    except ImportError:  # not installed: httpcore serves every loop
        httpcore_too = True
    if httpcore_too:
        import httpcore  # noqa: F401
    if library is not None:
        import anyio.streams.tls
        import anyio.to_thread

        anyio.get_cancelled_exc_class()  # imports anyio's backend for this library


def _mocked() -> bool:
    """Whether a test double has patched httpx's or httpcore's transport.

    respx patches httpcore's connection pool, pytest-httpx httpx's transport:
    tests that mock Binance that way must see our requests, so they go
    through httpcore (the same requests, the same answers, slower).
    """
    methods: list[Any] = [httpx.AsyncHTTPTransport.handle_async_request]
    httpcore = sys.modules.get("httpcore")  # not imported: nobody patched it
    if httpcore is not None:
        methods.append(httpcore.AsyncConnectionPool.handle_async_request)
    for method in methods:
        if not getattr(method, "__module__", "").startswith(("httpx.", "httpcore.")):
            return True
    return False


class _Attempt:
    """One request's progress, seen by the connector through a context variable."""

    __slots__ = ("hook_error", "on_write", "written")

    def __init__(self, on_write: OnWrite | None) -> None:
        self.on_write = on_write
        self.written = False
        self.hook_error: BaseException | None = None


# What aiohttp's writer refuses in a header (RFC 9110 5.5, 9112 4).
_FORBIDDEN_IN_HEADER = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]").search

# The connector runs in the task that sends the request, so a context
# variable carries the request's state to it (aiohttp's connect() gets
# nothing of ours but the request).
_ATTEMPT: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar(
    "binance_transfers_http_attempt", default=None
)


def _connector(limits: httpx.Limits, ssl: Any) -> aiohttp.TCPConnector:
    """aiohttp's connector, awaiting the request's ``on_write`` hook as it hands a connection over.

    ``connect()`` returns a ready connection (new, or reused from the pool)
    and nothing of the request has been written yet: aiohttp writes only
    after it. If the hook raises, the connection goes back to the pool
    untouched and the exception propagates.

    A pooled connection the server has closed meanwhile (an idle keep-alive
    timeout: no ``Connection: close`` warned of it) is not handed over:
    aiohttp's pool only sees a close once the loop has processed it, and
    aiohttp would then refuse to write, an error that comes after the hand-over
    and so reads "maybe sent". As httpcore does, a reused connection whose
    socket is readable (EOF, or bytes nobody asked for) is closed before
    anything is written, and another one taken.
    """
    import aiohttp

    class Connector(aiohttp.TCPConnector):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            # The protocols handed over at least once: only those are checked
            # (a new TLS connection may be readable with the server's session
            # tickets, which the loop has not read yet).
            self._served: weakref.WeakSet[Any] = weakref.WeakSet()

        async def _live(self, req: Any, traces: Any, timeout: Any) -> Any:  # noqa: ASYNC109
            """A connection from the pool that the server has not closed, or a new one."""
            served = self._served
            while True:
                connection = await super().connect(req, traces, timeout)
                protocol = connection.protocol
                if protocol not in served:
                    served.add(protocol)
                    return connection
                if not _closed_by_peer(connection.transport):
                    return connection
                connection.close()  # nothing was written on it: take another

        async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:  # noqa: ASYNC109
            connection = await self._live(req, traces, timeout)
            attempt = _ATTEMPT.get()
            if attempt is None or attempt.written:
                # aiohttp retries an idempotent request (GET) once on a fresh
                # connection when a reused one was dead: the hook ran already.
                return connection
            if attempt.on_write is not None:
                try:
                    await attempt.on_write()
                except BaseException as exc:
                    attempt.hook_error = exc
                    connection.release()
                    raise
            attempt.written = True
            return connection

    return Connector(
        limit=limits.max_connections or 0, keepalive_timeout=limits.keepalive_expiry, ssl=ssl
    )


def _closed_by_peer(transport: Any) -> bool:
    """Whether an idle connection's transport is closing, or its socket readable.

    An idle HTTP/1.1 connection has nothing to read: readable means the
    server's FIN (or an alert, or stray bytes) arrived and the loop has not
    processed it yet. One ``poll(0)``, about a microsecond.
    """
    if transport is None or transport.is_closing():
        return True
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False  # not a socket transport: nothing to peek at
    fd = sock.fileno()
    if fd < 0:
        return True
    if _poll is None:  # Windows: no poll()
        return bool(select.select([fd], [], [], 0)[0])
    poller = _poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


_poll = getattr(select, "poll", None)


@functools.cache
def _maps() -> tuple[
    Mapping[type[BaseException], type[httpx.TransportError]],
    Mapping[type[BaseException], type[httpx.TransportError]],
]:
    import asyncio

    import aiohttp

    # Before the connection was handed over, nothing of the request was written.
    not_sent: dict[type[BaseException], type[httpx.TransportError]] = {
        aiohttp.ClientProxyConnectionError: httpx.ProxyError,
        aiohttp.ClientHttpProxyError: httpx.ProxyError,
        aiohttp.InvalidURL: httpx.UnsupportedProtocol,
        aiohttp.NonHttpUrlClientError: httpx.UnsupportedProtocol,
        aiohttp.ServerTimeoutError: httpx.ConnectTimeout,
        asyncio.TimeoutError: httpx.ConnectTimeout,
        aiohttp.ClientError: httpx.ConnectError,
        OSError: httpx.ConnectError,
    }
    # After it, any error may have come after Binance received the request.
    maybe_sent: dict[type[BaseException], type[httpx.TransportError]] = {
        aiohttp.ServerTimeoutError: httpx.ReadTimeout,
        asyncio.TimeoutError: httpx.ReadTimeout,
        aiohttp.ServerDisconnectedError: httpx.RemoteProtocolError,
        aiohttp.ClientResponseError: httpx.RemoteProtocolError,
        aiohttp.ClientPayloadError: httpx.ReadError,
        aiohttp.ClientError: httpx.ReadError,
        OSError: httpx.ReadError,
    }
    return not_sent, maybe_sent


_ErrorMap = Mapping[type[BaseException], type[httpx.TransportError]]

if TYPE_CHECKING:
    #: aiohttp's exception -> httpx's, for errors before the request could be written.
    AIOHTTP_NOT_SENT: _ErrorMap
    #: aiohttp's exception -> httpx's, for errors once it may have been written.
    AIOHTTP_MAYBE_SENT: _ErrorMap


def __getattr__(name: str) -> _ErrorMap:
    # The maps import aiohttp: built at first use, so that importing the
    # package (this module included) does not load aiohttp.
    if name in ("AIOHTTP_NOT_SENT", "AIOHTTP_MAYBE_SENT"):
        return _maps()[name == "AIOHTTP_MAYBE_SENT"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def translate_aiohttp_error(exc: BaseException, *, written: bool) -> BaseException:
    """The httpx exception for an aiohttp one, by whether the request may have been written.

    Looked up along ``type(exc).__mro__`` in :data:`AIOHTTP_NOT_SENT` or
    :data:`AIOHTTP_MAYBE_SENT`; anything that is not a transport error (a bug,
    a cancellation, httpx's own exception) is returned unchanged.
    """
    if isinstance(exc, httpx.HTTPError) or not isinstance(exc, Exception):
        return exc
    table = _maps()[written]
    for cls in type(exc).__mro__:
        mapped = table.get(cls)
        if mapped is not None:
            return mapped(f"{type(exc).__name__}: {exc}")
    return exc


class WriteAwareAiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport over aiohttp, its errors classified by whether the request was written.

    Written for this package rather than taken from ``httpx-aiohttp``, which
    gets two things wrong for signed requests: it hands aiohttp the URL as
    text, which aiohttp (yarl) re-quotes (``%40`` leaves as ``@``: Binance then
    checks the signature over other bytes and answers -1022), and it reports
    a connection dropped after the write as ``ConnectTimeout`` ("never sent").
    Here the URL goes to aiohttp already encoded, exactly as signed, and the
    body is read inside the transport (Binance's answers are small).

    Raises ``ImportError`` when aiohttp is not installed.
    """

    #: It awaits the ``binance_transfers.on_write`` extension before writing.
    reports_writes = True

    def __init__(self, *, limits: httpx.Limits, ssl: Any = None) -> None:
        import aiohttp  # noqa: F401 - fail here (ImportError) rather than at the first request

        self._limits = limits
        self._ssl = ssl  # None: httpx's default context, built at the first request
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        import aiohttp

        # The SSL context httpx would use (certifi, SSL_CERT_FILE...).
        ssl = self._ssl if self._ssl is not None else httpx.create_ssl_context()
        connector = _connector(self._limits, ssl)
        # No cookie jar (Binance sets none worth keeping) and no decoding:
        # httpx decodes the body by its Content-Encoding, as for httpcore.
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
        )
        return self._session

    def timeout(
        self, connect: float | None, read: float | None, pool: float | None
    ) -> aiohttp.ClientTimeout:
        """aiohttp's timeouts for httpx's ``connect``, ``read`` and ``pool`` (cached)."""
        key = (connect, read, pool)
        cached = self._timeouts.get(key)
        if cached is None:
            import aiohttp

            # aiohttp's `connect` spans waiting for a pooled connection and
            # opening one: httpx's pool timeout; `sock_connect` is httpx's connect.
            cached = aiohttp.ClientTimeout(
                total=None, connect=pool, sock_connect=connect, sock_read=read
            )
            self._timeouts[key] = cached
        return cached

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # aiohttp refuses these only as it serialises the request, after the
        # connection is handed over: refuse them first, when nothing is
        # written (one scan of all headers at once; tabs are allowed). No
        # local holds the headers: a traceback's locals would show the key.
        if _FORBIDDEN_IN_HEADER(b"\t".join([b"\t".join(pair) for pair in request.headers.raw])):
            _refuse_header(request.headers.raw)
        import yarl

        body = await request.aread()
        timeout = request.extensions.get("timeout") or {}
        # encoded=True: the target goes on the wire byte for byte as httpx
        # encoded it (and as the signature covers it).
        response, content = await self.exchange(
            request.method,
            yarl.URL(str(request.url), encoded=True),
            request.headers.multi_items(),
            body or None,
            self.timeout(timeout.get("connect"), timeout.get("read"), timeout.get("pool")),
            request.extensions.get(ON_WRITE),
            request.extensions.get("sni_hostname"),
        )
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("latin-1", "replace")
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=httpx.ByteStream(content),
            request=request,
            extensions=extensions,
        )

    async def exchange(
        self,
        method: str,
        url: yarl.URL,
        headers: Any,
        body: bytes | None,
        timeouts: aiohttp.ClientTimeout,
        on_write: OnWrite | None = None,
        server_hostname: str | None = None,
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        """Send one request as it is and read its answer: ``(response, body)``.

        What :meth:`handle_async_request` does, without httpx's request and
        response objects, for a caller that prepared the request itself
        (``url`` already encoded, ``headers`` already checked for control
        characters). Errors are classified the same way (httpx's exceptions,
        "not sent" only before the connection was handed over), and
        ``on_write`` is awaited as the ``binance_transfers.on_write``
        extension is. The body is not decoded (``Content-Encoding``).
        """
        session = self._session or self._open()
        attempt = _Attempt(on_write)
        token = _ATTEMPT.set(attempt)
        try:
            response = await session.request(
                method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=timeouts,
                server_hostname=server_hostname,
            )
            try:
                # Read to the end, the connection goes back to the pool by itself.
                content = await response.read()
            except BaseException:
                response.close()  # half read: the connection cannot be reused
                raise
        except BaseException as exc:
            if exc is attempt.hook_error:
                raise  # the hook's own exception, unchanged: nothing was written
            # The headers may have arrived (the body failed): then it was written.
            translated = translate_aiohttp_error(exc, written=attempt.written)
            if translated is exc:
                raise
            raise translated from exc
        finally:
            _ATTEMPT.reset(token)
        return response, content

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _refuse_header(raw: list[tuple[bytes, bytes]]) -> None:
    """Raise for the first header with a control character. The value is not
    quoted: it may be the API key."""
    for name, value in raw:
        if _FORBIDDEN_IN_HEADER(name):
            raise RefusedBeforeWriting("a control character in a header name")
        if _FORBIDDEN_IN_HEADER(value):
            raise RefusedBeforeWriting(
                f"a control character in the {name.decode('latin-1')!r} header"
            )


def raw_aiohttp(transport: httpx.AsyncBaseTransport | None) -> WriteAwareAiohttpTransport | None:
    """The aiohttp transport under ``transport`` if that is the package's own
    default (:func:`default_http_client`'s) and aiohttp serves the running loop.

    Requests to it may skip httpx's request and response objects
    (:meth:`WriteAwareAiohttpTransport.exchange`). Any other transport, one a
    user brought included, keeps getting them. Call it inside the loop.
    """
    if isinstance(transport, _LoopTransport):
        inner = transport.choose()
        if isinstance(inner, WriteAwareAiohttpTransport):
            return inner
    return None


def writable(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether aiohttp writes these headers as they are (no control character)."""
    return not _FORBIDDEN_IN_HEADER(b"\t".join([b"\t".join(pair) for pair in headers]))


def send_profile(http: httpx.AsyncClient) -> tuple[bool, ...]:
    """What ``http.send`` adds to a request prepared in full: request hooks, response
    hooks, auth, redirects, cookies, default params (all False: nothing).

    A few attribute reads: a user may give the client any of them at any time,
    so the transport asks per call whether its per-endpoint choices still hold.
    They are read behind httpx's properties (plain getters of these
    attributes; four Python calls a transfer less, issue 9), or through the
    properties if httpx keeps them elsewhere.
    """
    try:
        hooks, auth, cookies, params = http._event_hooks, http._auth, http._cookies, http._params
    except AttributeError:  # pragma: no cover - an httpx that moved them
        hooks, auth, cookies, params = http.event_hooks, http.auth, http.cookies, http.params
    return (
        bool(hooks["request"]),
        bool(hooks["response"]),
        auth is not None,
        http.follow_redirects,
        _has_cookies(cookies.jar),
        bool(params),
    )


def _has_cookies(jar: Any) -> bool:
    """Whether ``jar`` may hold a cookie (True errs on the safe side: httpx's ``send``).

    The standard library's ``CookieJar`` keeps them in ``_cookies`` (domain ->
    path -> name), empty when it holds none: reading it costs a tenth of
    iterating the jar, which sorts its domains and paths in Python, on every
    call. A jar cleared for one domain may keep empty dicts: read as "may hold
    one" (the slower path, which does what httpx does with cookies).
    """
    store = getattr(jar, "_cookies", None)
    if type(store) is dict:
        return bool(store)
    return next(iter(jar), None) is not None  # another jar: ask it


def direct_transport(http: httpx.AsyncClient, url: str) -> httpx.AsyncBaseTransport | None:
    """The transport ``http`` sends ``url``'s requests through, when ``http.send`` adds nothing.

    ``AsyncClient.send`` runs auth flows, event hooks, redirects and the cookie
    jar; for a signed Binance request they do nothing but cost about a third
    of the CPU of a call (the cookie jar alone builds a ``urllib`` request per
    answer). When ``http`` has no auth, no event hooks, no cookies and does
    not follow redirects, a request prepared in full (headers, ``timeout``
    extension) can go straight to the transport: the one httpx would pick for
    ``url``, proxies and mounts included. None otherwise, or when httpx's
    internals have moved (the mount lookup is private).
    """
    if any(send_profile(http)):
        return None
    try:
        return http._transport_for_url(httpx.URL(url))
    except Exception:  # a private httpx API: never let it break a client
        return None
