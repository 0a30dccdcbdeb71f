"""Error mapping, automatic resends only where Binance provably did nothing."""

from __future__ import annotations

import asyncio
import gc
import inspect
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import looptime
import pytest
import respx

from binance_transfers import (
    AuthenticationError,
    BinanceAPIError,
    BinanceTransfersError,
    Client,
    ConfigurationError,
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
from binance_transfers._http import WriteAwareAiohttpTransport
from binance_transfers._transport import (
    HTTPX_ERRORS,
    MAX_RETRY_AFTER,
    ON_WRITE,
    ExchangeOutcome,
    _retry_after,
)

from .conftest import API_KEY, SECRET, SERVER_MS, FakeBinance, error, ok, wire_params

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


class _Connecting(httpx.AsyncBaseTransport):
    """A transport that reports its writes (as httpcore's and aiohttp's do): it refuses
    the first ``refusals`` transfer connections before writing anything, then awaits the
    request's write hook and answers from ``fake``."""

    reports_writes = True

    def __init__(self, fake: FakeBinance, refusals: int) -> None:
        self.fake = fake
        self.refusals = refusals
        self.attempts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == TRANSFER:
            self.attempts += 1
            if self.attempts <= self.refusals:
                raise httpx.ConnectError("connection refused")
        await request.extensions[ON_WRITE]()
        return self.fake(request)


async def test_connect_failures_are_retried_and_cost_no_weight(fake: FakeBinance) -> None:
    """Before the request is written nothing happened: retry, and give the permit back."""
    fake.script("POST", TRANSFER, ok({"tranId": 5}, **{"X-SAPI-USED-UID-WEIGHT-1M": "900"}))
    connecting = _Connecting(fake, refusals=2)
    async with Client(API_KEY, SECRET, transport=connecting) as client:
        assert (await transfer(client)).tran_id == 5  # type: ignore[attr-defined]
        (uid,) = [p for p in client.governor.snapshot() if p.key.startswith("sapi-uid")]
    assert connecting.attempts == 3
    assert len(fake.transfers) == 1
    assert uid.used == 900  # the two refused connections were refunded


async def test_connect_failures_give_up_with_a_clear_error(fake: FakeBinance) -> None:
    """After the retries, ConnectionFailedError: still nothing happened on the exchange."""
    connecting = _Connecting(fake, refusals=10)
    async with Client(API_KEY, SECRET, transport=connecting) as client:
        with pytest.raises(ConnectionFailedError):
            await transfer(client)
        (uid,) = [p for p in client.governor.snapshot() if p.key.startswith("sapi-uid")]
    assert connecting.attempts == 3
    assert fake.transfers == []
    assert uid.used == 0


@pytest.mark.parametrize("kind", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout])
async def test_a_transport_reporting_no_writes_never_gets_a_transfer_resent(
    fake: FakeBinance, client: Client, kind: type[httpx.TransportError]
) -> None:
    """A transport that says nothing of its writes may call a connection dropped after the
    write a "connect" error (httpx-aiohttp does): once handed over, the outcome is unknown
    and the transfer is not sent again (breaker B-9: it was executed twice)."""

    def dropped_after_executing(request: httpx.Request) -> httpx.Response:
        raise kind("Server disconnected")

    fake.script("POST", TRANSFER, dropped_after_executing)
    with pytest.raises(OutcomeUnknownError):
        await transfer(client)
    assert len(fake.transfers) == 1


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
    """A 418 stops every pool until the ban's end (and a twentieth of the ban: its
    end is read on our clock estimate); calls fail at once with that time."""
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
        end = c.governor.banned_until
        assert end is not None
        assert first.value.retry_at == pytest.approx(end, abs=0.01)  # as the governor's
        assert banned_until / 1000 + 5 < end < banned_until / 1000 + 7  # 120 s / 20 later
        with pytest.raises(IPBannedError) as second:
            await c.pm_auto_collect()  # another pool of the same IP
        assert second.value.retry_at == pytest.approx(end, abs=0.01)
    assert route.call_count == 1 and other.call_count == 0


async def test_usage_headers_raise_the_governors_count(fake: FakeBinance, client: Client) -> None:
    """Weight Binance reports beyond ours (another process) is counted as used."""
    # Mid-window: a report that may belong to either of two windows (one sent
    # right at a boundary) corrects only the earlier one, by design.
    fake.server_ms += 30_000
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


