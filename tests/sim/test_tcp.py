"""The simulated exchange over TCP on loopback: our client, real faults, an independent client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import anyio
import httpx
import pytest

from binance_transfers import (
    BnbTransferSide,
    Client,
    OutcomeUnknownError,
    SubAccountAccountType,
    TransferType,
)
from binance_transfers.sim import (
    DEMO_API_KEY,
    DEMO_API_SECRET,
    Account,
    Fault,
    SimServer,
    SimulatedExchange,
    serve,
)

from ..conftest import demo_exchange

DESK = "desk-1@sim.invalid"


@pytest.fixture
def exchange() -> SimulatedExchange:
    """A demo exchange on the real clock (requests cross real sockets)."""
    return demo_exchange()


@pytest.fixture
async def server(exchange: SimulatedExchange) -> AsyncIterator[SimServer]:
    """uvicorn on 127.0.0.1, port 0, stopped at the end of the test."""
    async with serve(exchange) as running:
        yield running


def tcp_client(server: SimServer, **kwargs: Any) -> Client:
    return Client(DEMO_API_KEY, DEMO_API_SECRET, api_url=server.url, papi_url=server.url, **kwargs)


def demo(exchange: SimulatedExchange) -> Account:
    assert exchange.demo_account is not None
    return exchange.demo_account


async def test_client_methods_over_loopback(exchange: SimulatedExchange, server: SimServer) -> None:
    """Transfers, PM calls, sub-account calls and histories work over a real socket."""
    assert server.url.startswith("http://127.0.0.1:") and server.port > 0
    account = demo(exchange)
    async with tcp_client(server) as client:
        served = await client.server_time()
        done = await client.transfer(type=TransferType.MAIN_MARGIN, asset="USDT", amount="10")
        await client.transfer_to_futures(asset="USDT", amount="20")
        rows = [r async for r in client.transfer_history(type=TransferType.MAIN_MARGIN)]
        await client.pm_collect_asset(asset="USDT")
        await client.pm_bnb_transfer(amount="1", side=BnbTransferSide.FROM_UM)
        await client.sub_account_transfer(
            to_email=DESK,
            from_account_type=SubAccountAccountType.SPOT,
            to_account_type=SubAccountAccountType.SPOT,
            asset="USDT",
            amount="3",
            client_tran_id="tcp-1",
        )
        [sub_row] = [r async for r in client.sub_account_transfer_history(client_tran_id="tcp-1")]
    assert abs(served.server_time - exchange.server_ms()) < 5000
    assert [r.tran_id for r in rows] == [done.tran_id]
    assert account.balance("USDT", "MARGIN") == Decimal(100010 + 100020)
    assert account.balance("BNB", "MARGIN") == Decimal(101)
    assert sub_row.to_email == DESK
    assert account.sub_accounts[DESK].balance("USDT") == Decimal(10003)
    assert {e.ip for e in exchange.ledger} == {"127.0.0.1"}
    assert exchange.ledger.over_limit() == []


async def test_dropped_connection_is_a_real_disconnect(
    exchange: SimulatedExchange, server: SimServer
) -> None:
    """Fault.drop over TCP closes the socket: unknown outcome, executed once, next call fine."""
    exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    async with tcp_client(server) as client:
        with pytest.raises(OutcomeUnknownError, match="RemoteProtocolError"):
            await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="8")
        await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
    assert [e.executed for e in exchange.ledger.entries("universal_transfer")] == [True, True]
    assert demo(exchange).balance("USDT", "UMFUTURE") == Decimal(100009)


async def test_late_answer_is_a_real_read_timeout(
    exchange: SimulatedExchange, server: SimServer
) -> None:
    """Fault.late(0.6) against a 0.2 s read timeout: the client times out, the transfer happened.

    A signed read first: the clock sync it needs is done before the transfer is
    timed (started in a minute's last seconds, the sync's permit waited for the
    next window, up to 4 s, and the test failed on the wall clock's phase)."""
    exchange.faults.add(Fault.late(0.6), endpoint="universal_transfer", times=1)
    timeout = httpx.Timeout(5.0, read=0.2)
    async with tcp_client(server, timeout=timeout) as client:
        await client.pm_balances()
        started = anyio.current_time()
        with pytest.raises(OutcomeUnknownError, match="ReadTimeout"):
            await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="2")
        assert 0.2 <= anyio.current_time() - started < 0.6
    assert demo(exchange).balance("USDT", "UMFUTURE") == Decimal(100002)


