"""Every client method: exact method, host, path, parameters and signature."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs
import httpx
import pytest

from binance_transfers import (
    Acknowledgement,
    BnbTransferResult,
    BnbTransferSide,
    Client,
    ClientClosedError,
    ConfigurationError,
    FuturesMarket,
    FutureType,
    Governor,
    InvalidInputError,
    MarginTransferDirection,
    MarginTransferResult,
    RawType,
    ServerTime,
    SubAccountAccountType,
    SubAccountTransferResult,
    TransferResult,
    TransferType,
)

from .conftest import (
    API_KEY,
    SECRET,
    FakeBinance,
    expected_hmac,
    ok,
    payload_and_signature,
    wire_params,
)

Call = Callable[[Client], Awaitable[Any]]


@attrs.frozen
class Case:
    call: Call
    method: str
    host: str
    path: str
    params: list[tuple[str, str]]
    answer: Any
    result: Any


CASES = {
    "transfer": Case(
        lambda c: c.transfer(
            type=TransferType.MAIN_UMFUTURE, asset="usdt", amount=Decimal("12.50")
        ),
        "POST",
        "api.binance.com",
        "/sapi/v1/asset/transfer",
        [("type", "MAIN_UMFUTURE"), ("asset", "USDT"), ("amount", "12.5")],
        {"tranId": 13526853623},
        TransferResult(tran_id=13526853623),
    ),
    "transfer_isolated": Case(
        lambda c: c.transfer(
            type="ISOLATEDMARGIN_ISOLATEDMARGIN",
            asset="BNB",
            amount="1E-5",
            from_symbol="bnbusdt",
            to_symbol="BNBBTC",
        ),
        "POST",
        "api.binance.com",
        "/sapi/v1/asset/transfer",
        [
            ("type", "ISOLATEDMARGIN_ISOLATEDMARGIN"),
            ("asset", "BNB"),
            ("amount", "0.00001"),
            ("fromSymbol", "BNBUSDT"),
            ("toSymbol", "BNBBTC"),
        ],
        {"tranId": 1},
        TransferResult(tran_id=1),
    ),
    "transfer_new_type": Case(
        lambda c: c.transfer(type=RawType("MAIN_NEWWALLET"), asset="USDT", amount=3),
        "POST",
        "api.binance.com",
        "/sapi/v1/asset/transfer",
        [("type", "MAIN_NEWWALLET"), ("asset", "USDT"), ("amount", "3")],
        {"tranId": 2},
        TransferResult(tran_id=2),
    ),
    "transfer_to_futures": Case(
        lambda c: c.transfer_to_futures(asset="USDT", amount="1000", market=FuturesMarket.COINM),
        "POST",
        "api.binance.com",
        "/sapi/v1/asset/transfer",
        [("type", "MAIN_CMFUTURE"), ("asset", "USDT"), ("amount", "1000")],
        {"tranId": 3},
        TransferResult(tran_id=3),
    ),
    "transfer_from_futures": Case(
        lambda c: c.transfer_from_futures(asset="USDT", amount=0.5),
        "POST",
        "api.binance.com",
        "/sapi/v1/asset/transfer",
        [("type", "UMFUTURE_MAIN"), ("asset", "USDT"), ("amount", "0.5")],
        {"tranId": 4},
        TransferResult(tran_id=4),
    ),
    "pm_collect_asset": Case(
        lambda c: c.pm_collect_asset(asset="usdt"),
        "POST",
        "papi.binance.com",
        "/papi/v1/asset-collection",
        [("asset", "USDT")],
        {"msg": "success"},
        Acknowledgement(msg="success"),
    ),
    "pm_collect_asset_part": Case(
        lambda c: c.pm_collect_asset(asset="USDT", amount="10", future_type=FutureType.CM),
        "POST",
        "papi.binance.com",
        "/papi/v1/asset-collection",
        [("asset", "USDT"), ("amount", "10"), ("futureType", "CM")],
        {"msg": "success"},
        Acknowledgement(msg="success"),
    ),
    "pm_auto_collect": Case(
        lambda c: c.pm_auto_collect(),
        "POST",
        "papi.binance.com",
        "/papi/v1/auto-collection",
        [],
        {"msg": "success"},
        Acknowledgement(msg="success"),
    ),
    "pm_bnb_transfer": Case(
        lambda c: c.pm_bnb_transfer(amount="1.5", side=BnbTransferSide.TO_UM),
        "POST",
        "papi.binance.com",
        "/papi/v1/bnb-transfer",
        [("amount", "1.5"), ("transferSide", "TO_UM")],
        {"tranId": 100000001},
        BnbTransferResult(tran_id=100000001),
    ),
    "pmpro_auto_collect": Case(
        lambda c: c.pmpro_auto_collect(),
        "POST",
        "api.binance.com",
        "/sapi/v1/portfolio/auto-collection",
        [],
        {"msg": "success"},
        Acknowledgement(msg="success"),
    ),
    "pmpro_collect_asset": Case(
        lambda c: c.pmpro_collect_asset(asset="ETH"),
        "POST",
        "api.binance.com",
        "/sapi/v1/portfolio/asset-collection",
        [("asset", "ETH")],
        {"msg": "success"},
        Acknowledgement(msg="success"),
    ),
    "pmpro_bnb_transfer": Case(
        lambda c: c.pmpro_bnb_transfer(amount=Decimal("0.25"), side="FROM_UM"),
        "POST",
        "api.binance.com",
        "/sapi/v1/portfolio/bnb-transfer",
        [("amount", "0.25"), ("transferSide", "FROM_UM")],
        {"tranId": 7},
        BnbTransferResult(tran_id=7),
    ),
    "sub_account_margin_transfer": Case(
        lambda c: c.sub_account_margin_transfer(
            email="desk+1@example.com",
            asset="USDT",
            amount="50",
            direction=MarginTransferDirection.MARGIN_TO_SPOT,
        ),
        "POST",
        "api.binance.com",
        "/sapi/v1/sub-account/margin/transfer",
        [("email", "desk+1@example.com"), ("asset", "USDT"), ("amount", "50"), ("type", "2")],
        {"txnId": "2966662589"},
        MarginTransferResult(txn_id="2966662589"),
    ),
    "sub_account_transfer": Case(
        lambda c: c.sub_account_transfer(
            to_email="desk@example.com",
            from_account_type=SubAccountAccountType.SPOT,
            to_account_type="USDT_FUTURE",
            asset="USDT",
            amount="100",
            client_tran_id="rebal-1",
        ),
        "POST",
        "api.binance.com",
        "/sapi/v1/sub-account/universalTransfer",
        [
            ("toEmail", "desk@example.com"),
            ("fromAccountType", "SPOT"),
            ("toAccountType", "USDT_FUTURE"),
            ("clientTranId", "rebal-1"),
            ("asset", "USDT"),
            ("amount", "100"),
        ],
        {"tranId": 11945860693, "clientTranId": "rebal-1"},
        SubAccountTransferResult(tran_id=11945860693, client_tran_id="rebal-1"),
    ),
    "sub_account_transfer_isolated": Case(
        lambda c: c.sub_account_transfer(
            from_email="desk@example.com",
            from_account_type="ISOLATED_MARGIN",
            to_account_type="SPOT",
            symbol="btcusdt",
            asset="BTC",
            amount="0.1",
            client_tran_id="iso-1",
        ),
        "POST",
        "api.binance.com",
        "/sapi/v1/sub-account/universalTransfer",
        [
            ("fromEmail", "desk@example.com"),
            ("fromAccountType", "ISOLATED_MARGIN"),
            ("toAccountType", "SPOT"),
            ("clientTranId", "iso-1"),
            ("symbol", "BTCUSDT"),
            ("asset", "BTC"),
            ("amount", "0.1"),
        ],
        {"tranId": 5},
        SubAccountTransferResult(tran_id=5, client_tran_id="iso-1"),
    ),
}


@pytest.mark.parametrize("name", CASES)
async def test_each_endpoint_is_sent_exactly_as_binance_documents(
    name: str, fake: FakeBinance, client: Client
) -> None:
    """Method, host, path, parameters in order, recvWindow, timestamp and a valid HMAC."""
    case = CASES[name]
    fake.script(case.method, case.path, ok(case.answer))
    result = await case.call(client)
    assert result == case.result
    (request,) = fake.transfers
    assert (request.method, request.url.scheme, request.url.host, request.url.path) == (
        case.method,
        "https",
        case.host,
        case.path,
    )
    assert request.headers["X-MBX-APIKEY"] == API_KEY
    params = wire_params(request)
    assert params[: len(case.params)] == case.params
    assert [k for k, _ in params[len(case.params) :]] == ["recvWindow", "timestamp", "signature"]
    assert dict(params)["recvWindow"] == "5000"
    assert abs(int(dict(params)["timestamp"]) - fake.server_ms) < 5000
    payload, signature = payload_and_signature(request)
    assert signature == expected_hmac(payload)
    if case.method == "POST":
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert request.url.query == b""


async def test_email_is_signed_percent_encoded(fake: FakeBinance, client: Client) -> None:
    """'@' and '+' are percent-encoded on the wire, and the signature covers those bytes."""
    case = CASES["sub_account_margin_transfer"]
    fake.script(case.method, case.path, ok(case.answer))
    await case.call(client)
    (request,) = fake.transfers
    assert request.content.startswith(b"email=desk%2B1%40example.com&")
    payload, signature = payload_and_signature(request)
    assert signature == expected_hmac(payload)


async def test_server_time_is_unsigned(fake: FakeBinance, client: Client) -> None:
    """GET /api/v3/time carries no key, timestamp or signature."""
    answer = await client.server_time()
    assert answer == ServerTime(server_time=fake.server_ms)
    assert answer.datetime == datetime(2026, 1, 1, tzinfo=UTC)
    request = fake.requests[-1]
    assert request.url.host == "api.binance.com" and request.url.query == b""
    assert "X-MBX-APIKEY" not in request.headers


async def test_the_clock_is_synced_before_the_first_signed_request(
    fake: FakeBinance, client: Client
) -> None:
    """timestamp follows Binance's clock, not the local one."""
    fake.server_ms = 1_900_000_000_000  # Binance far ahead of this machine
    fake.script("POST", "/papi/v1/auto-collection", ok({"msg": "success"}))
    await client.pm_auto_collect()
    assert [r.url.path for r in fake.requests] == ["/api/v3/time", "/papi/v1/auto-collection"]
    sent = int(dict(wire_params(fake.requests[1]))["timestamp"])
    assert abs(sent - 1_900_000_000_000) < 1000


