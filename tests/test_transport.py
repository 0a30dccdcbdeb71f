"""Error mapping, automatic resends only where Binance provably did nothing."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import anyio
import httpx
import looptime
import pytest
import respx

from binance_transfers import (
    AuthenticationError,
    BinanceAPIError,
    Client,
    ConnectionFailedError,
    Governor,
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
    TransferType,
)
from binance_transfers._transport import HTTPX_ERRORS

from .conftest import API_KEY, SECRET, FakeBinance, error, ok, wire_params

TRANSFER = "/sapi/v1/asset/transfer"


async def transfer(client: Client) -> object:
    return await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")


def _subclasses(cls: type[Exception]) -> Iterator[type[Exception]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_httpx_exception_is_mapped() -> None:
    """No httpx exception can slip through the one translation boundary unclassified."""
    roots: list[type[Exception]] = [
        httpx.HTTPError,
        httpx.StreamError,
        httpx.InvalidURL,
        httpx.CookieConflict,
    ]
    every = {
        c for root in roots for c in (root, *_subclasses(root)) if c.__module__.startswith("httpx")
    }
    exported = {
        obj
        for obj in vars(httpx).values()
        if inspect.isclass(obj)
        and issubclass(obj, Exception)
        and obj.__module__.startswith("httpx")
    }
    leaves = {c for c in every | exported if not c.__subclasses__()}
    assert leaves - set(HTTPX_ERRORS) == set()
    # Only failures before the request was written count as "not sent".
    assert {c for c, kind in HTTPX_ERRORS.items() if kind == "not sent"} >= {
        httpx.ConnectError,
        httpx.ConnectTimeout,
        httpx.PoolTimeout,
    }
    for maybe in (
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.ReadError,
        httpx.RemoteProtocolError,
    ):
        assert HTTPX_ERRORS[maybe] == "maybe sent"


MAPPING = [
    (error(400, -1022, "Signature for this request is not valid."), AuthenticationError),
    (error(401, -2015, "Invalid API-key, IP, or permissions for action."), AuthenticationError),
    (error(401, -2014, "API-key format invalid."), AuthenticationError),
    (error(400, -1002, "You are not authorized to execute this request."), AuthenticationError),
    (error(400, -1102, "Mandatory parameter 'asset' was not sent."), InvalidParameterError),
    (error(400, -1100, "Illegal characters found in a parameter."), InvalidParameterError),
    (
        error(400, -1111, "Precision is over the maximum defined for this asset."),
        InvalidParameterError,
    ),
    (error(400, -1131, "recvWindow must be less than 60000"), InvalidParameterError),
    (error(400, -3041, "Balance is not enough"), InsufficientBalanceError),
    (error(400, -5013, "Asset transfer failed: insufficient balance"), InsufficientBalanceError),
    (error(400, -9000, "user have no avaliable amount"), InsufficientBalanceError),
    (error(400, -9000, "Unsupported operation"), TransferNotAllowedError),
    (error(400, -3005, "Transferring out not allowed."), TransferNotAllowedError),
    (error(400, -3020, "Transfer out amount exceeds max amount."), TransferNotAllowedError),
    (
        error(
            400, -21002, "Portfolio Margin Account doesn't support transfer from margin to futures."
        ),
        TransferNotAllowedError,
    ),
    (
        error(400, -3007, "You have pending transaction, please try again later."),
        PendingTransactionError,
    ),
    (error(400, -5012, "Asset transfer is in pending."), PendingTransactionError),
    (error(400, -21001, "Request ID is not a Portfolio Margin Account."), NotPortfolioMarginError),
    (error(400, -4242, "Something new."), BinanceAPIError),
    (
        error(500, -1006, "An unexpected response was received from the message bus."),
        OutcomeUnknownError,
    ),
    (error(400, -1007, "Timeout waiting for response from backend server."), OutcomeUnknownError),
    (
        error(400, -1000, "An unknown error occurred while processing the request."),
        OutcomeUnknownError,
    ),
    (httpx.Response(500, text="Internal Server Error"), OutcomeUnknownError),
    (httpx.Response(502, text="<html>Bad Gateway</html>"), OutcomeUnknownError),
    (
        error(503, -1008, "Unknown error, please check your request or try again later."),
        OutcomeUnknownError,
    ),
    # Any 5xx leaves a transfer unknown, whatever its body says (-1003 included).
    (error(503, -1008, "Service Unavailable."), OutcomeUnknownError),
    (error(503, -1003, "Too many requests."), OutcomeUnknownError),
    (error(500, -1003, "Too many requests.", **{"Retry-After": "1"}), OutcomeUnknownError),
    (
        httpx.Response(403, text="<html><body>403 Forbidden (WAF)</body></html>"),
        MalformedResponseError,
    ),
    (httpx.Response(400, json={"msg": "no code"}), MalformedResponseError),
    (httpx.Response(200, text="<html>captive portal</html>"), OutcomeUnknownError),
    (httpx.Response(200, json={"unexpected": True}), OutcomeUnknownError),
]


@pytest.mark.parametrize(("response", "expected"), MAPPING)
async def test_status_and_code_mapping(
    response: httpx.Response, expected: type[Exception], fake: FakeBinance, client: Client
) -> None:
    """Each (status, code) maps to the class a caller must branch on; nothing is resent."""
    fake.script("POST", TRANSFER, response)
    with pytest.raises(expected) as info:
        await transfer(client)
    assert type(info.value) is expected
    assert len(fake.transfers) == 1
    if isinstance(info.value, BinanceAPIError):
        assert info.value.code == response.json()["code"]
        assert info.value.msg in str(info.value)


async def test_read_only_garbage_is_malformed_not_unknown(
    fake: FakeBinance, client: Client
) -> None:
    """An unreadable answer to a query is malformed; nothing can have moved."""
    fake.script("GET", TRANSFER, httpx.Response(200, text="<html>oops</html>"))
    with pytest.raises(MalformedResponseError):
        [row async for row in client.transfer_history(type="MAIN_MARGIN")]


async def test_outcome_unknown_carries_what_was_sent(fake: FakeBinance, client: Client) -> None:
    """The error holds the parameters and timestamp needed to find the transfer later."""
    fake.script("POST", TRANSFER, httpx.Response(504, text="Gateway Timeout"))
    with pytest.raises(OutcomeUnknownError) as info:
        await transfer(client)
    err = info.value
    assert err.endpoint == "universal_transfer" and err.status == 504
    assert err.params["type"] == "MAIN_UMFUTURE" and err.params["amount"] == "1"
    assert "signature" not in err.params
    assert err.timestamp == int(dict(wire_params(fake.transfers[0]))["timestamp"])


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("timed out"),
        httpx.WriteTimeout("timed out"),
        httpx.ReadError("connection reset"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.LocalProtocolError("h2 error while reading the answer"),
    ],
)
async def test_transfer_is_never_resent_after_a_network_failure_mid_request(
    exc: Exception, fake: FakeBinance, client: Client
) -> None:
    """A timeout or a dropped connection after sending: OutcomeUnknownError, one request only."""

    def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    fake.script("POST", TRANSFER, fail)
    with pytest.raises(OutcomeUnknownError) as info:
        await transfer(client)
    assert isinstance(info.value.__cause__, type(exc))
    assert len(fake.transfers) == 1


async def test_connect_failures_are_retried_and_cost_no_weight(
    fake: FakeBinance, client: Client
) -> None:
    """Before the request is written nothing happened: retry, and give the permit back."""
    attempts = 0

    def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise httpx.ConnectError("connection refused")
        return ok({"tranId": 5}, **{"X-SAPI-USED-UID-WEIGHT-1M": "900"})

    fake.script("POST", TRANSFER, flaky)
    assert (await transfer(client)).tran_id == 5  # type: ignore[attr-defined]
    assert attempts == 3
    (uid,) = [p for p in client.governor.snapshot() if p.key.startswith("sapi-uid")]
    assert uid.used == 900  # the two refused connections were refunded


async def test_connect_failures_give_up_with_a_clear_error(
    fake: FakeBinance, client: Client
) -> None:
    """After the retries, ConnectionFailedError: still nothing happened on the exchange."""

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    fake.script("POST", TRANSFER, refused)
    with pytest.raises(ConnectionFailedError):
        await transfer(client)
    assert len(fake.transfers) == 3
    (uid,) = [p for p in client.governor.snapshot() if p.key.startswith("sapi-uid")]
    assert uid.used == 0


async def test_timestamp_rejection_resyncs_and_resends_once(
    fake: FakeBinance, client: Client
) -> None:
    """-1021 executed nothing: resync the clock, then send again, once."""
    fake.script(
        "POST",
        TRANSFER,
        error(400, -1021, "Timestamp for this request is outside of the recvWindow."),
        ok({"tranId": 77}),
    )
    assert (await transfer(client)).tran_id == 77  # type: ignore[attr-defined]
    assert [r.url.path for r in fake.requests] == [
        "/api/v3/time",
        TRANSFER,
        "/api/v3/time",
        TRANSFER,
    ]


async def test_timestamp_rejection_twice_is_raised(fake: FakeBinance, client: Client) -> None:
    """A second -1021 after a resync means the host clock is broken: TimestampError."""
    fake.script(
        "POST",
        TRANSFER,
        error(400, -1021, "Timestamp for this request is outside of the recvWindow."),
    )
    with pytest.raises(TimestampError):
        await transfer(client)
    assert len(fake.transfers) == 2


@looptime.enabled(strict=True)
async def test_429_waits_for_retry_after_then_resends(fake: FakeBinance, client: Client) -> None:
    """A 429 did nothing: the pool stops for Retry-After, then the request goes again."""
    fake.script(
        "POST",
        TRANSFER,
        error(
            429, -1003, "Too many requests; current request has limited.", **{"Retry-After": "30"}
        ),
        ok({"tranId": 8}),
    )
    start = anyio.current_time()
    assert (await transfer(client)).tran_id == 8  # type: ignore[attr-defined]
    assert anyio.current_time() - start >= 30
    assert len(fake.transfers) == 2


async def test_429_is_raised_when_retries_are_off(fake: FakeBinance) -> None:
    """retry_on_429=False hands the 429 to the caller with the wait."""
    fake.script("POST", TRANSFER, error(429, -1003, "Too many requests.", **{"Retry-After": "12"}))
    async with Client(
        API_KEY, SECRET, transport=httpx.MockTransport(fake), retry_on_429=False
    ) as c:
        with pytest.raises(TooManyRequestsError) as info:
            await transfer(c)
    assert info.value.retry_after == 12
    assert len(fake.transfers) == 1


@respx.mock(assert_all_called=False)
async def test_418_bans_the_ip_and_nothing_is_sent_during_the_ban(
    respx_mock: respx.MockRouter,
) -> None:
    """A 418 stops every pool until the ban's end; calls fail at once with that time."""
    respx_mock.get("https://api.binance.com/api/v3/time").respond(
        json={"serverTime": 1_767_225_600_000}
    )
    banned_until = 1_767_225_600_000 + 120_000
    route = respx_mock.post("https://api.binance.com/sapi/v1/asset/transfer").respond(
        418,
        json={
            "code": -1003,
            "msg": f"Way too much request weight used; IP banned until {banned_until}. "
            "Please use WebSocket Streams for live updates to avoid bans.",
        },
        headers={"Retry-After": "120"},
    )
    other = respx_mock.post("https://papi.binance.com/papi/v1/auto-collection").respond(
        json={"msg": "success"}
    )
    async with Client(API_KEY, SECRET, governor=Governor()) as c:
        with pytest.raises(IPBannedError) as first:
            await transfer(c)
        assert abs(first.value.retry_at - banned_until / 1000) < 1
        with pytest.raises(IPBannedError):
            await c.pm_auto_collect()  # another pool of the same IP
        assert c.governor.banned_until is not None
    assert route.call_count == 1 and other.call_count == 0