async def test_per_ip_pools_use_the_peers_address(
    exchange: SimulatedExchange, server: SimServer
) -> None:
    """Requests leaving from 127.0.0.2 have their own /api pool, keyed by the socket's peer."""
    path = f"{server.url}/api/v3/time"
    async with httpx.AsyncClient() as first:
        for _ in range(2):
            await first.get(path)
    other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(transport=other) as second:
        response = await second.get(path)
    assert response.headers["X-MBX-USED-WEIGHT-1M"] == "1"
    assert [e.ip for e in exchange.ledger] == ["127.0.0.1", "127.0.0.1", "127.0.0.2"]


async def test_unknown_path_or_method_is_refused_and_recorded(
    exchange: SimulatedExchange, server: SimServer
) -> None:
    """A path outside the endpoint table is 404, a wrong method 405; the ledger has both."""
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{server.url}/sapi/v1/capital/config/getall")).status_code == 404
        assert (await http.delete(f"{server.url}/sapi/v1/asset/transfer")).status_code == 405
    assert [(e.endpoint, e.status, e.path) for e in exchange.ledger] == [
        (None, 404, "/sapi/v1/capital/config/getall"),
        (None, 405, "/sapi/v1/asset/transfer"),
    ]


async def test_binance_connector_speaks_to_the_sim(
    exchange: SimulatedExchange, server: SimServer
) -> None:
    """binance-connector 3.x (parameters signed in the query, '@' unencoded) transfers over TCP."""
    from binance.error import ClientError
    from binance.spot import Spot

    spot = Spot(DEMO_API_KEY, DEMO_API_SECRET, base_url=server.url, show_limit_usage=True)

    def session() -> dict[str, Any]:
        out: dict[str, Any] = {}
        out["transfer"] = spot.user_universal_transfer(
            type="MAIN_UMFUTURE", asset="USDT", amount="5"
        )
        out["history"] = spot.user_universal_transfer_history(type="MAIN_UMFUTURE")
        out["sub"] = spot.sub_account_universal_transfer(
            fromAccountType="SPOT",
            toAccountType="SPOT",
            asset="USDT",
            amount="2",
            toEmail=DESK,
            clientTranId="bc-1",
        )
        try:
            spot.user_universal_transfer(type="OPTION_MAIN", asset="USDT", amount="1000000")
        except ClientError as exc:
            out["error"] = (exc.status_code, exc.error_code, exc.error_message)
        return out

    try:
        result = await anyio.to_thread.run_sync(session)
    finally:
        spot.session.close()
    transfer = result["transfer"]
    assert transfer["limit_usage"] == {"x-sapi-used-uid-weight-1m": "900"}
    tran_id = transfer["data"]["tranId"]
    assert [r["tranId"] for r in result["history"]["data"]["rows"]] == [tran_id]
    assert result["sub"]["data"]["clientTranId"] == "bc-1"
    assert result["error"] == (400, -5013, "Asset transfer failed: insufficient balance")
    account = demo(exchange)
    assert account.balance("USDT", "UMFUTURE") == Decimal(100005)
    assert account.sub_accounts[DESK].balance("USDT") == Decimal(10002)
    # The connector signs and sends the query string with a raw '@' and an empty body.
    [sub_call] = exchange.ledger.entries("sub_account_transfer")
    assert sub_call.executed and sub_call.signature is not None


async def test_answers_are_not_held_back_by_nagle(server: SimServer) -> None:
    """20 sequential round trips take well under the 20 x 40 ms a delayed ACK would add."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        await http.get("/api/v3/time")  # connect first
        started = anyio.current_time()
        for _ in range(20):
            await http.get("/api/v3/time")
        assert anyio.current_time() - started < 0.5


async def test_reset_mid_body_over_tcp(exchange: SimulatedExchange, server: SimServer) -> None:
    """Fault.reset over TCP: headers and half the body, then EOF; the SDK says outcome unknown."""
    exchange.faults.add(Fault.reset(), endpoint="server_time", times=1)
    exchange.faults.add(Fault.reset(), endpoint="universal_transfer", times=1)
    async with (
        httpx.AsyncClient(base_url=server.url) as http,
        http.stream("GET", "/api/v3/time") as response,
    ):
        assert response.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
            await response.aread()
    async with tcp_client(server) as client:
        with pytest.raises(OutcomeUnknownError):
            await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="4")
    [entry] = exchange.ledger.entries("universal_transfer")
    assert (entry.status, entry.executed, entry.fault) == (200, True, "reset")
    assert demo(exchange).balance("USDT", "UMFUTURE") == Decimal(100004)