async def test_recv_window_per_call(fake: FakeBinance, client: Client) -> None:
    """recv_window overrides the client's default on one call."""
    fake.script("POST", "/sapi/v1/asset/transfer", ok({"tranId": 1}))
    await client.transfer(type="MAIN_MARGIN", asset="BTC", amount=1, recv_window=60000)
    assert dict(wire_params(fake.transfers[0]))["recvWindow"] == "60000"


async def test_transfer_history_pages_until_the_total(fake: FakeBinance, client: Client) -> None:
    """The history iterator asks page after page and stops at Binance's total."""

    def rows(first: int, n: int) -> list[dict[str, Any]]:
        return [
            {
                "asset": "USDT",
                "amount": f"{i}.5",
                "type": "MAIN_UMFUTURE",
                "status": "CONFIRMED",
                "tranId": i,
                "timestamp": 1_700_000_000_000 + i,
            }
            for i in range(first, first + n)
        ]

    fake.script(
        "GET",
        "/sapi/v1/asset/transfer",
        ok({"total": 5, "rows": rows(0, 2)}),
        ok({"total": 5, "rows": rows(2, 2)}),
        ok({"total": 5, "rows": rows(4, 1)}),
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    seen = [
        r
        async for r in client.transfer_history(
            type=TransferType.MAIN_UMFUTURE, start_time=start, page_size=2
        )
    ]
    assert [r.tran_id for r in seen] == [0, 1, 2, 3, 4]
    assert seen[4].amount == Decimal("4.5")
    pages = [dict(wire_params(r)) for r in fake.transfers]
    assert [p["current"] for p in pages] == ["1", "2", "3"]
    assert all(p["size"] == "2" and p["startTime"] == "1767225600000" for p in pages)
    assert all(
        r.method == "GET" and r.url.path == "/sapi/v1/asset/transfer" for r in fake.transfers
    )
    payload, signature = payload_and_signature(fake.transfers[0])
    assert signature == expected_hmac(payload)


async def test_sub_account_history_pages(fake: FakeBinance, client: Client) -> None:
    """The sub-account history iterates `page` until a short page."""
    row = {
        "tranId": 9,
        "fromEmail": "a@example.com",
        "toEmail": "b@example.com",
        "asset": "BNB",
        "amount": "0.01",
        "createTimeStamp": 1640317374000,
        "fromAccountType": "USDT_FUTURE",
        "toAccountType": "SPOT",
        "status": "SUCCESS",
        "clientTranId": "x-1",
    }
    fake.script(
        "GET",
        "/sapi/v1/sub-account/universalTransfer",
        ok({"result": [row, row], "totalCount": 3}),
        ok({"result": [row], "totalCount": 3}),
    )
    seen = [r async for r in client.sub_account_transfer_history(client_tran_id="x-1", page_size=2)]
    assert len(seen) == 3 and seen[0].from_account_type is SubAccountAccountType.USDT_FUTURE
    assert [dict(wire_params(r))["page"] for r in fake.transfers] == ["1", "2"]
    assert dict(wire_params(fake.transfers[0]))["clientTranId"] == "x-1"


BAD_CALLS: dict[str, Call] = {
    "zero amount": lambda c: c.transfer(type="MAIN_MARGIN", asset="USDT", amount=0),
    "nine decimals": lambda c: c.transfer(type="MAIN_MARGIN", asset="USDT", amount="0.000000001"),
    "negative amount": lambda c: c.transfer(type="MAIN_MARGIN", asset="USDT", amount="-1"),
    "nan amount": lambda c: c.transfer(type="MAIN_MARGIN", asset="USDT", amount=Decimal("NaN")),
    "infinite amount": lambda c: c.transfer(type="MAIN_MARGIN", asset="USDT", amount=float("inf")),
    "bool amount": lambda c: c.transfer(type="MAIN_MARGIN", asset="USDT", amount=True),
    "noisy float": lambda c: c.transfer(type="MAIN_MARGIN", asset="USDT", amount=0.1 + 0.2),
    "empty asset": lambda c: c.transfer(type="MAIN_MARGIN", asset="", amount=1),
    "bad type": lambda c: c.transfer(type="main_margin", asset="USDT", amount=1),
    "missing fromSymbol": lambda c: c.transfer(type="ISOLATEDMARGIN_MARGIN", asset="BTC", amount=1),
    "missing toSymbol": lambda c: c.transfer(
        type=TransferType.MARGIN_ISOLATEDMARGIN, asset="BTC", amount=1
    ),
    "missing both symbols": lambda c: c.transfer(
        type="ISOLATEDMARGIN_ISOLATEDMARGIN", asset="BTC", amount=1, from_symbol="BTCUSDT"
    ),
    "same symbols, another case": lambda c: c.transfer(
        type="ISOLATEDMARGIN_ISOLATEDMARGIN",
        asset="BTC",
        amount=1,
        from_symbol="btcusdt",
        to_symbol="BTCUSDT",
    ),
    "same symbols": lambda c: c.transfer(
        type="ISOLATEDMARGIN_ISOLATEDMARGIN",
        asset="BTC",
        amount=1,
        from_symbol="BTCUSDT",
        to_symbol="BTCUSDT",
    ),
    "forbidden fromSymbol": lambda c: c.transfer(
        type="MAIN_MARGIN", asset="BTC", amount=1, from_symbol="BTCUSDT"
    ),
    "forbidden toSymbol": lambda c: c.transfer(
        type="ISOLATEDMARGIN_MARGIN",
        asset="BTC",
        amount=1,
        from_symbol="BTCUSDT",
        to_symbol="ETHUSDT",
    ),
    "malformed symbol": lambda c: c.transfer(
        type="ISOLATEDMARGIN_MARGIN", asset="BTC", amount=1, from_symbol="BTC-USDT"
    ),
    "recvWindow too big": lambda c: c.transfer(
        type="MAIN_MARGIN", asset="USDT", amount=1, recv_window=60001
    ),
    "amount without futureType": lambda c: c.pm_collect_asset(asset="USDT", amount="1"),
    "futureType without amount": lambda c: c.pm_collect_asset(
        asset="USDT", future_type=FutureType.UM
    ),
    "bad futureType": lambda c: c.pm_collect_asset(asset="USDT", amount=1, future_type="XX"),  # type: ignore[arg-type]
    "PM collects no BNB": lambda c: c.pm_collect_asset(asset="bnb"),
    "PM Pro collects no BNB": lambda c: c.pmpro_collect_asset(asset="BNB"),
    "bad BNB side": lambda c: c.pm_bnb_transfer(amount=1, side="TO_CM"),  # type: ignore[arg-type]
    "zero BNB": lambda c: c.pmpro_bnb_transfer(amount=0, side=BnbTransferSide.TO_UM),
    "bad email": lambda c: c.sub_account_margin_transfer(
        email="not-an-email",
        asset="USDT",
        amount=1,
        direction=MarginTransferDirection.SPOT_TO_MARGIN,
    ),
    "bad direction": lambda c: c.sub_account_margin_transfer(
        email="a@example.com",
        asset="USDT",
        amount=1,
        direction=3,  # type: ignore[arg-type]
    ),
    "bool direction": lambda c: c.sub_account_margin_transfer(
        email="a@example.com",
        asset="USDT",
        amount=1,
        direction=True,  # type: ignore[arg-type]
    ),
    "no email on same types": lambda c: c.sub_account_transfer(
        from_account_type="SPOT", to_account_type="SPOT", asset="USDT", amount=1
    ),
    "symbol without isolated": lambda c: c.sub_account_transfer(
        to_email="a@example.com",
        from_account_type="SPOT",
        to_account_type="USDT_FUTURE",
        symbol="BTCUSDT",
        asset="USDT",
        amount=1,
    ),
    "isolated without symbol": lambda c: c.sub_account_transfer(
        to_email="a@example.com",
        from_account_type="SPOT",
        to_account_type="ISOLATED_MARGIN",
        asset="USDT",
        amount=1,
    ),
    "bad clientTranId": lambda c: c.sub_account_transfer(
        to_email="a@example.com",
        from_account_type="SPOT",
        to_account_type="SPOT",
        asset="USDT",
        amount=1,
        client_tran_id="has space",
    ),
    "bad account type": lambda c: c.sub_account_transfer(
        to_email="a@example.com",
        from_account_type="spot",
        to_account_type="SPOT",
        asset="USDT",
        amount=1,
    ),
}

BAD_ITERATORS: dict[str, Callable[[Client], Any]] = {
    "history page too big": lambda c: c.transfer_history(type="MAIN_MARGIN", page_size=101),
    "history start after end": lambda c: c.transfer_history(
        type="MAIN_MARGIN", start_time=1_767_225_600_001, end_time=1_767_225_600_000
    ),
    "history naive datetime": lambda c: c.transfer_history(
        type="MAIN_MARGIN",
        start_time=datetime(2026, 1, 1),  # noqa: DTZ001
    ),
    "history missing fromSymbol": lambda c: c.transfer_history(type="ISOLATEDMARGIN_MARGIN"),
    "sub history both emails": lambda c: c.sub_account_transfer_history(
        from_email="a@example.com", to_email="b@example.com"
    ),
    "sub history over 7 days": lambda c: c.sub_account_transfer_history(
        start_time=1_767_225_600_000, end_time=1_767_225_600_000 + 7 * 24 * 3600 * 1000
    ),
}


@pytest.mark.parametrize("name", BAD_CALLS)
async def test_bad_input_is_refused_before_anything_is_sent(
    name: str, fake: FakeBinance, client: Client
) -> None:
    """A typed error, no request at all (not even a clock sync), no weight spent."""
    with pytest.raises(InvalidInputError):
        await BAD_CALLS[name](client)
    assert fake.requests == []
    assert [p for p in client.governor.snapshot() if p.used or p.waiters] == []  # no weight


@pytest.mark.parametrize("name", BAD_ITERATORS)
def test_bad_history_queries_fail_when_called(name: str, fake: FakeBinance, client: Client) -> None:
    """History arguments are checked at call time, before iterating."""
    with pytest.raises(InvalidInputError):
        BAD_ITERATORS[name](client)
    assert fake.requests == []


def test_constructor_checks() -> None:
    """Empty keys, a too-large recvWindow and conflicting HTTP options fail at once."""
    with pytest.raises(InvalidInputError):
        Client("", SECRET)
    with pytest.raises(InvalidInputError, match="recv_window"):
        Client(API_KEY, SECRET, recv_window=70000)
    with pytest.raises(InvalidInputError, match="not both"):
        Client(
            API_KEY,
            SECRET,
            http_client=httpx.AsyncClient(),
            transport=httpx.MockTransport(FakeBinance()),
        )


async def test_own_http_client_is_left_open(fake: FakeBinance) -> None:
    """The SDK closes only the httpx client it created."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    async with Client(API_KEY, SECRET, http_client=http) as c:
        await c.server_time()
    assert not http.is_closed
    await http.aclose()

    created = Client(API_KEY, SECRET, transport=httpx.MockTransport(fake))
    await created.aclose()
    assert created._http.is_closed


async def test_base_urls_are_configurable(fake: FakeBinance) -> None:
    """api_url and papi_url point the client elsewhere (api1..4, a proxy, a simulator)."""
    async with Client(
        API_KEY,
        SECRET,
        api_url="https://api3.binance.com/",
        papi_url="http://127.0.0.1:9/",
        transport=httpx.MockTransport(fake),
    ) as c:
        fake.script("POST", "/papi/v1/auto-collection", ok({"msg": "success"}))
        await c.pm_auto_collect()
    assert [str(r.url.copy_with(query=None)) for r in fake.requests] == [
        "https://api3.binance.com/api/v3/time",
        "http://127.0.0.1:9/papi/v1/auto-collection",
    ]


async def test_clients_share_one_governor(fake: FakeBinance) -> None:
    """Two accounts behind one IP share its IP pools but keep their own UID pools."""
    governor = Governor()
    fake.script("POST", "/sapi/v1/sub-account/universalTransfer", ok({"tranId": 1}))
    async with (
        Client(API_KEY, SECRET, governor=governor, transport=httpx.MockTransport(fake)) as a,
        Client(
            "other-key-" + "x" * 20, SECRET, governor=governor, transport=httpx.MockTransport(fake)
        ) as b,
    ):
        for c in (a, b):
            await c.sub_account_transfer(
                to_email="d@example.com",
                from_account_type="SPOT",
                to_account_type="SPOT",
                asset="USDT",
                amount=1,
            )
    pools = {p.key: p.used for p in governor.snapshot() if "universalTransfer" in p.key}
    assert pools["sapi-ip POST /sapi/v1/sub-account/universalTransfer"] == 2
    uid_pools = [used for key, used in pools.items() if key.startswith("sapi-uid")]
    assert uid_pools == [360, 360]


# -- issue 8: keys, closed clients, argument checks, idempotent sub-account transfers --

BAD_KEYS = {
    "trailing newline": API_KEY + "\n",
    "inner space": API_KEY[:10] + " " + API_KEY[10:],
    "tab": "\t" + API_KEY,
    "non-ASCII": API_KEY[:-1] + "é",
    "control character": API_KEY[:-1] + "\x7f",
    "carriage return": API_KEY + "\r",
}


@pytest.mark.parametrize("name", BAD_KEYS)
def test_illegal_api_keys_are_refused_at_construction(name: str) -> None:
    """Only printable ASCII without whitespace; the error never shows the key."""
    key = BAD_KEYS[name]
    with pytest.raises(InvalidInputError) as caught:
        Client(key, SECRET, transport=httpx.MockTransport(FakeBinance()))
    text = str(caught.value) + repr(caught.value)
    assert API_KEY[:12] not in text and API_KEY[-12:] not in text
    assert caught.value.__cause__ is None and caught.value.__context__ is None


async def test_a_closed_client_refuses_every_call_without_spending_weight(
    fake: FakeBinance,
) -> None:
    """After aclose() or leaving `async with`, calls fail typed, before the governor is asked."""
    governor = Governor()
    async with Client(
        API_KEY, SECRET, transport=httpx.MockTransport(fake), governor=governor
    ) as used:
        pass
    closed = Client(API_KEY, SECRET, transport=httpx.MockTransport(fake), governor=governor)
    await closed.aclose()
    for client in (used, closed):
        for name in ("transfer", "sub_account_transfer", "pm_auto_collect", "server_time"):
            with pytest.raises(ClientClosedError):
                await CASES_BY_METHOD[name](client)
        with pytest.raises(ClientClosedError):
            client.transfer_history(type="MAIN_MARGIN")
        with pytest.raises(ClientClosedError):
            async with client:
                pass
    assert fake.requests == []
    assert [p for p in governor.snapshot() if p.used or p.waiters] == []  # no weight
    assert issubclass(ClientClosedError, ConfigurationError)


async def test_closing_twice_is_harmless(fake: FakeBinance) -> None:
    """aclose() is idempotent."""
    client = Client(API_KEY, SECRET, transport=httpx.MockTransport(fake))
    await client.aclose()
    await client.aclose()


CASES_BY_METHOD: dict[str, Call] = {
    "transfer": CASES["transfer"].call,
    "sub_account_transfer": CASES["sub_account_transfer"].call,
    "pm_auto_collect": CASES["pm_auto_collect"].call,
    "server_time": lambda c: c.server_time(),
}

BAD_ARGUMENTS: dict[str, Call] = {
    "market by member name": lambda c: c.transfer_to_futures(
        asset="USDT",
        amount=1,
        market="USDM",  # type: ignore[arg-type]
    ),
    "market from futures": lambda c: c.transfer_from_futures(
        asset="USDT",
        amount=1,
        market="spot",  # type: ignore[arg-type]
    ),
    "max_wait as str": lambda c: c.transfer(
        type="MAIN_MARGIN",
        asset="USDT",
        amount=1,
        max_wait="5",  # type: ignore[arg-type]
    ),
    "negative max_wait": lambda c: c.pm_auto_collect(max_wait=-1),
    "nan max_wait": lambda c: c.pm_auto_collect(max_wait=float("nan")),
    "infinite max_wait": lambda c: c.server_time(max_wait=float("inf")),
    "bool max_wait": lambda c: c.server_time(max_wait=True),
    "misspelt transfer type": lambda c: c.transfer(type="MAIN_UMFUTURES", asset="USDT", amount=1),
    "misspelt account type": lambda c: c.sub_account_transfer(
        to_email="a@example.com",
        from_account_type="SPOT",
        to_account_type="FUTURES",
        asset="USDT",
        amount=1,
    ),
}

BAD_HISTORY_ARGUMENTS: dict[str, Callable[[Client], Any]] = {
    "start_time in seconds": lambda c: c.transfer_history(
        type="MAIN_MARGIN", start_time=1_700_000_000
    ),
    "end_time in microseconds": lambda c: c.transfer_history(
        type="MAIN_MARGIN", end_time=1_700_000_000_000_000
    ),
    "sub start_time in seconds": lambda c: c.sub_account_transfer_history(start_time=1_700_000_000),
    "misspelt history type": lambda c: c.transfer_history(type="MAIN_UMFUTURES"),
    "max_wait as str": lambda c: c.transfer_history(
        type="MAIN_MARGIN",
        max_wait="1",  # type: ignore[arg-type]
    ),
}


@pytest.mark.parametrize("name", BAD_ARGUMENTS)
async def test_unchecked_arguments_are_now_refused_typed(
    name: str, fake: FakeBinance, client: Client
) -> None:
    """Issue 8 defect 9: InvalidInputError, nothing sent, no weight spent."""
    with pytest.raises(InvalidInputError):
        await BAD_ARGUMENTS[name](client)
    assert fake.requests == []
    assert [p for p in client.governor.snapshot() if p.used or p.waiters] == []  # no weight


@pytest.mark.parametrize("name", BAD_HISTORY_ARGUMENTS)
def test_unchecked_history_arguments_are_refused(
    name: str, fake: FakeBinance, client: Client
) -> None:
    """Seconds where milliseconds are due, misspelt types: refused when called."""
    with pytest.raises(InvalidInputError):
        BAD_HISTORY_ARGUMENTS[name](client)
    assert fake.requests == []


def test_seconds_are_refused_with_a_hint(client: Client) -> None:
    """The message tells the caller what to pass instead."""
    with pytest.raises(InvalidInputError, match="milliseconds"):
        client.transfer_history(type="MAIN_MARGIN", start_time=1_700_000_000)


def test_bad_client_max_wait_is_refused() -> None:
    """The client's default max_wait is checked at construction too."""
    with pytest.raises(InvalidInputError, match="max_wait"):
        Client(API_KEY, SECRET, max_wait=-0.5)


async def test_a_type_binance_added_later_goes_through_raw_type(
    fake: FakeBinance, client: Client
) -> None:
    """RawType is the explicit escape hatch for names this release does not know."""
    fake.script("POST", "/sapi/v1/asset/transfer", ok({"tranId": 8}))
    fake.script("POST", "/sapi/v1/sub-account/universalTransfer", ok({"tranId": 9}))
    await client.transfer(type=RawType("MAIN_NEWWALLET"), asset="USDT", amount=1)
    await client.sub_account_transfer(
        to_email="a@example.com",
        from_account_type="SPOT",
        to_account_type=RawType("EARN_WALLET"),
        asset="USDT",
        amount=1,
    )
    assert dict(wire_params(fake.transfers[0]))["type"] == "MAIN_NEWWALLET"
    assert dict(wire_params(fake.transfers[1]))["toAccountType"] == "EARN_WALLET"
    with pytest.raises(InvalidInputError):
        RawType("lower_case")


async def test_sub_account_transfers_get_a_client_tran_id_by_default(
    fake: FakeBinance, client: Client
) -> None:
    """Without one given, a unique clientTranId is sent and returned in the result."""
    fake.script(
        "POST",
        "/sapi/v1/sub-account/universalTransfer",
        ok({"tranId": 1}),  # Binance may leave it out: we still return what we sent
    )
    ids = []
    for _ in range(3):
        result = await client.sub_account_transfer(
            to_email="a@example.com",
            from_account_type="SPOT",
            to_account_type="SPOT",
            asset="USDT",
            amount=1,
        )
        sent = dict(wire_params(fake.transfers[-1]))["clientTranId"]
        assert result.client_tran_id == sent
        ids.append(sent)
    assert len(set(ids)) == 3
    assert all(i.startswith("bt-") and len(i) <= 32 for i in ids)


BAD_INPUT_BEFORE_SENDING: dict[str, Call] = {
    "max_wait a huge int": lambda c: c.transfer(
        type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1", max_wait=10**400
    ),
    "reconcile something else": lambda c: c.reconcile(ValueError("not ours")),  # type: ignore[arg-type]
    "start_time before 1970": lambda c: anext(
        c.transfer_history(
            type=TransferType.MAIN_UMFUTURE, start_time=datetime(1, 1, 1, tzinfo=UTC)
        )
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT_BEFORE_SENDING))
async def test_bad_input_is_refused_typed_before_sending(case: str, fake: FakeBinance) -> None:
    """A huge max_wait, reconcile(not an unknown outcome), a time before 2017: typed, unsent."""
    fake.script("POST", "/sapi/v1/asset/transfer", ok({"tranId": 1}))
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake)) as client:
        with pytest.raises(InvalidInputError):
            await BAD_INPUT_BEFORE_SENDING[case](client)
    assert fake.requests == []


