"""Sending one request to Binance: permit, sign, send, interpret.

Money safety rules, enforced here and only here:

* a request is resent automatically only when Binance provably did nothing:
  it was never written (the connection failed first, or the governor
  withdrew its permit at the last moment), Binance answered -1021
  (timestamp), a real 429 with Binance's JSON body, or a 418 ban (after the
  governor's wait);
* once the first byte of a *mutating* request may have been written, any
  failure whatsoever (a timeout, a dropped connection, any 5xx whatever its
  body says, -1006/-1007, an unreadable answer, a bug, a cancellation) makes
  its outcome unknown: :class:`OutcomeUnknownError`, never sent again;
* a mutating request that may have been written runs on, shielded from its
  caller's cancellation, until its answer comes (bounded by the read
  timeout), so the outcome is always learned and handed to ``on_outcome``;
* read-only requests are idempotent: they are retried with backoff within
  ``max_wait`` and never raise :class:`OutcomeUnknownError`.

"Written" is known exactly on httpcore (httpx's default transport) through
its ``trace`` extension, and on any transport that awaits the request
extension ``binance_transfers.on_write`` just before writing; for any other
transport a request counts as written as soon as it is handed over. The
same moment re-bases the governor's permit ("stamp at the write"), so a
request that waited behind others on a busy event loop is charged to the
windows it can really land in.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import math
import re
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal, NoReturn
from urllib.parse import quote, quote_plus

import anyio
import attrs
import httpx

from ._background import Job
from ._clock import ServerClock
from ._endpoints import Endpoint, Host
from ._exceptions import (
    AuthenticationError,
    BinanceAPIError,
    BinanceTransfersError,
    ClientClosedError,
    ConfigurationError,
    ConnectionFailedError,
    InsufficientBalanceError,
    InvalidParameterError,
    IPBannedError,
    MalformedResponseError,
    NotPortfolioMarginError,
    OutcomeUnknownError,
    PendingTransactionError,
    ServiceUnavailableError,
    ThrottledError,
    TimestampError,
    TooManyRequestsError,
    TransferNotAllowedError,
)
from ._governor import Governor, Permit
from ._governor._geometry import RETRY_FLOOR
from ._http import (
    RefusedBeforeWriting,
    WriteAwareAiohttpTransport,
    direct_transport,
    prepare,
    raw_aiohttp,
    send_profile,
    writable,
)
from ._outcome import ExchangeOutcome
from ._signing import HmacSigner, Signer

__all__ = ["ON_WRITE", "ExchangeOutcome", "Transport"]

log = logging.getLogger("binance_transfers.transport")

#: Request extension: ``async () -> None``, awaited by a transport once the
#: connection is ready and just before the request's first byte is written.
#: If it raises, the transport must propagate the exception, having written nothing.
ON_WRITE = "binance_transfers.on_write"

#: Binance's longest ban: no ``Retry-After`` is believed beyond it.
MAX_RETRY_AFTER = 3 * 24 * 3600.0

_Sent = Literal["not sent", "maybe sent"]

# Every httpx exception, by whether the request may have reached Binance.
# tests/test_transport.py checks that no httpx exception class is missing.
# On a transport that reports the write (httpcore), "never written" overrides this.
HTTPX_ERRORS: Mapping[type[Exception], _Sent] = {
    httpx.ConnectError: "not sent",
    httpx.ConnectTimeout: "not sent",
    httpx.PoolTimeout: "not sent",
    httpx.ProxyError: "not sent",
    httpx.UnsupportedProtocol: "not sent",
    # httpcore's HTTP/2 raises it for any h2 error, reading the answer included.
    httpx.LocalProtocolError: "maybe sent",
    # ... but our aiohttp transport raises this one before connecting.
    RefusedBeforeWriting: "not sent",
    httpx.InvalidURL: "not sent",
    httpx.ReadTimeout: "maybe sent",
    httpx.WriteTimeout: "maybe sent",
    httpx.ReadError: "maybe sent",
    httpx.WriteError: "maybe sent",
    httpx.CloseError: "maybe sent",
    httpx.RemoteProtocolError: "maybe sent",
    httpx.DecodingError: "maybe sent",
    httpx.TooManyRedirects: "maybe sent",
    httpx.HTTPStatusError: "maybe sent",
    # Stream misuse happens after an answer started: the request went out.
    httpx.StreamConsumed: "maybe sent",
    httpx.StreamClosed: "maybe sent",
    httpx.ResponseNotRead: "maybe sent",
    httpx.RequestNotRead: "maybe sent",
    httpx.CookieConflict: "not sent",
}

_ERROR_CLASSES: Mapping[int, type[BinanceAPIError]] = {
    -1002: AuthenticationError,
    -1022: AuthenticationError,
    -2014: AuthenticationError,
    -2015: AuthenticationError,
    -1021: TimestampError,
    -1100: InvalidParameterError,
    -1101: InvalidParameterError,
    -1102: InvalidParameterError,
    -1104: InvalidParameterError,
    -1105: InvalidParameterError,
    -1106: InvalidParameterError,
    -1111: InvalidParameterError,
    -1130: InvalidParameterError,
    -1131: InvalidParameterError,
    -3041: InsufficientBalanceError,
    -5002: InsufficientBalanceError,
    -5013: InsufficientBalanceError,
    -9000: InsufficientBalanceError,
    -3005: TransferNotAllowedError,
    -3020: TransferNotAllowedError,
    -3023: TransferNotAllowedError,
    -3029: TransferNotAllowedError,
    -5010: TransferNotAllowedError,
    -5011: TransferNotAllowedError,
    -21002: TransferNotAllowedError,
    -3007: PendingTransactionError,
    -5012: PendingTransactionError,
    -21001: NotPortfolioMarginError,
}
# Binance: "execution status unknown". -1000 is "an unknown error occurred
# while processing the request": for money, that is unknown too.
_UNKNOWN_CODES = frozenset({-1000, -1006, -1007})
_BANNED_UNTIL = re.compile(r"banned until (\d{12,14})")
# A loop argument not given: ask asyncio (whose answer under trio is None).
_ASK: Any = object()


@attrs.frozen(eq=False)  # never compared: attrs' __eq__/__hash__ only cost the import
class _Template:
    url: str
    parsed: httpx.URL
    query: bool
    headers: dict[str, str]
    raw: list[tuple[bytes, bytes]]
    built: httpx.Headers
    """``raw`` as httpx's headers, normalised once (a request copies the list)."""
    sized: dict[int, httpx.Headers]
    """``raw`` with each Content-Length seen so far (a few dozen at most)."""
    timeout: dict[str, float | None]
    fallback: bool
    direct: httpx.AsyncBaseTransport | None
    """Where requests go when ``AsyncClient.send`` would add nothing (see _http)."""
    aiohttp: WriteAwareAiohttpTransport | None
    """The package's own aiohttp transport, which takes requests without httpx's objects."""
    target: Any
    """The URL as aiohttp takes it (``yarl.URL``, already encoded), when ``aiohttp`` is set."""
    make_url: Callable[..., Any] | None
    pairs: list[tuple[str, str]]
    """The headers as aiohttp takes them."""
    aio_timeout: Any
    profile: tuple[bool, ...]
    """What ``AsyncClient.send`` added when it was worked out (``send_profile``)."""

    def __repr__(self) -> str:  # it holds the API key
        return f"<_Template {self.url}>"