# -- money safety off the main paths (issue 8) and transport-side governor defects (issue 7) --


def _unknown_params() -> dict[str, str]:
    return {"type": "MAIN_UMFUTURE", "asset": "USDT", "amount": "1"}


class _Outcomes:
    """Collects what the transport hands to ``on_outcome``."""

    def __init__(self) -> None:
        self.seen: list[ExchangeOutcome] = []

    async def __call__(self, outcome: ExchangeOutcome) -> None:
        self.seen.append(outcome)


async def test_a_non_httpx_failure_after_handing_over_is_an_unknown_outcome(
    fake: FakeBinance, client: Client
) -> None:
    """Any exception once the request may have left (here a closed loop) is OutcomeUnknownError."""

    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("Event loop is closed")

    fake.script("POST", TRANSFER, broken)
    with pytest.raises(OutcomeUnknownError) as info:
        await transfer(client)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert info.value.timestamp is not None and info.value.recv_window == 5000
    assert len(fake.transfers) == 1


def test_a_client_used_from_another_event_loop_is_refused_before_sending() -> None:
    """A second asyncio.run() with the same client: ConfigurationError, nothing sent."""
    fake = FakeBinance()
    fake.script("POST", TRANSFER, ok({"tranId": 1}))
    client = Client(API_KEY, SECRET, transport=httpx.MockTransport(fake))
    asyncio.run(transfer(client))
    with pytest.raises(ConfigurationError, match="another event loop"):
        asyncio.run(transfer(client))
    assert len(fake.transfers) == 1