def test_a_huge_settle_margin_is_a_typed_error() -> None:
    """settle_margin=10**400: InvalidInputError at construction, not OverflowError."""
    with pytest.raises(InvalidInputError, match="settle_margin"):
        Client(API_KEY, SECRET, settle_margin=10**400)


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("papi_url", "http://[::1"),
        ("api_url", "ftp://api.binance.com"),
        ("api_url", "api.binance.com"),
        ("papi_url", "https://"),
        ("api_url", 443),
    ],
)
def test_a_bad_base_url_is_refused_at_construction_without_the_key(name: str, url: Any) -> None:
    """api_url/papi_url: http(s) with a host, else ConfigurationError, unchained, key-free."""
    with pytest.raises(ConfigurationError, match=name) as caught:
        Client(API_KEY, SECRET, **{name: url})
    error = caught.value
    assert error.__cause__ is None and error.__context__ is None
    assert API_KEY not in str(error)
    tb = error.__traceback__
    while tb is not None:
        assert all(API_KEY not in repr(v) for v in tb.tb_frame.f_locals.values())
        tb = tb.tb_next


def test_money_safety_options_are_checked_at_construction() -> None:
    """on_unknown, settle_margin and on_detached: typed errors, before any call."""
    with pytest.raises(InvalidInputError, match="on_unknown"):
        Client(API_KEY, SECRET, on_unknown="ignore")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="settle_margin"):
        Client(API_KEY, SECRET, settle_margin=-1)
    with pytest.raises(InvalidInputError, match="on_detached"):
        Client(API_KEY, SECRET, on_detached="print")  # type: ignore[arg-type]


async def test_on_unknown_per_call_is_checked_before_sending(
    fake: FakeBinance, client: Client
) -> None:
    """A bad per-call on_unknown costs no weight either."""
    with pytest.raises(InvalidInputError, match="on_unknown"):
        await client.transfer(
            type="MAIN_MARGIN",
            asset="USDT",
            amount=1,
            on_unknown="later",  # type: ignore[arg-type]
        )
    assert fake.requests == []
    assert [p for p in client.governor.snapshot() if p.used or p.waiters] == []  # no weight