class _Answer:
    """An HTTP answer, read in full: httpx's, or aiohttp's without httpx's objects."""

    __slots__ = ("content", "headers", "reason_phrase", "status_code")

    def __init__(
        self, status_code: int, headers: Mapping[str, str], content: bytes, reason_phrase: str
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.reason_phrase = reason_phrase


class _Ticket:
    """One pass through an endpoint's gate (see ``Transport._exchange``); left once."""

    __slots__ = ("_held", "_semaphore")

    def __init__(self, semaphore: Any) -> None:
        self._semaphore = semaphore
        self._held = False

    async def enter(self, max_wait: float | None) -> bool:
        """Pass the gate within ``max_wait``; False when the time ran out first."""
        semaphore = self._semaphore
        if max_wait is None or (type(semaphore) is _FAST and not semaphore.locked()):
            # asyncio's semaphore, free, is taken without suspending: no deadline
            # can expire first, and none needs a cancel scope (anyio's costs more
            # than the rest of the gate).
            await semaphore.acquire()
        else:
            with anyio.move_on_after(max_wait):
                await semaphore.acquire()
                self._held = True
            if not self._held:
                return False
        self._held = True
        return True

    def leave(self) -> None:
        if self._held:
            self._held = False
            semaphore = self._semaphore
            if type(semaphore) is _FAST and not semaphore._waiters:
                semaphore._value += 1  # asyncio's release() when nobody waits
            else:
                semaphore.release()


class _Flight:
    """A mutating request run in a task of its own: its current attempt, once permitted."""

    __slots__ = ("attempt",)

    def __init__(self) -> None:
        self.attempt: _Attempt | None = None


class _NoRoom(Exception):
    """The governor withdrew the permit at the moment of writing: nothing was written."""


class _Doubted(Exception):
    """The clock a signed request would be stamped with is in doubt: nothing was written."""


class _ReadFailed(Exception):
    """A read-only request failed after it may have been written: safe to send again."""

    def __init__(self, error: BinanceTransfersError) -> None:
        super().__init__(str(error))
        self.error = error


class _Attempt:
    """One attempt's state, shared with the write hook."""

    __slots__ = (
        "detachable",
        "detached",
        "endpoint",
        "gate",
        "handed",
        "params",
        "permit",
        "recv_window",
        "refused_early",
        "reports",
        "scope",
        "sent",
        "timestamp",
        "transport",
        "written",
    )

    def __init__(
        self, endpoint: Endpoint, permit: Permit, reports: bool, gate: _Ticket, transport: Transport
    ) -> None:
        self.endpoint = endpoint
        self.gate = gate
        self.permit: Permit | None = permit
        # Whether the transport says when it writes; if not, a request counts as
        # written once handed over.
        self.reports = reports
        self.written = False
        self.refused_early = False  # refused by h11 before writing a byte
        # (B4-7): through httpx's send() (auth, event hooks), whether it
        # got as far as its transport (our last request hook); None: sent directly.
        self.handed: bool | None = None
        self.sent = 0.0
        self.params: dict[str, str] = {}
        self.timestamp: int | None = None
        self.recv_window: int | None = None
        self.detached = False
        # Runs in a task of its own, which the caller's cancellation cannot reach.
        self.detachable = False
        # Shields the send once it is written (set where the transport reports writes).
        self.scope: anyio.CancelScope | None = None
        self.transport = transport

    async def on_write(self) -> None:
        """The write hook (``ON_WRITE``): the request is about to be written.

        A bound method, not a closure made per attempt.
        """
        self.transport._writing(self)

    def never_left(self, exc: BaseException) -> bool:
        """Whether failing with ``exc`` proves that no byte of the request was written.

        A transport that reports its writes proves it by not reporting one only
        for a failure that cannot come after a write (a connection error, our
        own cancellation, a header h11 refused). A mocked transport (respx
        patches httpcore's) reports nothing: a read timeout from it is no proof.
        """
        if self.handed is False:
            return True  # (B4-7): refused by the HTTP client before its transport
        if self.written and not self.reports:
            # Handed over to a transport that says nothing of its writes: from
            # then on anything it raises may come after Binance got the request,
            # even a "connect" error (httpx-aiohttp calls a connection dropped
            # after the write ConnectTimeout).
            return False
        if _kind(exc) == "not sent":
            return True
        if self.written:
            return False
        return self.refused_early or not isinstance(exc, Exception)


#: The attempt ``http.send`` is sending in this context (B4-7, B5-1). Found
#: by the context, not by the request: an auth flow may send a copy of the request.
_HANDING: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar(
    "binance_transfers_handing", default=None
)


async def _handed_over(request: httpx.Request) -> None:
    """The last request hook: httpx hands the request to its transport next."""
    attempt = _HANDING.get()
    if attempt is not None:
        attempt.handed = True


def _hand_over_hook_last(http: httpx.AsyncClient, attempt: _Attempt) -> contextvars.Token[Any]:
    """Learn when ``http.send`` hands this attempt's request to its transport (B4-7).

    Auth and the client's request hooks run before that: an exception from
    them proves nothing was sent. Our hook goes last (again, if the user's
    hooks changed since). Reset the returned token once ``send`` returns.
    """
    hooks = http.event_hooks["request"]
    if not hooks or hooks[-1] is not _handed_over:
        if _handed_over in hooks:
            hooks.remove(_handed_over)
        hooks.append(_handed_over)
    attempt.handed = False
    return _HANDING.set(attempt)


class Transport:
    """Signs and sends requests for one API key, through a governor."""

    def __init__(
        self,
        *,
        api_key: str,
        signer: Signer,
        governor: Governor,
        account: str,
        base_urls: Mapping[Host, str],
        http: httpx.AsyncClient,
        time_endpoint: Endpoint,
        recv_window: int,
        max_in_flight: int,
        wait_on_ban: bool,
        connect_retries: int = 2,
        rate_limit_retries: int = 5,
        read_retries: int = 3,
        write_ahead: int = 2,
        owns_http: bool = False,
        retry_on_429: bool = True,
    ) -> None:
        self._key_header = {"X-MBX-APIKEY": api_key}
        self._key_raw = [(b"X-MBX-APIKEY", api_key.encode())]
        self._signer = signer
        self._hex_signer = type(signer) is HmacSigner  # its signatures need no quoting
        self.governor = governor
        self.account = account
        self._base_urls = {host: url.rstrip("/") for host, url in base_urls.items()}
        self._http = http
        # A client's own http client is never handed out: nothing can give it
        # hooks, auth or cookies after its templates were worked out (only a
        # user's may change between two calls: B5-4).
        self._watch_http = not owns_http
        self._time_endpoint = time_endpoint
        self.recv_window = recv_window
        self._max_in_flight = max_in_flight
        self._slots: Any = None  # a semaphore: asyncio's, or anyio's (see _semaphore)
        self.write_ahead = write_ahead
        self._gates: dict[Endpoint, Any] = {}  # endpoint -> semaphore of its write-ahead
        # endpoint -> (its gate, whether its transport reports writes), see _route
        self._routes: dict[Endpoint, tuple[Any, bool]] = {}
        self._syncing: Job[None] | None = None  # the clock sync under way (or the last one)
        # Reads to a cold pool whose callers gave up on them once written (``_detachable``).
        self._reads: set[asyncio.Task[None]] = set()
        self._sync_permit = 0.0  # monotonic: when its request was expected to get a permit
        self.wait_on_ban = wait_on_ban
        self.connect_retries = connect_retries
        self.rate_limit_retries = rate_limit_retries
        self.retry_on_429 = retry_on_429  # the clock sync's: the client's calls pass their own
        self.read_retries = read_retries
        self.on_outcome: Callable[[ExchangeOutcome], Awaitable[None]] | None = None
        """Awaited, shielded, after every attempt of a mutating request that may have left."""
        self.closed = False
        self._loop: object = None  # the event loop (or trio run) this transport belongs to
        self._reports_write: dict[str, bool] = {}  # base URL -> its transport reports writes
        self._templates: dict[Endpoint, _Template] = {}
        self._now: Callable[[], float] | None = None  # see _reader

    async def call(
        self,
        endpoint: Endpoint,
        params: Sequence[tuple[str, str]],
        *,
        max_wait: float | None,
        recv_window: int | None = None,
        retry_on_429: bool = True,
        parse: Callable[[Any], Any] | None = None,
        loop: Any = _ASK,
    ) -> Any:
        """Send one request and return Binance's answer, through ``parse`` if given.

        ``max_wait`` bounds the whole call's waiting (permits, the clock sync,
        resends); the request itself is bounded by the HTTP timeouts. ``loop``:
        the running asyncio loop (None under trio), when the caller has it in
        hand from this task (on CPython 3.11 each ``_get_running_loop()`` is a
        ``getpid()`` system call).
        """
        if self.closed:
            raise ClientClosedError(f"{endpoint.name}: the client is closed; nothing was sent")
        if loop is _ASK:
            loop = asyncio._get_running_loop()
        if loop is None or loop is not self._loop:
            self._check_loop()  # the first call, trio's, or one from another loop
        now = self._now or self._reader()
        deadline = None if max_wait is None else now() + max_wait
        clock = self.governor.server_clock
        if type(clock) is ServerClock:  # its needs_sync(), on the reader in hand
            synced = clock.synced_at
            stale = synced is None or clock.doubted or now() - synced >= clock.resync_interval
        else:
            stale = clock.needs_sync()
        if stale and endpoint.security.signed:
            await self.sync_time(deadline=deadline)
        resynced = False
        rate_limited = connect_failed = read_failed = 0
        while True:
            left = None if deadline is None else max(deadline - now(), 0.0)
            try:
                data, _, _ = await self._exchange(endpoint, params, left, recv_window, parse, loop)
                return data
            except TimestampError:
                # -1021: Binance executed nothing. Resync and send once more.
                if resynced:
                    raise
                resynced = True
                await self.sync_time(force=True, deadline=deadline)
            except TooManyRequestsError:
                # The governor has stopped the pools until Retry-After; the next
                # acquire waits (or raises ThrottledError past max_wait).
                if not retry_on_429 or rate_limited >= self.rate_limit_retries:
                    raise
                rate_limited += 1
            except IPBannedError:
                # Binance executed nothing; with wait_on_ban the next acquire
                # sleeps until the ban is over (or raises past max_wait). Its
                # end may have shown Binance's clock stepped (``doubt``): the
                # clock is synced first, once the ban is over (``_exchange_in``).
                if not self.wait_on_ban:
                    raise
            except ConnectionFailedError:
                if connect_failed >= self.connect_retries:
                    raise
                connect_failed += 1
                await self._backoff(connect_failed, deadline)
            except _ReadFailed as failed:
                if read_failed >= self.read_retries:
                    raise failed.error from failed.__cause__
                read_failed += 1
                await self._backoff(read_failed, deadline, failed.error)

    async def _backoff(
        self, attempt: int, deadline: float | None, error: BaseException | None = None
    ) -> None:
        delay = min(0.05 * 4**attempt, 5.0)
        if deadline is not None and self.governor.server_clock.clock.monotonic() + delay > deadline:
            if error is not None:
                raise error
            raise ConnectionFailedError("could not reach Binance within max_wait")
        await anyio.sleep(delay)

    async def sync_time(self, *, force: bool = False, deadline: float | None = None) -> None:
        """Resync with Binance's clock when stale (or ``force``), by monotonic ``deadline``.

        The sync runs in a task the transport owns (:class:`Job`), shared by
        every caller that needs it meanwhile (a forced one after -1021 too:
        it reads the clock after the rejection was sent). A caller whose
        ``deadline`` comes first, or who is cancelled, leaves it running, so
        the next call finds the clock synced: a ``max_wait`` shorter than its
        round trip used to abandon it each time, and no signed call ever went
        out. Its failure reaches every waiter. ``aclose()`` stops it.
        """
        clock = self.governor.server_clock
        if not force and not clock.needs_sync():
            return
        job = self._syncing
        if job is None or job.done:
            if self.closed:  # a task started now would outlive the client
                raise ClientClosedError(
                    f"{self._time_endpoint.name}: the client is closed; nothing was sent"
                )
            # When its request may get its permit (the /api pool may be spent
            # for this window): what a refused caller is told, with a round trip.
            self._sync_permit = clock.to_monotonic(
                self.governor.estimate(self._time_endpoint, account=self.account)
            )
            job = self._syncing = Job(
                self._sync,
                started=clock.clock.monotonic(),
                stopped=ClientClosedError(
                    f"{self._time_endpoint.name}: the client was closed during the clock "
                    "sync; nothing was sent"
                ),
                name="binance_transfers clock sync",
            )
        banned_past = False  # the ban outlasts max_wait: refused at once, as a permit is
        if not job.done:
            timeout = None if deadline is None else deadline - clock.clock.monotonic()
            banned = self.governor.banned_until
            if (
                deadline is not None
                and banned is not None
                and self.wait_on_ban
                and clock.to_monotonic(banned) > deadline
            ):
                timeout, banned_past = 0.0, True
            with anyio.move_on_after(timeout):
                await job.wait()
        if not job.done:
            # Nothing was sent but a read, which goes on: the caller is told
            # when it is expected to be done, never "at once" (a caller obeying
            # that would spin, refused again in the same instant).
            now = clock.clock.monotonic()
            end = max(self._sync_end(job, now), now + RETRY_FLOOR)
            why = ": the IP is banned past max_wait" if banned_past else " within max_wait"
            error = ThrottledError(
                f"Binance's clock could not be synced{why}; nothing was sent",
                retry_at=clock.to_server(end),
                retry_after=end - now,
            )
            self.governor._refuse(self._time_endpoint, error)  # its hooks see every refusal
            raise error
        job.result()

    def _sync_end(self, job: Job[None], now: float) -> float:
        """When the sync under way is expected to be done (monotonic).

        One round trip after its start, or after the permit its request
        waits for (as the governor estimated it then); a round trip is the
        clock read's as the governor expects it (``_typical_trip``: before
        any, the shortest it measured; the first sync's refusal said the
        assumed bound, 0.5 s, where the read took 0.02 s). Past that, as long
        again as it has taken so far; not before a known ban it must wait out.
        """
        clock = self.governor.server_clock
        trip = self.governor._typical_trip(self._time_endpoint)
        end = max(job.started, self._sync_permit) + trip
        if end <= now:
            end = now + max(now - job.started, 0.001)
        banned = self.governor.banned_until
        if banned is not None and self.wait_on_ban:
            end = max(end, clock.to_monotonic(banned) + trip)
        return end

    async def _sync(self) -> None:
        """Read Binance's clock (the sync job's work: see :meth:`sync_time`)."""
        clock = self.governor.server_clock
        endpoint = self._time_endpoint
        failures = rate_limited = 0
        while True:
            try:
                data, sent, received = await self._exchange(endpoint, (), None, None, None)
                break
            except TooManyRequestsError:
                # Another process spent the /api weight: nothing was done (a read).
                # The governor has stopped the pool until Retry-After, so the next
                # acquire waits it out; bounded as request() bounds its 429s.
                if not self.retry_on_429 or rate_limited >= self.rate_limit_retries:
                    raise
                rate_limited += 1
            except IPBannedError:
                if not self.wait_on_ban:
                    raise
                continue  # the next acquire waits out the ban
            except (ConnectionFailedError, _ReadFailed) as exc:
                failures += 1
                if failures > self.connect_retries:
                    raise exc.error if isinstance(exc, _ReadFailed) else exc from None
                await anyio.sleep(0.05 * 4**failures)
        try:
            server_ms = int(data["serverTime"])
            if not 0 < server_ms < 10**14:  # epoch ms: before the year 5138
                raise ValueError(server_ms)
        except (KeyError, TypeError, ValueError, OverflowError):
            raise MalformedResponseError(
                "no serverTime", status=200, endpoint=endpoint.name, body=repr(data)[:200]
            ) from None
        clock.update(sent=sent, received=received, server_ms=server_ms)
        log.debug("synced with Binance's clock: %r", clock)

    async def stop_tasks(self) -> None:
        """Closing: stop the tasks of the transport's own (none outlives the client).

        A clock sync under way: its waiters get ClientClosedError. Reads to a
        cold pool that their callers gave up on (``_detachable``): their
        answers are lost.
        """
        job = self._syncing
        try:
            if job is not None:
                await job.stop()
        finally:
            # Those of another loop (closed, or not running: a synchronous
            # wrapper's loop per call) are dropped, their loop left untouched:
            # cancelling one there raised RuntimeError, and waiting for it never
            # returned (see ``Job.stop``).
            loop = asyncio._get_running_loop()
            reads = [task for task in self._reads if task.get_loop() is loop]
            self._reads.clear()
            for task in reads:
                task.cancel()
            if reads:
                with anyio.CancelScope(shield=True):
                    await asyncio.wait(reads)

    def _check_loop(self) -> None:
        """Refuse, before anything is sent, a call from another event loop or thread."""
        loop: object = asyncio._get_running_loop()
        if loop is None:
            trio = sys.modules.get("trio")
            loop = trio.lowlevel.current_trio_token() if trio is not None else None
            if loop is None:
                raise ConfigurationError("binance_transfers runs inside an event loop")
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise ConfigurationError(
                "this client belongs to another event loop (or thread); create one client "
                f"per event loop (current thread: {threading.current_thread().name})"
            )

    def _reader(self) -> Callable[[], float]:
        """The governor's monotonic clock as a bare function, looked up once.

        ``LoopClock.reader()`` (``time.monotonic`` itself on a stock asyncio
        loop), else the clock's ``monotonic`` method: a call reads the clock
        about ten times, each a Python method call through ``LoopClock``
        otherwise. Called inside the loop, whose clock it binds to (a
        transport belongs to one loop: ``_check_loop``).
        """
        now = self._now
        if now is None:
            clock = self.governor.server_clock.clock
            reader = getattr(clock, "reader", None)
            now = self._now = reader() if reader is not None else clock.monotonic
        return now

    def prepare(self) -> None:
        """Import what the running event loop's requests need (see ``_http.prepare``):
        before a first call, so that no call spends its ``max_wait`` on imports."""
        prepare(self._http)

    def _reports_writes(self, url: str) -> bool:
        known = self._reports_write.get(url)
        if known is None:
            try:
                inner = self._http._transport_for_url(httpx.URL(url))
            except Exception:  # a private httpx API: never let it break a call
                inner = None
            known = isinstance(inner, httpx.AsyncHTTPTransport) or bool(
                getattr(inner, "reports_writes", False)
            )
            self._reports_write[url] = known
        return known

    def _exchange(
        self,
        endpoint: Endpoint,
        params: Sequence[tuple[str, str]],
        max_wait: float | None,
        recv_window: int | None,
        parse: Callable[[Any], Any] | None,
        loop: Any = _ASK,
    ) -> Coroutine[Any, Any, tuple[Any, float, float]]:
        """The coroutine that sends it (not itself one: a frame less per call)."""
        if endpoint.mutating and loop is _ASK:
            loop = asyncio._get_running_loop()
        if endpoint.mutating and loop is not None:
            # The task is started before the permit, not after it: a permit
            # then reaches its write without waiting for a task to be
            # scheduled (one turn of a busy event loop, behind every callback
            # queued meanwhile), and the windows it was charged to are the ones
            # it lands in.
            flight = _Flight()
            work = self._exchange_in(endpoint, params, max_wait, recv_window, parse, flight)
            return self._detachable(endpoint, flight, work, loop)
        if not endpoint.mutating and self.governor._cold(endpoint, self.account):
            # A read to a cold pool (a new governor's first requests): run in a task
            # of its own too, so that its answer is read after its caller gives up
            # on it. Cut off after the write, it was a lost answer, which holds the
            # pool until the next window (``Pool.lost``): a ``move_on_after(1)``
            # around a slow first read left 20 of 6000 for that window.
            if loop is _ASK:
                loop = asyncio._get_running_loop()
            if loop is not None:
                flight = _Flight()
                work = self._exchange_in(endpoint, params, max_wait, recv_window, parse, flight)
                return self._detachable(endpoint, flight, work, loop)
        return self._exchange_in(endpoint, params, max_wait, recv_window, parse, None)

    async def _exchange_in(
        self,
        endpoint: Endpoint,
        params: Sequence[tuple[str, str]],
        max_wait: float | None,
        recv_window: int | None,
        parse: Callable[[Any], Any] | None,
        flight: _Flight | None,
    ) -> tuple[Any, float, float]:
        governor = self.governor
        if self._slots is None:
            self._slots = _semaphore(self._max_in_flight)
        route = self._routes.get(endpoint)
        if route is None:
            route = self._route(endpoint)
        semaphore, reports = route
        gate = _Ticket(semaphore)
        # One deadline for the gate, the permit and every retake (each
        # wait got the whole max_wait, and callers returned up to 2x+ after it).
        now = self._now or self._reader()
        deadline = None if max_wait is None else now() + max_wait
        if type(semaphore) is _FAST and semaphore._value > 0 and not semaphore._waiters:
            # _Ticket.enter's fast path, inlined: free, with nobody waiting,
            # asyncio's semaphore is taken as its acquire() would (see _FAST).
            semaphore._value -= 1
            gate._held = True
        elif not await gate.enter(max_wait):
            raise self._throttled(endpoint, max_wait)
        slots = self._slots
        signed = endpoint.security.signed
        try:
            while True:
                left = None if deadline is None else max(deadline - now(), 0.0)
                permit = await governor.acquire(
                    endpoint, account=self.account, max_wait=left, wait_on_ban=self.wait_on_ban
                )
                attempt = _Attempt(endpoint, permit, reports, gate, self)
                try:
                    # A connection slot is taken after the permit, so waiting for
                    # one pool never holds up another. (Not `async with`: two
                    # coroutine frames less per call; free, taken inline, _FAST.)
                    if type(slots) is _FAST and slots._value > 0 and not slots._waiters:
                        slots._value -= 1
                    else:
                        await slots.acquire()
                    try:
                        if signed and getattr(governor.server_clock, "doubted", False):
                            raise _Doubted  # (after the slot: the wait for it may outlast a ban)
                        if not reports:
                            if self.closed:  # see _writing (refunded below)
                                await self._refuse_closed(endpoint)
                            # No write hook: re-base on the moment it is handed over.
                            attempt.permit = governor.renew(permit)
                            if attempt.permit is None:
                                continue
                        if flight is not None:
                            attempt.detachable = True
                            flight.attempt = attempt
                        return await self._attempt(attempt, params, recv_window, parse)
                    finally:
                        if type(slots) is _FAST and not slots._waiters:
                            slots._value += 1
                        else:
                            slots.release()
                except _NoRoom:
                    if self.closed:  # see _writing
                        await self._refuse_closed(endpoint)
                    continue  # withdrawn before writing; the permit was given back
                except _Doubted:
                    # A 418 showed Binance's clock stepped while this call waited
                    # (``ServerClock.doubt``): signed on the old estimate, it would
                    # meet a -1021. Given back unwritten, it goes after the sync.
                    governor.refund(permit)
                    await self.sync_time(deadline=deadline)
                    continue
                except BaseException:
                    if attempt.permit is not None and not attempt.written:
                        governor.refund(attempt.permit)  # never left: not spent
                    raise
        finally:
            gate.leave()

    async def _refuse_closed(self, endpoint: Endpoint) -> NoReturn:
        """The client was closed before this request was written: nothing was sent.

        Under trio a caller cancelled in the same turn gets its own cancellation.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        raise ClientClosedError(
            f"{endpoint.name}: the client was closed before it was sent; nothing was sent"
        ) from None

    def _route(self, endpoint: Endpoint) -> tuple[Any, bool]:
        """The endpoint's gate, and whether its transport reports writes: worked out once."""
        # Permits are only worth taking when they can be written at once: a
        # permit charges the windows its request may land in *now*, and one
        # held while others are written (a busy loop, a full connection pool)
        # charges windows that pass unused. So each endpoint lets at most
        # `write_ahead` permits run ahead of their writes. The gate is per
        # endpoint: callers queued behind a saturated pool never hold up
        # another pool's.
        semaphore = self._gates.get(endpoint)
        if semaphore is None:
            semaphore = self._gates[endpoint] = _semaphore(self.write_ahead)
        route = self._routes[endpoint] = (
            semaphore,
            self._reports_writes(self._base_urls[endpoint.host]),
        )
        return route

    def _throttled(self, endpoint: Endpoint, max_wait: float | None) -> ThrottledError:
        at = self.governor._retry_epoch(endpoint, self.account)  # "come back then"
        now = self.governor.server_clock.now()
        error = ThrottledError(
            f"{endpoint.name}: no permit within max_wait={_rounded(max_wait)} s",
            retry_at=max(at, now),
            retry_after=max(at - now, 0.0),
        )
        self.governor._refuse(endpoint, error)  # its hooks see every refusal
        return error

    async def _detachable(
        self,
        endpoint: Endpoint,
        flight: _Flight,
        work: Coroutine[Any, Any, tuple[Any, float, float]],
        loop: asyncio.AbstractEventLoop,
    ) -> tuple[Any, float, float]:
        """Run a mutating request (``work``) in its own task, so that cancelling the
        caller (``asyncio.wait_for``, a failing TaskGroup sibling: plain
        ``task.cancel()``, which no anyio shield stops) cannot cut it off once it
        may be on the wire. Before that, cancelling the caller cancels it."""
        # Not asyncio.shield(task): the task hands its result to ``done`` itself,
        # so the caller resumes one turn of the loop sooner (a shield waits for
        # the task's done-callbacks to run, then for its own). Cancelling the
        # caller cancels ``done``, never the task.
        done: asyncio.Future[tuple[Any, float, float]] = loop.create_future()
        task = loop.create_task(_resolve(work, done))
        try:
            return await done
        except asyncio.CancelledError:
            attempt = flight.attempt
            if done.done() and not done.cancelled():
                failed = done.exception() is not None  # (retrieved: nobody else will)
                if endpoint.mutating:  # a read records nothing
                    log.warning(
                        "%s: caller cancelled just as the answer arrived (outcome recorded: %s)",
                        endpoint.name,
                        "unknown" if failed else "done",
                    )
                raise
            if attempt is None or not attempt.written or (not endpoint.mutating and self.closed):
                # Still waiting to write: stop it. Nothing left, the permit goes back.
                # (A read of a client closed meanwhile: stopped too, its answer lost;
                # left running, it was read after ``aclose()``, past ``stop_tasks``.)
                task.cancel()
                with anyio.CancelScope(shield=True):
                    await asyncio.wait([task])
                _retrieve(task)
                raise
            if not endpoint.mutating:
                # A cold pool's read (``_exchange``): the caller leaves now; the
                # answer is read for its usage header, and nothing else.
                self._reads.add(task)
                task.add_done_callback(self._read_done)
                raise
            attempt.detached = True
            log.warning(
                "%s: caller cancelled while the request was on the wire; waiting for "
                "its outcome (parameters: %s)",
                attempt.endpoint.name,
                attempt.params,
            )
            with anyio.CancelScope(shield=True):  # against anyio's repeated cancellation
                while not task.done():
                    try:
                        await asyncio.wait([task])
                    except asyncio.CancelledError:
                        continue  # another plain cancel: keep learning the outcome
            _retrieve(task)  # its outcome went to on_outcome; asyncio need not log it
            raise

    async def _attempt(
        self,
        attempt: _Attempt,
        params: Sequence[tuple[str, str]],
        recv_window: int | None,
        parse: Callable[[Any], Any] | None,
    ) -> tuple[Any, float, float]:
        """Build, send and interpret one attempt; settle its permit exactly once."""
        endpoint = attempt.endpoint
        template = self._templates.get(endpoint)
        if template is None or (self._watch_http and template.profile != send_profile(self._http)):
            # New, or the user's client gained (or lost) hooks, auth, cookies or
            # params since (B5-4): worked out again, so that they run.
            template = self._template(endpoint)
        encoded = self._encode(attempt, params, recv_window)
        request = None
        if template.aiohttp is None:
            request = self._request(attempt, template, encoded)
        now = self._now or self._reader()
        attempt.sent = now()
        # A mutating request sent from the caller's own task (trio; asyncio runs
        # it in a task of its own) is shielded from the moment it may be written.
        scope = None
        if endpoint.mutating and not attempt.detachable:
            scope = attempt.scope = anyio.CancelScope()
        if attempt.reports:
            if request is not None:
                request.extensions["trace"] = self._tracer(attempt, request)
        else:
            # Handed over with no word of when it is written: from now on it may be.
            attempt.written = True
            attempt.gate.leave()
            if scope is not None:
                scope.shield = True
        data: Any = None
        try:
            if scope is None:
                if request is None:  # the default path, one coroutine less
                    response = await self._send_aiohttp(attempt, template, encoded)
                else:
                    response = await self._send(attempt, template, request, encoded)
            else:
                with scope:
                    response = await self._send(attempt, template, request, encoded)
            received = now()
        except _NoRoom:
            raise
        except BaseException as exc:
            exc = self._scrubbed(exc)
            if attempt.never_left(exc):
                if isinstance(exc, Exception):
                    if attempt.permit is not None:
                        self.governor.refund(attempt.permit)
                        attempt.permit = None
                    if attempt.handed is False:  # (B4-7): not retried
                        raise ConfigurationError(
                            f"{endpoint.name}: the http_client refused the request before its "
                            f"transport got it (an event hook or its auth); nothing was sent: "
                            f"{exc!r:.200}"
                        ) from exc
                    raise ConnectionFailedError(
                        f"{endpoint.name}: could not reach Binance: {exc!r}"
                    ) from exc
                raise  # cancelled before writing: _exchange refunds
            self._observe_unanswered(attempt)
            if not endpoint.mutating:
                if not isinstance(exc, Exception):
                    raise
                raise _ReadFailed(
                    ConnectionFailedError(f"{endpoint.name}: no complete answer: {exc!r}")
                ) from exc
            error = self._unknown(attempt, f"no complete answer: {type(exc).__name__}", None)
            if endpoint.mutating:
                log.warning(
                    "%s: outcome unknown after %s; it will not be resent",
                    endpoint.name,
                    repr(exc),
                )
            await self._report(attempt, None, error)
            if isinstance(exc, Exception):
                raise error from exc
            raise  # our own cancellation: the outcome went to on_outcome
        try:
            data = self._interpret(attempt, response, received)
            result = data if parse is None else parse(data)
        except (BinanceTransfersError, _ReadFailed) as refused:
            if endpoint.mutating:
                await self._report(attempt, None, refused)
            raise
        except Exception as exc:
            # The answer arrived but does not fit the model (or a bug surfaced).
            if endpoint.mutating:
                error = self._unknown(attempt, f"unreadable answer: {exc!r:.200}", 200)
                await self._report(attempt, None, error)
                raise error from exc
            raise MalformedResponseError(
                f"unexpected answer: {exc!r:.200}",
                status=response.status_code,
                endpoint=endpoint.name,
                body=repr(data)[:500],
            ) from exc
        if endpoint.mutating:
            await self._report(attempt, data, None)
            if attempt.detached:
                # The caller is cancelled: it gets its cancellation, as it would
                # under asyncio; the result went to on_outcome.
                await anyio.lowlevel.checkpoint_if_cancelled()
        return result, attempt.sent, received

    def _writing(self, attempt: _Attempt) -> None:
        """The request is about to be written: re-base its permit on this moment.

        Raises :class:`_NoRoom` (nothing written, permit given back) when the
        windows it can land in now have no room, or a 429 or a ban came meanwhile,
        or the client was closed (a permit that came through in the turn
        ``aclose()`` ran is not written after it).
        """
        permit = attempt.permit
        if self.closed and not attempt.written:
            attempt.permit = None
            if permit is not None:
                self.governor.refund(permit)
            raise _NoRoom
        if permit is not None and not attempt.written:
            renewed = self.governor.renew(permit)
            attempt.permit = renewed
            if renewed is None:
                raise _NoRoom
        attempt.written = True
        attempt.sent = (self._now or self._reader())()
        attempt.gate.leave()
        if attempt.scope is not None:
            attempt.scope.shield = True  # on the wire: it must run to its answer

    def _tracer(
        self, attempt: _Attempt, request: httpx.Request
    ) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
        """httpcore's ``trace`` extension: learn the moment the request is written."""

        async def trace(event: str, info: dict[str, Any]) -> None:
            sent = info.get("request")
            if sent is not None and sent.method == b"CONNECT":
                return  # a proxy tunnel being opened: not this request's write
            if event.endswith("send_request_headers.started"):
                self._writing(attempt)
            elif event.endswith("send_request_headers.failed"):
                # Imported here, where httpcore is running: importing it costs
                # tens of ms (trio too, when installed), and on asyncio the
                # default transport is aiohttp's.
                import httpcore

                if isinstance(info.get("exception"), httpcore.LocalProtocolError | _NoRoom):
                    # h11 refused the request line or a header before writing a byte.
                    attempt.written = False
                    attempt.refused_early = True
                request.extensions.pop("trace", None)
            elif event.endswith("send_request_headers.complete"):
                request.extensions.pop("trace", None)  # nothing more to learn

        return trace

    def _encode(
        self, attempt: _Attempt, params: Sequence[tuple[str, str]], recv_window: int | None
    ) -> str:
        """The query string or body, percent-encoded, then signed when the endpoint is."""
        endpoint = attempt.endpoint
        # Percent-encode first, then sign exactly those bytes (Binance, 2026-01-15).
        # Nearly always every name and value is plain: joined, then one check of
        # the whole (with exactly one "=" per pair and one "&" between two, no
        # name or value holds either).
        try:
            encoded = "&".join(map("=".join, params))  # C all the way: no f-string per pair
        except TypeError:  # a name or value that is not a str (typed out, but cheap to keep)
            encoded = "&".join([f"{k}={v}" for k, v in params])
        count = len(params)
        if not (
            _plain_query(encoded)
            and encoded.count("=") == count
            and encoded.count("&") == (count - 1 if count else 0)
        ):
            encoded = "&".join([f"{k}={v if _plain(v) else quote_plus(v)}" for k, v in params])
        pairs = dict(params)
        if endpoint.security.signed:
            clock = self.governor.server_clock
            shift = clock._shift if type(clock) is ServerClock else None
            if shift is None:
                timestamp = clock.now_ms()
            else:  # its now_ms(), on the reader in hand (three Python calls less)
                timestamp = int(((self._now or self._reader())() + shift) * 1000)
            attempt.timestamp = timestamp
            window = attempt.recv_window = recv_window or self.recv_window
            # Digits only: nothing to quote.
            pairs["recvWindow"] = window_text = str(window)
            pairs["timestamp"] = timestamp_text = str(timestamp)
            stamp = f"recvWindow={window_text}&timestamp={timestamp_text}"
            encoded = f"{encoded}&{stamp}" if encoded else stamp
            try:
                signature: object = self._signer.sign(encoded.encode())
                if not isinstance(signature, str):  # None, or a coroutine (an async signer)
                    close = getattr(signature, "close", None)
                    if close is not None:
                        close()
                    raise TypeError(f"sign() returned {type(signature).__name__}, not str")
            except Exception as exc:
                # A hardware module busy, a remote signer down: nothing was sent.
                raise ConfigurationError(
                    f"{endpoint.name}: the signer failed ({type(exc).__name__}); nothing was sent"
                ) from self._scrubbed(exc)
            # HMAC's hex needs no quoting; RSA's and Ed25519's base64 may.
            if not self._hex_signer and not _plain(signature):
                signature = quote(signature, safe="")
            encoded = f"{encoded}&signature={signature}"
        attempt.params = pairs
        return encoded

    def _request(self, attempt: _Attempt, template: _Template, encoded: str) -> httpx.Request:
        """httpx's request for ``encoded`` (a transport the package does not own)."""
        endpoint = attempt.endpoint
        extensions = {"timeout": template.timeout, ON_WRITE: attempt.on_write}
        if template.fallback:  # a client with cookies or default params of its own
            return self._http.build_request(
                endpoint.method,
                f"{template.url}?{encoded}" if template.query and encoded else template.url,
                content=None if template.query else encoded.encode(),
                headers=template.headers,
                extensions=extensions,
            )
        # stream=: httpx adds no header of its own (Host, Content-Length): the
        # template has them, so the headers are normalised once, not twice.
        if template.query:
            url = f"{template.url}?{encoded}" if encoded else template.url
            request = httpx.Request(
                endpoint.method, url, headers=template.built, stream=_EMPTY, extensions=extensions
            )
        else:
            body = encoded.encode()
            # httpx copies a Headers' list as it is: no header normalised per call.
            size = len(body)
            headers = template.sized.get(size)
            if headers is None:
                headers = httpx.Headers([*template.raw, (b"Content-Length", b"%d" % size)])
                if len(template.sized) < _SIZES:
                    template.sized[size] = headers
            request = httpx.Request(
                endpoint.method,
                template.parsed,
                headers=headers,
                stream=httpx.ByteStream(body),
                extensions=extensions,
            )
        request.read()  # as content= would: .content readable by any transport
        return request

    async def _send(
        self, attempt: _Attempt, template: _Template, request: httpx.Request | None, encoded: str
    ) -> _Answer:
        """Send, read the answer in full.

        Through the package's own aiohttp transport without httpx's request and
        response objects (``request`` is None); else ``self._http.send(request)``,
        or straight to its transport when ``send`` adds nothing: it runs auth,
        event hooks, redirects and the cookie jar (which builds a urllib request
        per answer), a third of a call's CPU.
        """
        if request is None:
            return await self._send_aiohttp(attempt, template, encoded)
        direct = template.direct
        if direct is None:
            token = _hand_over_hook_last(self._http, attempt)  # (B4-7)
            try:
                response = await self._http.send(request)
            except BaseException:
                if (
                    attempt.handed is False
                    and _handed_over not in self._http.event_hooks["request"]
                ):
                    attempt.handed = None  # our hook was taken out meanwhile: no proof
                raise
            finally:
                _HANDING.reset(token)
        else:
            response = await direct.handle_async_request(request)
            response.request = request  # as send() does; transports need not set it
            try:
                await response.aread()
            finally:
                await response.aclose()
        status = response.status_code
        return _Answer(
            status,
            _lookup(response.headers),
            response.content,
            # Read only for a 5xx's message: httpx works it out per call (an IntEnum lookup).
            "" if 200 <= status < 300 else response.reason_phrase,
        )

    async def _send_aiohttp(self, attempt: _Attempt, template: _Template, encoded: str) -> _Answer:
        aiohttp, make_url = template.aiohttp, template.make_url
        if aiohttp is None or make_url is None:  # pragma: no cover - see _attempt
            raise AssertionError("no aiohttp template")
        if template.query:
            url = make_url(f"{template.url}?{encoded}", encoded=True) if encoded else None
            body = None
        else:
            url, body = None, encoded.encode()
        response, content = await aiohttp.exchange(
            attempt.endpoint.method,
            url or template.target,
            template.pairs,
            body,
            template.aio_timeout,
            attempt.on_write,
        )
        headers = response.headers
        if headers.get("Content-Encoding", "identity") != "identity":
            # httpx decodes it, as on its own path (gzip, deflate, br, zstd).
            decoded = httpx.Response(200, headers=response.raw_headers, stream=_Stream(content))
            content = decoded.read()
        return _Answer(response.status, headers, content, response.reason or "")

    def _template(self, endpoint: Endpoint) -> _Template:
        """What every request to ``endpoint`` shares, worked out once.

        httpx's ``build_request`` merges the client's defaults on every call,
        which costs more than signing; the merge is done here once instead.
        No local variable here ever holds the API key: it is added from an
        attribute, after everything that can fail.
        """
        url = self._base_urls[endpoint.host] + endpoint.path
        parsed = _parse_url(url)
        if parsed is None:
            raise ConfigurationError(f"{endpoint.name}: not a usable URL: {url!r}")
        query = endpoint.method == "GET"
        signed = endpoint.security.signed
        http = self._http
        form = {} if query else _FORM
        raw = httpx.Headers(http._merge_headers(form)).raw
        if not any(name.lower() == b"host" for name, _ in raw):
            raw = [(b"Host", parsed.netloc), *raw]  # first, where httpx puts it
        profile = send_profile(http)
        fallback = bool(http.cookies) or bool(http.params)
        direct = direct_transport(http, url)
        # Our own aiohttp transport (the default client's) takes the request
        # without httpx's objects; a header aiohttp would refuse goes through
        # httpx instead, where the transport refuses it before writing.
        aiohttp = None if fallback else raw_aiohttp(direct)
        if aiohttp is not None and not writable([*raw, *self._key_raw]):
            aiohttp = None
        make_url = target = aio_timeout = None
        if aiohttp is not None:
            import yarl

            make_url = yarl.URL
            target = yarl.URL(url, encoded=True)
            timeout = http.timeout
            aio_timeout = aiohttp.timeout(timeout.connect, timeout.read, timeout.pool)
        template = _Template(
            url=url,
            parsed=parsed,
            query=query,
            headers={**form, **self._key_header} if signed else dict(form),
            raw=[*raw, *self._key_raw] if signed else raw,
            built=httpx.Headers([*raw, *self._key_raw] if signed else raw),
            sized={},
            timeout=http.timeout.as_dict(),
            fallback=fallback,
            direct=direct,
            aiohttp=aiohttp,
            target=target,
            make_url=make_url,
            pairs=[
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in ([*raw, *self._key_raw] if signed else raw)
            ],
            aio_timeout=aio_timeout,
            profile=profile,
        )
        self._templates[endpoint] = template
        return template

    def _observe_unanswered(self, attempt: _Attempt) -> None:
        if attempt.permit is not None:
            self.governor.observe(attempt.permit, sent=attempt.sent, received=None)
            attempt.permit = None

    def _unknown(self, attempt: _Attempt, reason: str, status: int | None) -> OutcomeUnknownError:
        return OutcomeUnknownError(
            reason,
            endpoint=attempt.endpoint.name,
            params=attempt.params,
            timestamp=attempt.timestamp,
            status=status,
            recv_window=attempt.recv_window,
        )

    async def _report(self, attempt: _Attempt, data: Any, error: BaseException | None) -> None:
        """Hand a mutating attempt's outcome to ``on_outcome``, whatever the caller does."""
        if attempt.scope is not None and anyio.current_effective_deadline() == -math.inf:
            attempt.detached = True  # cancelled inline (trio): the caller will not see it
        if attempt.detached:
            log.warning(
                "%s: outcome learned after the caller was cancelled: %s (parameters: %s)",
                attempt.endpoint.name,
                "unknown" if error is not None else f"done {data!r:.200}",
                attempt.params,
            )
        hook = self.on_outcome
        if hook is None:
            return
        outcome = ExchangeOutcome(
            endpoint=attempt.endpoint.name,
            params=attempt.params,
            timestamp=attempt.timestamp,
            recv_window=attempt.recv_window,
            data=data,
            error=error,
            detached=attempt.detached,
        )
        if attempt.detachable:
            # In a task of its own, which no cancel scope encloses and nothing
            # cancels once it may have been written: no shield to put up.
            try:
                await hook(outcome)
            except Exception:
                log.exception("%s: on_outcome hook failed", attempt.endpoint.name)
            return
        with anyio.CancelScope(shield=True):
            try:
                await hook(outcome)
            except Exception:
                log.exception("%s: on_outcome hook failed", attempt.endpoint.name)

    def _scrubbed(self, exc: BaseException) -> BaseException:
        """``exc``, made safe to raise, log and report with locals (Sentry's default).

        Every exception in its chain that quotes the API key (h11 quotes a
        header it refuses) is reduced to its class name. Every one that is not
        ours also loses its traceback: the frames of httpx, httpcore and h11
        hold the request's headers, the key among them, in their locals. Where
        it happened stays readable in a note (file, line, function; no locals).
        Frames are not cleared in place: one may belong to a generator still
        suspended, which clearing would close.
        """
        import traceback  # here: a local edit, and only the failure path needs it

        key = self._key_header["X-MBX-APIKEY"].strip()
        seen: set[int] = set()
        todo: list[BaseException | None] = [exc]
        while todo:
            current = todo.pop()
            if current is None or id(current) in seen:
                continue
            seen.add(id(current))
            if any(key in text for text in (str(current), repr(current.args))):
                current.args = (f"{type(current).__name__} (message withheld: it quoted a secret)",)
            frames = current.__traceback__
            if frames is not None and not isinstance(current, BinanceTransfersError):
                current.__traceback__ = None
                if isinstance(current, Exception):  # not a cancellation: worth reading
                    where = "".join(traceback.format_tb(frames)).rstrip()
                    current.add_note(f"Traceback (frames dropped: they held the API key):\n{where}")
            todo += [current.__cause__, current.__context__]
            todo += list(getattr(current, "exceptions", ()))  # an exception group's members
        return exc

    def _interpret(self, attempt: _Attempt, response: _Answer, received: float) -> Any:
        """The one place an HTTP answer becomes data or one of our exceptions.

        The status class decides first: only a real 429 (or a 418) carrying
        Binance's JSON body, or a 4xx with Binance's error code, proves that
        nothing happened. Any 5xx, whatever its body says, leaves a mutating
        request's outcome unknown.
        """
        endpoint = attempt.endpoint
        status = response.status_code
        retry_after = None
        if not 200 <= status < 300:  # only a refusal's wait is read (httpx's lookup is dear)
            raw_retry_after = response.headers.get("retry-after")
            retry_after = None if raw_retry_after is None else _retry_after(raw_retry_after)
        body = _json(response.content)
        is_dict = isinstance(body, dict)
        code = body.get("code") if is_dict else None
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        msg = body.get("msg") if is_dict else None
        msg = msg if isinstance(msg, str) else ""
        banned_until = None
        if status == 418:
            match = _BANNED_UNTIL.search(msg)
            if match:  # believed no further than Binance's longest ban
                now = self.governor.server_clock.now()
                banned_until = min(int(match.group(1)) / 1000, now + MAX_RETRY_AFTER)
        permit, attempt.permit = attempt.permit, None
        if permit is not None:
            self.governor.observe(
                permit,
                sent=attempt.sent,
                received=received,
                status=status,
                headers=response.headers,
                retry_after=retry_after,
                banned_until=banned_until,
            )
        mutating = endpoint.mutating

        if 200 <= status < 300:
            if body is _NOT_JSON or (is_dict and code is not None and code < 0):
                if mutating:
                    raise self._unknown(attempt, f"HTTP {status} with an unreadable body", status)
                raise MalformedResponseError(
                    "not Binance's JSON",
                    status=status,
                    endpoint=endpoint.name,
                    body=_text(response.content, self._key_header["X-MBX-APIKEY"]),
                )
            return body
        if status >= 500:
            reason = f"HTTP {status} {msg or response.reason_phrase}"
            if mutating:
                raise self._unknown(attempt, reason, status)
            raise _ReadFailed(
                ServiceUnavailableError(reason, status=status, endpoint=endpoint.name)
            )
        clock = self.governor.server_clock
        if status == 418 or (status == 429 and code is not None):
            wait = retry_after if retry_after is not None else 0.0
            if status == 418:
                # Its end on Binance's clock, not before ``Retry-After`` (on
                # none: our estimate of Binance's may be off more than it says).
                until = clock.now() + (retry_after or 0.0)
                if banned_until is not None and banned_until > until:
                    until = banned_until
                ours = self.governor.banned_until  # its end with the governor's margin
                if ours is not None and ours > until:
                    until = ours
                raise IPBannedError(
                    f"{endpoint.name}: HTTP 418 {msg}",
                    retry_at=until,
                    retry_after=until - clock.now(),
                )
            raise TooManyRequestsError(
                f"{endpoint.name}: HTTP 429 {msg or 'Too Many Requests'}",
                retry_at=clock.now() + wait,
                retry_after=wait,
            )
        if code is None:
            # Not Binance's answer (a proxy, a WAF page): nothing proves it stopped there.
            if mutating and status == 429:
                raise self._unknown(attempt, f"HTTP {status} without Binance's body", status)
            raise MalformedResponseError(
                "no Binance error code in the answer",
                status=status,
                endpoint=endpoint.name,
                body=_text(response.content, self._key_header["X-MBX-APIKEY"]),
            )
        if code == -1003:
            wait = retry_after if retry_after is not None else 0.0
            raise TooManyRequestsError(
                f"{endpoint.name}: HTTP {status} {msg}",
                retry_at=clock.now() + wait,
                retry_after=wait,
            )
        if code in _UNKNOWN_CODES:
            if mutating:
                raise self._unknown(attempt, f"Binance error {code}: {msg}", status)
            raise _ReadFailed(
                ServiceUnavailableError(
                    f"Binance error {code}: {msg}", status=status, endpoint=endpoint.name
                )
            )
        error_class = _ERROR_CLASSES.get(code, BinanceAPIError)
        if code == -9000 and "nsupported" in msg:
            # -9000 also means "Unsupported operation" (a transfer Binance does not do).
            error_class = TransferNotAllowedError
        raise error_class(code, msg, status=status, endpoint=endpoint.name)

    def _read_done(self, task: asyncio.Task[None]) -> None:
        self._reads.discard(task)
        _retrieve(task)

    async def aclose(self) -> None:
        self.closed = True
        await self.stop_tasks()
        await self._http.aclose()


def _semaphore(size: int) -> Any:
    """asyncio's own semaphore on asyncio (anyio's limiter yields to the loop on
    every acquire, ten times the cost); anyio's elsewhere (trio)."""
    if asyncio._get_running_loop() is not None:
        return asyncio.Semaphore(size)
    return anyio.Semaphore(size)


def _fast_semaphore() -> type[asyncio.Semaphore] | None:
    """asyncio.Semaphore, when its state is the one the hot path reads inline.

    Each call takes and gives back two semaphores (the endpoint's gate, a
    connection slot): through their methods (``locked()`` with its generator,
    ``acquire()``, ``release()``, ``_wake_up_next()``) that is ~15k CPU
    instructions, 5 % of a transfer (issue 9). Free and with nobody waiting,
    ``acquire()`` only decrements ``_value`` and ``release()`` only increments
    it (CPython 3.11 to 3.14); anything else goes through the methods. On a
    Python whose semaphore keeps other state: None, and the methods always.
    """
    probe = asyncio.Semaphore(1)
    if vars(probe).keys() >= {"_value", "_waiters"} and probe._value == 1 and not probe._waiters:
        return asyncio.Semaphore
    return None


#: See _fast_semaphore.
_FAST = _fast_semaphore()


_FORM = {"Content-Type": "application/x-www-form-urlencoded"}
_SIZES = 64  # Content-Length values whose headers a template keeps


class _HeaderLookup(Mapping[str, str]):
    """httpx's response headers, looked up as ``httpx.Headers`` looks them up, cheaper.

    ``Headers.__getitem__`` first works out the encoding of every header of
    the answer (ASCII, else UTF-8, else Latin-1), for each lookup: about 8k CPU
    instructions, twice a call (the governor reads the usage headers, issue 9).
    Here the lower-cased names httpx keeps are compared directly, and the
    values decoded as ASCII, which is what every encoding httpx picks gives for
    ASCII bytes; a name or value that is not ASCII is looked up by httpx itself.
    """

    __slots__ = ("_headers", "_list")

    def __init__(self, headers: httpx.Headers, items: list[tuple[bytes, bytes, bytes]]) -> None:
        self._headers = headers
        self._list = items

    def __getitem__(self, key: str) -> str:
        try:
            name = key.lower().encode("ascii")
            values = [value.decode("ascii") for _, lower, value in self._list if lower == name]
        except UnicodeError:
            return self._headers[key]
        if values:
            return ", ".join(values)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False  # as any Mapping answers for a key it cannot hold
        try:
            self[key]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)