@looptime.enabled(strict=True)
async def test_a_caller_cancelled_on_the_wire_still_learns_the_outcome(
    fake: FakeBinance, client: Client
) -> None:
    """wait_for() gives up on a slow transfer: it runs to its answer, on_outcome gets it."""
    outcomes = _Outcomes()
    client._transport.on_outcome = outcomes
    observed: list[float | None] = []
    observe = client.governor.observe

    def spy(permit: Any, **kwargs: Any) -> None:
        observed.append(kwargs["received"])
        observe(permit, **kwargs)

    client.governor.observe = spy  # type: ignore[method-assign]

    class Slow(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == TRANSFER:
                await anyio.sleep(2)
            return fake(request)

    fake.script("POST", TRANSFER, ok({"tranId": 42}))
    async with Client(API_KEY, SECRET, transport=Slow()) as slow:
        slow._transport.on_outcome = outcomes
        slow.governor.observe = spy  # type: ignore[method-assign]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(transfer(slow), 0.5)
    assert len(fake.transfers) == 1
    (outcome,) = outcomes.seen
    assert outcome.detached and outcome.data == {"tranId": 42} and outcome.error is None
    assert outcome.params["amount"] == "1" and outcome.timestamp is not None
    assert len(observed) == 2 and observed[-1] is not None  # the sync, then the transfer, once


async def test_a_caller_cancelled_just_as_the_answer_arrives_gets_its_cancellation(
    fake: FakeBinance, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The answer is in, the caller not yet resumed, when it is cancelled: it gets
    its cancellation (as asyncio promises), the outcome went to on_outcome once,
    and a warning says so."""
    seen: list[ExchangeOutcome] = []
    caller: asyncio.Task[object] | None = None

    async def cancel_the_caller_next(outcome: ExchangeOutcome) -> None:
        seen.append(outcome)
        assert caller is not None
        # Runs before the caller resumes: the answer is handed over meanwhile.
        asyncio.get_running_loop().call_soon(caller.cancel)

    client._transport.on_outcome = cancel_the_caller_next
    fake.script("POST", TRANSFER, ok({"tranId": 7}))
    caller = asyncio.create_task(transfer(client))
    with pytest.raises(asyncio.CancelledError):
        await caller
    (outcome,) = seen
    assert outcome.data == {"tranId": 7} and outcome.error is None and not outcome.detached
    assert len(fake.transfers) == 1
    assert "caller cancelled just as the answer arrived (outcome recorded: done)" in caplog.text


async def test_a_failing_task_group_sibling_does_not_cut_a_transfer_off(
    fake: FakeBinance,
) -> None:
    """A TaskGroup cancels its other tasks: the transfer on the wire still reports its outcome."""
    outcomes = _Outcomes()

    class Slow(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == TRANSFER:
                await asyncio.sleep(0.05)
            return fake(request)

    fake.script("POST", TRANSFER, ok({"tranId": 9}))
    async with Client(API_KEY, SECRET, transport=Slow()) as c:
        c._transport.on_outcome = outcomes

        async def fail_soon() -> None:
            await asyncio.sleep(0.01)
            raise KeyError("sibling")

        async def run_both() -> None:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(transfer(c))
                tg.create_task(fail_soon())

        with pytest.raises(ExceptionGroup):
            await run_both()
    (outcome,) = outcomes.seen
    assert outcome.detached and outcome.data == {"tranId": 9}


@looptime.enabled(strict=True)
async def test_reads_are_retried_and_never_unknown(fake: FakeBinance, client: Client) -> None:
    """A 502 and a read timeout on queries are retried: reads are idempotent."""

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    fake.script(
        "GET",
        TRANSFER,
        httpx.Response(502, text="Bad Gateway"),
        timeout,
        ok({"total": 0, "rows": []}),
    )
    assert [row async for row in client.transfer_history(type="MAIN_MARGIN")] == []
    assert len(fake.calls(TRANSFER)) == 3


@looptime.enabled(strict=True)
async def test_reads_that_keep_failing_raise_a_plain_error(
    fake: FakeBinance, client: Client
) -> None:
    """Past the retries a read raises ServiceUnavailableError or ConnectionFailedError."""
    bad_gateway = httpx.Response(502, text="Bad Gateway")
    fake.script("GET", "/api/v3/time", *[bad_gateway] * 4, ok({"serverTime": SERVER_MS}))
    with pytest.raises(ServiceUnavailableError):
        await client.server_time()
    assert len(fake.calls("/api/v3/time")) == 4  # three retries

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    fake.script("GET", TRANSFER, timeout)
    with pytest.raises(ConnectionFailedError):
        [row async for row in client.transfer_history(type="MAIN_MARGIN")]


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(429, text="<html>Too Many Requests</html>"),
        httpx.Response(503, json={"code": -1003, "msg": "Too many requests."}),
    ],
    ids=["429-proxy", "503-code-1003"],
)
async def test_only_binances_own_429_is_proof_that_nothing_happened(
    response: httpx.Response, fake: FakeBinance, client: Client
) -> None:
    """A 429 without Binance's body, or a 5xx that quotes -1003, is never resent."""
    fake.script("POST", TRANSFER, response, ok({"tranId": 1}))
    with pytest.raises(OutcomeUnknownError):
        await transfer(client)
    assert len(fake.transfers) == 1


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"tranId": NaN}', b'{"tranId": 1'],
    ids=["deeply-nested", "nan", "truncated"],
)
async def test_unreadable_success_answers_are_unknown_with_their_timestamp(
    body: bytes, fake: FakeBinance, client: Client
) -> None:
    """A 200 nobody can read: OutcomeUnknownError carrying the timestamp sent, permit settled."""
    fake.script("POST", TRANSFER, httpx.Response(200, content=body))
    with pytest.raises(OutcomeUnknownError) as info:
        await transfer(client)
    assert info.value.timestamp == int(dict(wire_params(fake.transfers[0]))["timestamp"])
    (uid,) = [p for p in client.governor.snapshot() if p.key.startswith("sapi-uid")]
    assert uid.used == 900


@pytest.mark.parametrize("value", ["Infinity", "1e400", "-5", '"soon"'])
async def test_an_unreadable_server_time_is_a_typed_error(value: str, fake: FakeBinance) -> None:
    """{"serverTime": Infinity} and friends: MalformedResponseError, not OverflowError."""
    fake.script("GET", "/api/v3/time", httpx.Response(200, content=f'{{"serverTime": {value}}}'))
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake)) as c:
        with pytest.raises(MalformedResponseError):
            await transfer(c)
    assert fake.transfers == []