async def test_usage_headers_raise_the_governors_count(fake: FakeBinance, client: Client) -> None:
    """Weight Binance reports beyond ours (another process) is counted as used."""
    fake.script(
        "POST",
        "/papi/v1/asset-collection",
        ok({"msg": "success"}, **{"X-MBX-USED-WEIGHT-1M": "5000"}),
    )
    await client.pm_collect_asset(asset="USDT")
    (papi,) = [p for p in client.governor.snapshot() if p.key == "papi-ip"]
    assert papi.used == 5000


async def test_transfers_are_never_retried_on_5xx_even_with_retries_on(
    fake: FakeBinance, client: Client
) -> None:
    """The 429 retry never applies to an unknown outcome."""
    fake.script("POST", TRANSFER, httpx.Response(500, text="err"), ok({"tranId": 1}))
    with pytest.raises(OutcomeUnknownError):
        await transfer(client)
    assert len(fake.transfers) == 1


@looptime.enabled(strict=True)
async def test_max_wait_bounds_the_whole_call_across_429s(fake: FakeBinance) -> None:
    """Two 429s of 6 s each against max_wait=10: the second wait is refused at once."""
    too_many = error(429, -1003, "Too many requests.", **{"Retry-After": "6"})
    fake.script("POST", TRANSFER, too_many, too_many, ok({"tranId": 1}))
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake), max_wait=10) as c:
        start = anyio.current_time()
        with pytest.raises(ThrottledError):
            await transfer(c)
        assert 6 <= anyio.current_time() - start < 6.5
    assert len(fake.transfers) == 2


@looptime.enabled(strict=True)
async def test_cancelled_while_waiting_for_a_connection_costs_nothing(fake: FakeBinance) -> None:
    """A permit whose request never left (cancelled before sending) is given back."""

    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(5)
        return ok({"tranId": 1})

    class SlowTransport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/api/v3/time":
                return fake(request)
            return await slow(request)

    async with Client(API_KEY, SECRET, transport=SlowTransport(), max_in_flight=1) as c:
        async with anyio.create_task_group() as tg:
            tg.start_soon(transfer, c)
            await anyio.sleep(1)  # the first holds the only connection
            with anyio.move_on_after(1):
                await transfer(c)  # admitted, then cancelled waiting for the connection
        (uid,) = [p for p in c.governor.snapshot() if p.key.startswith("sapi-uid")]
        assert uid.used == 900  # only the request that was really sent