def _lookup(headers: httpx.Headers) -> Mapping[str, str]:
    """``headers`` as a :class:`_HeaderLookup`, if httpx keeps them as it did when written."""
    items = getattr(headers, "_list", None)
    if type(items) is list and (not items or len(items[0]) == 3):
        return _HeaderLookup(headers, items)
    return headers


# What urlencode leaves as it is.
_plain = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch
_plain_query = re.compile(r"[A-Za-z0-9_.~=&-]*").fullmatch
_NOT_JSON: Any = object()
_EMPTY = httpx.ByteStream(b"")
_Stream = httpx.ByteStream


def _parse_url(url: str) -> httpx.URL | None:
    """``url`` parsed, or None when it is no http(s) URL with a host."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    return parsed if parsed.scheme in ("http", "https") and parsed.host else None


async def _resolve(
    work: Coroutine[Any, Any, tuple[Any, float, float]],
    done: asyncio.Future[tuple[Any, float, float]],
) -> None:
    """Run ``work`` and hand its outcome to ``done`` (unless its caller gave up on it)."""
    try:
        result = await work
    except asyncio.CancelledError:
        if not done.done():
            done.cancel()
        raise
    except BaseException as exc:
        if not done.done():
            done.set_exception(exc)
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt, SystemExit: they stop the loop, as in any task
    else:
        if not done.done():
            done.set_result(result)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a finished task's exception as seen (the caller is gone; it was reported)."""
    if not task.cancelled():
        task.exception()