@looptime.enabled(strict=True)
async def test_max_wait_bounds_the_clock_sync(fake: FakeBinance) -> None:
    """A clock sync that hangs does not hold a call with max_wait=0.5 for 30 s."""

    class Hanging(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/api/v3/time":
                await anyio.sleep(29)
            return fake(request)

    async with Client(API_KEY, SECRET, transport=Hanging()) as c:
        start = anyio.current_time()
        with pytest.raises(ThrottledError, match="clock could not be synced"):
            await c.transfer(type="MAIN_UMFUTURE", asset="USDT", amount="1", max_wait=0.5)
        assert anyio.current_time() - start == pytest.approx(0.5, abs=0.01)
    assert fake.transfers == []


@looptime.enabled(strict=True)
async def test_wait_on_ban_waits_for_the_ban_its_own_request_met(fake: FakeBinance) -> None:
    """With wait_on_ban, the 418 the request itself meets is waited out, then it is resent."""
    fake.script(
        "POST",
        TRANSFER,
        error(418, -1003, "Way too much request weight used.", **{"Retry-After": "120"}),
        ok({"tranId": 3}),
    )
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake), wait_on_ban=True) as c:
        start = anyio.current_time()
        assert (await transfer(c)).tran_id == 3  # type: ignore[attr-defined]
        assert anyio.current_time() - start >= 120
    assert len(fake.transfers) == 2


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("30", 30.0),
        ("0", 0.0),
        ("nan", None),
        ("-1", None),
        ("soon", None),
        ("inf", MAX_RETRY_AFTER),
        ("1e9", MAX_RETRY_AFTER),
    ],
)
def test_retry_after_is_read_safely(header: str | None, seconds: float | None) -> None:
    """Retry-After: unreadable values are ignored; none stops a pool past Binance's longest ban."""
    assert _retry_after(header) == seconds


async def test_a_signer_that_fails_leaves_no_key_in_the_traceback(fake: FakeBinance) -> None:
    """A hardware signer timing out: no frame of the traceback holds the API key."""

    class Failing:
        def sign(self, payload: bytes) -> str:
            raise TimeoutError("HSM did not answer")

    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake)) as c:
        c._transport._signer = Failing()
        with pytest.raises(ConfigurationError, match="signer failed") as info:
            await transfer(c)
    tb = info.value.__traceback__
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            assert API_KEY not in repr(value)
        tb = tb.tb_next
    assert fake.transfers == []


# -- over real sockets: httpcore and aiohttp report the write ----------------------------

#: The HTTP library each over-TCP test runs on: the default client's (aiohttp
#: on asyncio), and httpcore (httpx's own transport, as a user may bring).
# aiohttp: the default client's own path (no httpx request/response objects);
# "aiohttp via httpx": the same transport in a client the user brought.
TCP_LIBRARIES = ["aiohttp", "aiohttp via httpx", "httpcore"]


def _tcp_client(library: str, url: str, **kwargs: Any) -> Client:
    if library == "httpcore":
        kwargs["transport"] = httpx.AsyncHTTPTransport()
    elif library == "aiohttp via httpx":
        limits = httpx.Limits(max_connections=10, max_keepalive_connections=10)
        kwargs["transport"] = WriteAwareAiohttpTransport(limits=limits)
    return Client(API_KEY, SECRET, api_url=url, **kwargs)


def _library_used(c: Client) -> str:
    inner = getattr(c._http._transport, "inner", c._http._transport)
    if type(inner).__name__ != "WriteAwareAiohttpTransport":
        return "httpcore"
    raw = any(t.aiohttp is not None for t in c._transport._templates.values())
    return "aiohttp" if raw else "aiohttp via httpx"


class _Loopback:
    """A bare HTTP/1.1 server on 127.0.0.1 that answers every request after ``delay``."""

    def __init__(self, body: bytes, delay: float = 0.0) -> None:
        self.body = body
        self.delay = delay
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.received = asyncio.Event()  # a request other than the clock sync arrived

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                self.requests.append(head.split(b"\r\n", 1)[0] + b" " + body)
                if b"/api/v3/time" in head:
                    answer = b'{"serverTime": %d}' % SERVER_MS
                else:
                    self.received.set()
                    await asyncio.sleep(self.delay)
                    answer = self.body
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer)
                )
                await writer.drain()
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

    @property
    def transfers(self) -> list[bytes]:
        return [r for r in self.requests if b"/api/v3/time" not in r]


