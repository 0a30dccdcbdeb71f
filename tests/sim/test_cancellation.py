"""A caller that gives up does not take the request back: in-process as over TCP."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
import httpx
import pytest

from binance_transfers.sim import (
    DEMO_API_KEY,
    DEMO_API_SECRET,
    Account,
    Fault,
    LedgerEntry,
    SimulatedExchange,
    serve,
)
from binance_transfers.sim._transport import SimTransport

from .conftest import DOC_KEY, DOC_SECRET, Wire, fake_time, hmac_hex

TRANSFER = [("type", "MAIN_UMFUTURE"), ("asset", "USDT"), ("amount", "3")]


def is_transfer(entry: LedgerEntry) -> bool:
    return entry.endpoint == "universal_transfer"


async def arrival(exchange: SimulatedExchange, within: float = 60.0) -> LedgerEntry:
    """The transfer's ledger entry, once the exchange has handled it (failing after ``within``)."""
    with anyio.fail_after(within):
        return await exchange.ledger.wait_for(is_transfer)


@fake_time
async def test_cancelled_caller_in_process_still_moves_the_money(
    wire: Wire, master: Account
) -> None:
    """Cancelled while its request travels (0.5 s), the transfer still arrives and executes."""
    wire.exchange.faults.add(Fault.latency(0.5))
    with anyio.move_on_after(0.1) as scope:
        await wire.call("universal_transfer", TRANSFER)
    assert scope.cancelled_caught
    assert len(wire.exchange.ledger) == 0  # still on its way
    entry = await arrival(wire.exchange)
    assert anyio.current_time() == pytest.approx(0.5)
    assert entry.executed
    assert master.balance("USDT", "UMFUTURE") == Decimal(503)


@fake_time
async def test_cancelled_while_the_answer_is_late_in_process(wire: Wire, master: Account) -> None:
    """Executed, answer held back 5 s, caller cancelled at 1 s: it executed once, at arrival."""
    wire.exchange.faults.add(Fault.late(5.0))
    with anyio.move_on_after(1.0):
        await wire.call("universal_transfer", TRANSFER)
    assert [e.executed for e in wire.exchange.ledger] == [True]
    assert master.balance("USDT", "UMFUTURE") == Decimal(503)
    await anyio.sleep(10)  # the late answer leaves into the void; nothing else happens
    assert len(wire.exchange.ledger.executions()) == 1


@fake_time
async def test_request_slower_than_the_read_timeout_still_arrives(
    wire: Wire, master: Account
) -> None:
    """ReadTimeout at 1 s while the request takes 5 s to arrive: it executes at 5 s anyway."""
    wire.exchange.faults.add(Fault.latency(5.0))
    with pytest.raises(httpx.ReadTimeout):
        await wire.call("universal_transfer", TRANSFER, read_timeout=1.0)
    assert master.balance("USDT", "UMFUTURE") == Decimal(500)
    await arrival(wire.exchange)
    assert anyio.current_time() == pytest.approx(5.0)
    assert master.balance("USDT", "UMFUTURE") == Decimal(503)


def test_cancelled_caller_in_process_under_trio() -> None:
    """The same under trio: the exchange's task outlives the cancelled caller."""
    import trio

    exchange = SimulatedExchange()
    account = exchange.add_account(
        api_key=DOC_KEY, api_secret=DOC_SECRET, balances={"MAIN": {"USDT": "10"}}
    )
    exchange.faults.add(Fault.latency(0.05))

    async def main() -> Decimal:
        async with httpx.AsyncClient(
            transport=exchange.transport(), base_url=exchange.api_url
        ) as http:
            with trio.move_on_after(0.01):
                await Wire(exchange, http).call("universal_transfer", TRANSFER)
            assert len(exchange.ledger) == 0
            await arrival(exchange, 5.0)
        return account.balance("USDT", "UMFUTURE")

    assert trio.run(main) == Decimal(3)


async def test_on_write_hook_runs_before_the_request_leaves(wire: Wire) -> None:
    """The SDK's on_write hook is awaited first; if it raises, nothing reaches the exchange."""
    seen: list[int] = []

    async def stamp() -> None:
        seen.append(len(wire.exchange.ledger))

    async def refuse() -> None:
        raise LookupError("permit gone")

    transport = wire.exchange.transport()
    request = httpx.Request(
        "GET",
        f"{wire.exchange.api_url}/api/v3/time",
        extensions={"binance_transfers.on_write": stamp},
    )
    assert (await transport.handle_async_request(request)).status_code == 200
    assert seen == [0]
    assert len(wire.exchange.ledger) == 1
    refused = httpx.Request(
        "GET",
        f"{wire.exchange.api_url}/api/v3/time",
        extensions={"binance_transfers.on_write": refuse},
    )
    with pytest.raises(LookupError, match="permit gone"):
        await transport.handle_async_request(refused)
    await anyio.sleep(0.01)
    assert len(wire.exchange.ledger) == 1


async def test_cancelled_caller_over_tcp_still_moves_the_money() -> None:
    """Over loopback: the caller gives up at 0.3 s, the server executes at 1 s all the same."""
    exchange = SimulatedExchange()
    demo = exchange.add_demo_account()
    exchange.faults.add(Fault.latency(1.0), endpoint="universal_transfer")
    payload = f"type=MAIN_UMFUTURE&asset=USDT&amount=3&timestamp={exchange.server_ms()}"
    signed = f"{payload}&signature={hmac_hex(payload, DEMO_API_SECRET)}"
    headers = {"X-MBX-APIKEY": DEMO_API_KEY, "Content-Type": "application/x-www-form-urlencoded"}
    async with serve(exchange) as server, httpx.AsyncClient(base_url=server.url) as http:
        # Connected first, so the POST leaves at once even on a busy machine.
        await http.get("/api/v3/time")
        with anyio.move_on_after(0.3) as scope:
            await http.post("/sapi/v1/asset/transfer", content=signed, headers=headers)
        assert scope.cancelled_caught
        assert demo.balance("USDT", "UMFUTURE") == Decimal(100000)
        entry = await arrival(exchange, 10.0)
    assert entry.executed
    assert demo.balance("USDT", "UMFUTURE") == Decimal(100003)


@fake_time
async def test_a_failure_nobody_waits_for_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """An app error after the caller gave up is logged, not lost; one seen by its caller is not."""

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        await anyio.sleep(1.0)
        raise RuntimeError("handler bug")

    transport = SimTransport(broken)
    with anyio.move_on_after(0.5):
        await transport.handle_async_request(httpx.Request("GET", "http://sim.invalid/x"))
    assert caplog.records == []
    await anyio.sleep(1.0)
    [record] = caplog.records
    assert record.levelname == "ERROR"
    assert "after its caller gave up" in record.getMessage()
    assert record.exc_info is not None and "handler bug" in str(record.exc_info[1])
    caplog.clear()
    with pytest.raises(RuntimeError, match="handler bug"):
        await transport.handle_async_request(httpx.Request("GET", "http://sim.invalid/x"))
    assert caplog.records == []