def _kind(exc: BaseException) -> _Sent | None:
    return next((HTTPX_ERRORS[c] for c in type(exc).__mro__ if c in HTTPX_ERRORS), None)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON Binance sends")


# Exact decimals: an amount never passes through a binary float; NaN and
# Infinity are not numbers Binance sends. Built once (json.loads with options
# builds a decoder per call).
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)


def _json(content: bytes) -> Any:
    try:
        # Binance answers in UTF-8. Any other encoding JSON allows (UTF-16/32,
        # a BOM) fails here, for it holds NUL bytes or a BOM no JSON text
        # starts with, and gets the encoding detected.
        text = content.decode()
        # Binance's answer is one JSON value, no whitespace around it: read at
        # once (decode() first matches whitespace before and after it, by regex).
        value, end = _DECODER.raw_decode(text)
        if end == len(text):
            return value
        return _DECODER.decode(text)  # whitespace after it, or more than one value
    except (ValueError, RecursionError):
        pass
    try:
        return _DECODER.decode(content.decode(json.detect_encoding(content)))
    except (ValueError, RecursionError):  # UnicodeDecodeError included
        return _NOT_JSON


def _text(content: bytes, key: str) -> str:
    text = content[:500].decode("utf-8", "replace")
    key = key.strip()
    return text.replace(key, "<api key>") if key else text


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (Binance sends seconds).

    None when absent or unreadable (NaN, negative, not a number); clamped to
    Binance's longest ban, so no header can freeze a pool for decades.
    """
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if not seconds >= 0:  # NaN and negatives
        return None
    return min(seconds, MAX_RETRY_AFTER)


def _rounded(seconds: float | None) -> float | None:
    """Seconds fit to print (a deadline's remainder reads 0.19999846800010346)."""
    return None if seconds is None else round(seconds, 3)