@pytest.mark.parametrize("library", TCP_LIBRARIES)
async def test_over_tcp_a_cancelled_caller_still_learns_the_outcome(library: str) -> None:
    """Real sockets: the caller is cancelled once Binance has the request; the answer still
    arrives and reaches on_outcome."""
    outcomes = _Outcomes()
    server = _Loopback(b'{"tranId": 77}', delay=0.2)
    async with server as url, _tcp_client(library, url) as c:
        c._transport.on_outcome = outcomes
        await c.server_time()
        assert _library_used(c) == library
        task = asyncio.create_task(transfer(c))
        await server.received.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(server.transfers) == 1
    (outcome,) = outcomes.seen
    assert outcome.detached and outcome.data == {"tranId": 77}


@pytest.mark.parametrize("library", TCP_LIBRARIES)
async def test_over_tcp_the_permit_is_renewed_at_the_write(library: str) -> None:
    """httpcore's trace, aiohttp's connector: the governor re-bases the permit as the request
    is written, and a refusal at that moment writes nothing and acquires again."""
    server = _Loopback(b'{"tranId": 5}')
    governor = Governor()
    renewals: list[bool] = []
    renew = governor.renew

    def refuse_first(permit: Any) -> Any:
        # Called from inside the HTTP library (httpcore's trace, aiohttp's
        # connector), with the connection ready: at the write itself.
        package = library.split()[0]  # "aiohttp via httpx" is aiohttp's too
        renewals.append(any(f"/{package}/" in f.filename for f in inspect.stack()))
        if len(renewals) == 2:  # the transfer's first write (the first is the clock sync)
            governor.refund(permit)
            return None
        return renew(permit)

    governor.renew = refuse_first  # type: ignore[method-assign]
    async with server as url, _tcp_client(library, url, governor=governor) as c:
        assert (await transfer(c)).tran_id == 5  # type: ignore[attr-defined]
        assert _library_used(c) == library
    assert renewals == [True, True, True]
    assert len(server.transfers) == 1
    (uid,) = [p for p in governor.snapshot() if p.key.startswith("sapi-uid")]
    assert uid.used == 900


@pytest.mark.parametrize("library", TCP_LIBRARIES)
async def test_over_tcp_a_header_h11_refuses_is_not_sent_and_not_leaked(
    caplog: pytest.LogCaptureFixture, library: str
) -> None:
    """A key h11 (or our aiohttp transport) refuses before writing: ConnectionFailedError
    (nothing left), key nowhere."""
    server = _Loopback(b'{"tranId": 5}')
    bad = API_KEY + "\n"
    async with server as url, _tcp_client(library, url) as c:
        await c.server_time()
        assert _library_used(c) == library
        # Past the client's own check (it refuses such keys): the transport alone.
        c._transport._key_header["X-MBX-APIKEY"] = bad
        c._transport._key_raw = [(b"X-MBX-APIKEY", bad.encode())]
        c._transport._templates.clear()
        with pytest.raises(ConnectionFailedError) as info:
            await transfer(c)
    assert server.transfers == []
    err: BaseException | None = info.value
    while err is not None:
        assert API_KEY not in str(err) and API_KEY not in repr(err)
        err = err.__cause__ or err.__context__
    assert API_KEY not in caplog.text


