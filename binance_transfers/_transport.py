"""Sending one request to Binance: permit, sign, send, interpret.

Money safety rules, enforced here and only here:

* a request is resent automatically only when Binance provably did nothing:
  the connection failed before the request was written, Binance answered
  -1021 (timestamp), or 429 (after the governor's wait);
* anything after which the request may have been executed (a read timeout, a
  dropped connection, a 5xx, -1006/-1007) raises :class:`OutcomeUnknownError`
  and is never sent again by this client.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote, urlencode

import anyio
import httpx

from ._endpoints import Endpoint, Host
from ._exceptions import (
    AuthenticationError,
    BinanceAPIError,
    BinanceTransfersError,
    ConnectionFailedError,
    InsufficientBalanceError,
    InvalidParameterError,
    IPBannedError,
    MalformedResponseError,
    NotPortfolioMarginError,
    OutcomeUnknownError,
    PendingTransactionError,
    ServiceUnavailableError,
    TimestampError,
    TooManyRequestsError,
    TransferNotAllowedError,
)
from ._governor import Governor, Permit
from ._signing import Signer

__all__ = ["DEFAULT_TIMEOUT", "Transport"]

log = logging.getLogger("binance_transfers.transport")

#: Generous on reading: a slow transfer answered late is far better than a
#: transfer whose outcome is unknown. Connecting fails fast (nothing was sent).
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=30.0, write=10.0, pool=30.0)

_Sent = Literal["not sent", "maybe sent"]

# Every httpx exception, by whether the request may have reached Binance.
# tests/test_transport.py checks that no httpx exception class is missing.
HTTPX_ERRORS: Mapping[type[Exception], _Sent] = {
    httpx.ConnectError: "not sent",
    httpx.ConnectTimeout: "not sent",
    httpx.PoolTimeout: "not sent",
    httpx.ProxyError: "not sent",
    httpx.UnsupportedProtocol: "not sent",
    # httpcore's HTTP/2 raises it for any h2 error, reading the answer included.
    httpx.LocalProtocolError: "maybe sent",
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
    ) -> None:
        self._api_key = api_key
        self._signer = signer
        self.governor = governor
        self.account = account
        self._base_urls = {host: url.rstrip("/") for host, url in base_urls.items()}
        self._http = http
        self._time_endpoint = time_endpoint
        self.recv_window = recv_window
        self._max_in_flight = max_in_flight
        self._slots: anyio.CapacityLimiter | None = None
        self._sync_lock: anyio.Lock | None = None
        self.wait_on_ban = wait_on_ban
        self.connect_retries = connect_retries
        self.rate_limit_retries = rate_limit_retries

    async def call(
        self,
        endpoint: Endpoint,
        params: Sequence[tuple[str, str]],
        *,
        max_wait: float | None,
        recv_window: int | None = None,
        retry_on_429: bool = True,
    ) -> Any:
        """Send one request and return Binance's parsed JSON answer.

        ``max_wait`` bounds the whole call's waiting for permits, resends included.
        """
        clock = self.governor.server_clock.clock
        deadline = None if max_wait is None else clock.monotonic() + max_wait
        if endpoint.security.signed:
            await self.sync_time()
        resynced = False
        rate_limited = connect_failed = 0
        while True:
            left = None if deadline is None else max(deadline - clock.monotonic(), 0.0)
            try:
                data, _, _ = await self._exchange(endpoint, params, left, recv_window)
                return data
            except TimestampError:
                # -1021: Binance executed nothing. Resync and send once more.
                if resynced:
                    raise
                resynced = True
                await self.sync_time(force=True)
            except TooManyRequestsError:
                # The governor has stopped the pools until Retry-After; the next
                # acquire waits (or raises ThrottledError past max_wait).
                if not retry_on_429 or rate_limited >= self.rate_limit_retries:
                    raise
                rate_limited += 1
            except ConnectionFailedError:
                if connect_failed >= self.connect_retries:
                    raise
                connect_failed += 1
                await anyio.sleep(0.05 * 4**connect_failed)

    async def sync_time(self, *, force: bool = False) -> None:
        """Resync with Binance's clock when stale (or ``force``)."""
        clock = self.governor.server_clock
        if not force and not clock.needs_sync():
            return
        if self._sync_lock is None:
            self._sync_lock = anyio.Lock()
        seen = clock.version
        async with self._sync_lock:
            if clock.version != seen or (not force and not clock.needs_sync()):
                return  # somebody else synced meanwhile
            endpoint = self._time_endpoint
            for attempt in range(self.connect_retries + 1):
                try:
                    data, sent, received = await self._exchange(endpoint, (), None, None)
                    break
                except ConnectionFailedError:
                    if attempt == self.connect_retries:
                        raise
                    await anyio.sleep(0.05 * 4 ** (attempt + 1))
            try:
                server_ms = int(data["serverTime"])
            except (KeyError, TypeError, ValueError):
                raise MalformedResponseError(
                    "no serverTime", status=200, endpoint=endpoint.name, body=str(data)[:200]
                ) from None
            clock.update(sent=sent, received=received, server_ms=server_ms)
            log.debug("synced with Binance's clock: %r", clock)

    async def _exchange(
        self,
        endpoint: Endpoint,
        params: Sequence[tuple[str, str]],
        max_wait: float | None,
        recv_window: int | None,
    ) -> tuple[Any, float, float]:
        governor = self.governor
        if self._slots is None:
            self._slots = anyio.CapacityLimiter(self._max_in_flight)
        while True:
            permit = await governor.acquire(
                endpoint, account=self.account, max_wait=max_wait, wait_on_ban=self.wait_on_ban
            )
            # A connection slot is taken after the permit, so waiting for one
            # pool never holds up another; the permit is then re-based on the
            # real sending time (or given back if a 429 or a ban came meanwhile).
            clock = governor.server_clock.clock
            sending = settled = False
            try:
                async with self._slots:
                    renewed = governor.renew(permit)
                    if renewed is None:
                        continue
                    permit = renewed
                    request, sent_params, timestamp = self._build(endpoint, params, recv_window)
                    sent = clock.monotonic()
                    sending = True
                    try:
                        response = await self._http.send(request)
                    except Exception as exc:
                        settled = True  # _translate refunds or observes the permit
                        raise self._translate(
                            exc, endpoint, permit, sent, sent_params, timestamp
                        ) from exc
                    sending = False
                    received = clock.monotonic()
            except BaseException:
                if settled:
                    raise
                if not sending:
                    governor.refund(permit)  # never left: the capacity is not spent
                    raise
                governor.observe(permit, sent=sent, received=None)
                if endpoint.mutating:
                    # Cancelled while sending: the transfer may have happened.
                    governor.observe(permit, sent=sent, received=None)
                    log.warning(
                        "%s: cancelled while being sent; its outcome is unknown: %s",
                        endpoint.name,
                        sent_params,
                    )
                raise
            return self._interpret(
                endpoint, permit, response, sent, received, sent_params, timestamp
            )

    def _build(
        self, endpoint: Endpoint, params: Sequence[tuple[str, str]], recv_window: int | None
    ) -> tuple[httpx.Request, dict[str, str], int | None]:
        pairs = list(params)
        timestamp = None
        headers = {"Accept": "application/json"}
        if endpoint.security.signed:
            timestamp = self.governor.server_clock.now_ms()
            pairs.append(("recvWindow", str(recv_window or self.recv_window)))
            pairs.append(("timestamp", str(timestamp)))
            headers["X-MBX-APIKEY"] = self._api_key
        # Percent-encode first, then sign exactly those bytes (Binance, 2026-01-15).
        encoded = urlencode(pairs)
        if endpoint.security.signed:
            signature = self._signer.sign(encoded.encode())
            encoded = f"{encoded}&signature={quote(signature, safe='')}" if encoded else ""
        url = self._base_urls[endpoint.host] + endpoint.path
        if endpoint.method == "GET" or not encoded:
            request = self._http.build_request(
                endpoint.method, f"{url}?{encoded}" if encoded else url, headers=headers
            )
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            request = self._http.build_request(
                endpoint.method, url, content=encoded.encode(), headers=headers
            )
        return request, dict(pairs), timestamp

    def _translate(
        self,
        exc: Exception,
        endpoint: Endpoint,
        permit: Permit,
        sent: float,
        params: dict[str, str],
        timestamp: int | None,
    ) -> BinanceTransfersError:
        """The one place httpx's exceptions become ours."""
        kind = next((HTTPX_ERRORS[c] for c in type(exc).__mro__ if c in HTTPX_ERRORS), None)
        if kind is None:
            raise exc  # not an httpx error: a bug, let it surface as is
        if kind == "not sent":
            self.governor.refund(permit)
            return ConnectionFailedError(f"{endpoint.name}: could not reach Binance: {exc!r}")
        self.governor.observe(permit, sent=sent, received=None)
        if endpoint.mutating:
            log.warning("%s: outcome unknown after %r; it will not be resent", endpoint.name, exc)
        return OutcomeUnknownError(
            f"no complete answer: {type(exc).__name__}",
            endpoint=endpoint.name,
            params=params,
            timestamp=timestamp,
        )

    def _interpret(
        self,
        endpoint: Endpoint,
        permit: Permit,
        response: httpx.Response,
        sent: float,
        received: float,
        params: dict[str, str],
        timestamp: int | None,
    ) -> tuple[Any, float, float]:
        """The one place an HTTP answer becomes data or one of our exceptions."""
        status = response.status_code
        retry_after = _retry_after(response.headers.get("retry-after"))
        body = _json(response.content)
        code = body.get("code") if isinstance(body, dict) else None
        msg = body.get("msg") if isinstance(body, dict) else None
        msg = msg if isinstance(msg, str) else ""
        banned_until = None
        if status == 418:
            match = _BANNED_UNTIL.search(msg)
            banned_until = int(match.group(1)) / 1000 if match else None
        self.governor.observe(
            permit,
            sent=sent,
            received=received,
            status=status,
            headers=response.headers,
            retry_after=retry_after,
            banned_until=banned_until,
        )

        def unknown(reason: str) -> OutcomeUnknownError:
            return OutcomeUnknownError(
                reason, endpoint=endpoint.name, params=params, timestamp=timestamp, status=status
            )

        text = response.text[:500]
        if 200 <= status < 300:
            if body is _NOT_JSON or (isinstance(body, dict) and isinstance(code, int) and code < 0):
                if endpoint.mutating:
                    raise unknown(f"HTTP {status} with an unreadable body")
                raise MalformedResponseError(
                    "not Binance's JSON", status=status, endpoint=endpoint.name, body=text
                )
            return body, sent, received
        clock = self.governor.server_clock
        if status == 429 or (code == -1003 and status != 418):
            wait = retry_after if retry_after is not None else 0.0
            raise TooManyRequestsError(
                f"{endpoint.name}: HTTP {status} {msg or 'Too Many Requests'}",
                retry_at=clock.now() + wait,
                retry_after=wait,
            )
        if status == 418:
            until = banned_until or (clock.now() + (retry_after or 0.0))
            raise IPBannedError(
                f"{endpoint.name}: HTTP 418 {msg}", retry_at=until, retry_after=until - clock.now()
            )
        if status >= 500:
            if "Service Unavailable" in msg and "Unknown" not in msg:
                raise ServiceUnavailableError(msg, status=status, endpoint=endpoint.name)
            raise unknown(f"HTTP {status} {msg or response.reason_phrase}")
        if body is _NOT_JSON or not isinstance(code, int):
            raise MalformedResponseError(
                "no Binance error code in the answer",
                status=status,
                endpoint=endpoint.name,
                body=text,
            )
        if code in _UNKNOWN_CODES:
            raise unknown(f"Binance error {code}: {msg}")
        error_class = _ERROR_CLASSES.get(code, BinanceAPIError)
        if code == -9000 and "nsupported" in msg:
            # -9000 also means "Unsupported operation" (a transfer Binance does not do).
            error_class = TransferNotAllowedError
        raise error_class(code, msg, status=status, endpoint=endpoint.name)

    async def aclose(self) -> None:
        await self._http.aclose()


_NOT_JSON: Any = object()


def _json(content: bytes) -> Any:
    try:
        # Exact decimals: an amount never passes through a binary float.
        return json.loads(content, parse_float=Decimal)
    except ValueError:
        return _NOT_JSON


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (Binance sends seconds)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 and seconds == seconds else None