def test_under_trio_a_cancelled_caller_still_learns_the_outcome() -> None:
    """trio: a cancel scope that expires mid-request; the shielded transfer reports its outcome."""
    import trio
    import trio.testing

    fake = FakeBinance()
    fake.script("POST", TRANSFER, ok({"tranId": 11}))
    outcomes = _Outcomes()

    class Slow(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == TRANSFER:
                await trio.sleep(2)
            return fake(request)

    async def main() -> None:
        async with Client(API_KEY, SECRET, transport=Slow()) as c:
            c._transport.on_outcome = outcomes
            with trio.move_on_after(0.5) as scope:
                await transfer(c)
            assert scope.cancelled_caught

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len(fake.transfers) == 1
    (outcome,) = outcomes.seen
    assert outcome.detached and outcome.data == {"tranId": 11}


@looptime.enabled(strict=True)
async def test_permits_never_run_far_ahead_of_their_writes(fake: FakeBinance) -> None:
    """With one connection busy, an endpoint holds at most write_ahead unsent permits:
    the rest wait uncharged, so no window is charged for requests that cannot be sent."""

    class Slow(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == TRANSFER:
                await anyio.sleep(1)
            return fake(request)

    fake.script("POST", TRANSFER, ok({"tranId": 1}))
    # cold_start=False: a cold governor would send one transfer alone first (cold start).
    governor = Governor(cold_start=False)
    async with Client(API_KEY, SECRET, transport=Slow(), max_in_flight=1, governor=governor) as c:
        c._transport.write_ahead = 2
        await c.server_time()
        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(transfer, c)
            await anyio.sleep(0.5)
            (uid,) = [p for p in c.governor.snapshot() if p.key.startswith("sapi-uid")]
            assert uid.used == 3 * 900  # one on the wire, two permits waiting for it
    assert len(fake.transfers) == 6


@looptime.enabled(strict=True)
async def test_max_wait_bounds_the_gate_and_the_permit_together(fake: FakeBinance) -> None:
    """The write-ahead gate and the governor each got the whole max_wait.

    A holds the endpoint's only write-ahead place until its permit comes (2 s);
    B (max_wait=3) then has 1 s left for its permit, not 3: it is refused by
    t=3, never later.
    """
    governor = Governor(cold_start=False)
    real = governor.acquire
    given: list[float | None] = []

    async def acquire(endpoint: Any, **kwargs: Any) -> Any:
        if endpoint.name != "universal_transfer":
            return await real(endpoint, **kwargs)
        given.append(kwargs["max_wait"])
        if kwargs["max_wait"] is None:  # A: its permit takes 2 s
            await anyio.sleep(2)
            return await real(endpoint, **kwargs)
        await anyio.sleep(kwargs["max_wait"])  # a governor that uses all it is given
        raise ThrottledError("no permit in time", retry_at=0.0, retry_after=0.0)

    governor.acquire = acquire  # type: ignore[method-assign]
    fake.script("POST", TRANSFER, ok({"tranId": 1}))
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake), governor=governor) as c:
        c._transport.write_ahead = 1
        await c.server_time()
        loop = asyncio.get_running_loop()
        start = loop.time()
        a = asyncio.create_task(transfer(c))
        await asyncio.sleep(0)
        with pytest.raises(ThrottledError):
            await c.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1", max_wait=3)
        assert loop.time() - start <= 3.0 + 1e-6
        await a
    assert given[0] is None and given[1] is not None and given[1] <= 1.0 + 1e-6


@pytest.mark.parametrize("library", ["mock", *TCP_LIBRARIES[:2]])
async def test_a_transfer_is_written_before_its_permit_waits_behind_the_event_loop(
    fake: FakeBinance, library: str
) -> None:
    """Issue 7, permit->write: from the permit to the write, no other callback runs.

    A permit charges the windows its request may land in now; every turn of a
    busy event loop between the two (thousands of callbacks queued by 500
    coroutines) is time the request is not where it was charged. The mutating
    request's own task is started before the permit, not after it.
    """
    order: list[str] = []
    governor = Governor(cold_start=False)
    acquire, renew = governor.acquire, governor.renew

    async def acquire_marked(*args: Any, **kwargs: Any) -> Any:
        permit = await acquire(*args, **kwargs)
        # Runs at the next turn of the loop, after anything already queued.
        asyncio.get_running_loop().call_soon(order.append, "the loop turned")
        return permit

    def renew_marked(permit: Any) -> Any:
        order.append("written")
        return renew(permit)

    governor.acquire = acquire_marked  # type: ignore[method-assign]
    governor.renew = renew_marked  # type: ignore[method-assign]
    fake.script("POST", TRANSFER, ok({"tranId": 1}))
    if library == "mock":
        client = Client(API_KEY, SECRET, transport=httpx.MockTransport(fake), governor=governor)
        async with client as c:
            await c.server_time()
            await transfer(c)  # a warm-up
            order.clear()
            await transfer(c)
    else:
        async with (
            _Loopback(b'{"tranId": 5}') as url,
            _tcp_client(library, url, governor=governor) as c,
        ):
            await c.server_time()
            await transfer(c)  # a warm-up: the connection is open, in the pool
            order.clear()
            await transfer(c)
            assert _library_used(c) == library
    assert order == ["written", "the loop turned"]


@looptime.enabled(strict=True)
async def test_a_detached_failure_is_reported_not_left_for_asyncio_to_complain_about(
    fake: FakeBinance, caplog: pytest.LogCaptureFixture
) -> None:
    """A cancelled caller's transfer times out later: on_outcome has the error, and asyncio
    logs no 'Task exception was never retrieved'."""
    outcomes = _Outcomes()

    class TimesOut(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == TRANSFER:
                await anyio.sleep(2)
                raise httpx.ReadTimeout("timed out")
            return fake(request)

    async with Client(API_KEY, SECRET, transport=TimesOut()) as c:
        c._transport.on_outcome = outcomes
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(transfer(c), 0.5)
    gc.collect()
    (outcome,) = outcomes.seen
    assert outcome.detached and isinstance(outcome.error, OutcomeUnknownError)
    assert "never retrieved" not in caplog.text


# -- found in review ---------------------------------------------------------------


def _frames_holding(exc: BaseException, secret: str) -> list[str]:
    """Every (frame, local) of ``exc``'s traceback and chain whose repr shows ``secret``."""
    found: list[str] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if secret in str(current) or secret in repr(current.args):
            found.append(f"message of {type(current).__name__}")
        tb = current.__traceback__
        while tb is not None:
            for name, value in tb.tb_frame.f_locals.items():
                try:
                    shown = repr(value)
                except Exception:  # noqa: S112 - a half-built object (httpx.URL) cannot say
                    continue
                if secret in shown:
                    found.append(f"{tb.tb_frame.f_code.co_name}: {name}")
            tb = tb.tb_next
        todo += [current.__cause__, current.__context__]
    return found


async def test_a_bad_base_url_is_typed_and_keeps_the_key_out_of_the_traceback(
    fake: FakeBinance,
) -> None:
    """papi_url with an invalid port: the first PAPI call must fail with one of our errors
    (bad input, before anything is sent) and no traceback local may hold the API key.

    (Found in review: a plain ``httpx.InvalidURL`` escaped from ``Transport._template``,
    whose locals held the full key.)"""
    fake.script("POST", "/papi/v1/auto-collection", ok({"msg": "success"}))
    caught: BaseException | None = None
    try:
        async with Client(
            API_KEY, SECRET, transport=httpx.MockTransport(fake), papi_url="http://[::1"
        ) as c:
            await c.pm_auto_collect()
    except Exception as exc:
        caught = exc
    assert caught is not None
    assert _frames_holding(caught, API_KEY) == []
    assert isinstance(caught, BinanceTransfersError), repr(caught)
    assert [r for r in fake.requests if r.url.path.startswith("/papi")] == []


async def test_a_proxy_that_refuses_connect_is_not_an_unknown_outcome() -> None:
    """Behind an HTTPS proxy, the proxy answers CONNECT with 502: nothing reached Binance.

    The CONNECT request shares the request's extensions, so httpcore's trace reports its
    headers too: they must not count as the transfer's write."""
    connects: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        connects.append(head.split(b"\r\n")[0])
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    http = httpx.AsyncClient(proxy=f"http://127.0.0.1:{port}")
    client = Client(API_KEY, SECRET, http_client=http, api_url="https://api.binance.invalid")
    client._transport.connect_retries = 0  # one CONNECT is enough to tell
    clock = client.governor.server_clock  # synced by hand: the proxy refuses everything
    now = clock.clock.monotonic()
    clock.update(sent=now, received=now, server_ms=int(time.time() * 1000))
    caught: BaseException | None = None
    try:
        await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
    except Exception as exc:
        caught = exc
    finally:
        await http.aclose()
        server.close()
    assert connects == [b"CONNECT api.binance.invalid:443 HTTP/1.1"]
    assert not isinstance(caught, OutcomeUnknownError), repr(caught)
    assert isinstance(caught, ConnectionFailedError), repr(caught)


async def test_a_failing_signer_is_a_typed_error_and_costs_nothing(
    fake: FakeBinance,
) -> None:
    """``make_signer`` takes "an object with a sign(payload) -> str method: a hardware
    module, a remote signer". When it fails (an HSM busy), nothing was sent: the caller
    must get one of our typed errors (the HSM's error as its cause), not a plain one.

    """

    class Hsm:
        def sign(self, payload: bytes) -> str:
            raise RuntimeError("HSM: device busy")

    fake.script("POST", "/sapi/v1/asset/transfer", ok({"tranId": 1}))
    caught: BaseException | None = None
    async with Client(API_KEY, Hsm(), transport=httpx.MockTransport(fake)) as c:
        try:
            await c.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
        except Exception as exc:
            caught = exc
        (uid,) = [p for p in c.governor.snapshot() if p.key.startswith("sapi-uid")]
    assert fake.transfers == []
    assert uid.used == 0  # the permit went back
    assert isinstance(caught, BinanceTransfersError), repr(caught)
    assert isinstance(caught.__cause__, RuntimeError)


async def test_under_respx_a_read_timeout_is_unknown_and_sent_once() -> None:
    """respx patches httpcore (its trace never fires): a read timeout there is still an
    unknown outcome, sent once, as in production."""
    with respx.mock(base_url="https://api.binance.com") as mock:
        mock.get("/api/v3/time").respond(200, json={"serverTime": SERVER_MS})
        route = mock.post("/sapi/v1/asset/transfer").mock(
            side_effect=httpx.ReadTimeout("timed out")
        )
        async with Client(API_KEY, SECRET) as c:
            with pytest.raises(OutcomeUnknownError):
                await c.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
    assert route.call_count == 1


# -- the prepared request is the one httpx would build --------------------------------


@pytest.mark.parametrize("name", ["universal_transfer", "transfer_history"])
async def test_prepared_requests_are_what_httpx_would_build(name: str) -> None:
    """The request the transport prepares (once per endpoint, then per call) has the
    headers, in order, the URL and the body that ``AsyncClient.build_request`` gives."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/api/v3/time":
            return httpx.Response(200, json={"serverTime": SERVER_MS})
        return httpx.Response(
            200, json={"tranId": 1} if request.method == "POST" else {"total": 0, "rows": []}
        )

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer), headers={"X-Desk": "7"})
    async with http, Client(API_KEY, SECRET, http_client=http) as c:
        if name == "universal_transfer":
            await transfer(c)
        else:
            async for _ in c.transfer_history(type="MAIN_UMFUTURE"):
                pass
    request = seen[-1]
    expected = http.build_request(
        request.method,
        str(request.url),
        content=request.content or None,
        headers=({"Content-Type": "application/x-www-form-urlencoded"} if request.content else {})
        | {"X-MBX-APIKEY": API_KEY},
    )
    assert request.headers.raw == expected.headers.raw
    assert request.url == expected.url
    assert request.content == expected.content


# -- the encoding, its fast check included ------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        [],
        [("asset", "USDT"), ("amount", "1.5")],
        [("asset", "")],
        [("email", "desk+1@example.com")],
        [("a", "x&y")],  # plain but for "&": the quick check must not pass it
        [("a", "x=y")],
        [("a", "b"), ("c", "d=e&f=g")],
        [("a", "b&c=d"), ("e", "f")],  # as many "=" as pairs, one "&" too many
        [("note", "a b/ü")],
    ],
)
async def test_the_query_is_urlencoded_then_signed_over_exactly_those_bytes(
    params: list[tuple[str, str]],
) -> None:
    import hashlib
    import hmac
    from urllib.parse import urlencode

    from binance_transfers._endpoints import ENDPOINTS
    from binance_transfers._transport import _Attempt

    async with Client(API_KEY, SECRET, api_url="http://127.0.0.1:9") as c:
        transport = c._transport
        attempt = _Attempt(ENDPOINTS["universal_transfer"], None, True, None, transport)  # type: ignore[arg-type]
        encoded = transport._encode(attempt, params, 7000)
    signed, _, signature = encoded.rpartition("&signature=")
    stamp = f"recvWindow=7000&timestamp={attempt.timestamp}"
    assert signed == (f"{urlencode(params)}&{stamp}" if params else stamp)
    assert signature == hmac.new(SECRET.encode(), signed.encode(), hashlib.sha256).hexdigest()
    assert attempt.params == {**dict(params), "recvWindow": "7000", "timestamp": signed[-13:]}
