"""The ledger: what arrived, what it weighed, in which window, and what executed twice."""

from __future__ import annotations

import anyio
import httpx

from binance_transfers import Limits, LoopClock, PoolKind
from binance_transfers.sim import Account, Fault, Overrun, Report, SimulatedExchange, report, totals

from .conftest import DOC_KEY, DOC_SECRET, EPOCH, Wire, fake_time, hmac_hex

TRANSFER = [("type", "MAIN_UMFUTURE"), ("asset", "USDT"), ("amount", "1")]
UID_POOL = "sapi-uid {uid} POST /sapi/v1/asset/transfer"


@fake_time
async def test_entry_records_what_arrived(wire: Wire, master: Account) -> None:
    """Arrival, endpoint, account, weight per pool and window, status, execution, signature."""
    now = wire.exchange.server_time()
    response = await wire.call("universal_transfer", TRANSFER)
    entry = wire.exchange.ledger[-1]
    assert entry.arrived == now
    assert (entry.endpoint, entry.method, entry.path) == (
        "universal_transfer",
        "POST",
        "/sapi/v1/asset/transfer",
    )
    assert (entry.ip, entry.account, entry.status, entry.executed) == (
        "127.0.0.1",
        master.uid,
        200,
        True,
    )
    assert entry.result == response.json()["tranId"]
    [charge] = entry.charges
    assert (charge.pool, charge.kind, charge.weight, charge.limit, charge.ip) == (
        UID_POOL.format(uid=master.uid),
        PoolKind.UID,
        900,
        180000,
        None,
    )
    assert charge.window == int(now // 60)
    payload = response.request.content.decode().rsplit("&signature=", 1)
    assert entry.signature == payload[1] == hmac_hex(payload[0])


async def test_refused_requests_are_recorded_with_their_code(wire: Wire) -> None:
    """A -1022 is in the ledger: not executed, status 400, code -1022, weight charged."""
    await wire.call("universal_transfer", TRANSFER, secret="w" * 64)
    entry = wire.exchange.ledger[-1]
    assert (entry.status, entry.code, entry.executed) == (400, -1022, False)
    assert entry.weight(UID_POOL.format(uid=entry.account)) == 900


@fake_time
async def test_window_weights_and_peak_per_pool() -> None:
    """Weight per fixed window of a pool, filtered by IP, and the busiest window."""
    exchange = SimulatedExchange(clock=LoopClock(epoch=EPOCH))
    exchange.add_account(api_key=DOC_KEY, api_secret=DOC_SECRET, portfolio_margin=True)
    first = int(exchange.server_time() // 60)
    async with (
        httpx.AsyncClient(transport=exchange.transport(), base_url="http://x") as one,
        httpx.AsyncClient(
            transport=exchange.transport(client_ip="10.0.0.9"), base_url="http://x"
        ) as two,
    ):
        a, b = Wire(exchange, one), Wire(exchange, two)
        for _ in range(3):
            await a.call("pm_collect_asset", [("asset", "USDT")])
        await b.call("pm_collect_asset", [("asset", "USDT")])
        await anyio.sleep(60)
        await a.call("pm_auto_collect")
    ledger = exchange.ledger
    assert ledger.window_weights("papi-ip") == {first: 120, first + 1: 750}
    assert ledger.window_weights("papi-ip", ip="127.0.0.1") == {first: 90, first + 1: 750}
    assert ledger.window_weights("papi-ip", ip="10.0.0.9") == {first: 30}
    assert ledger.peak("papi-ip") == 750
    assert ledger.peak("nonexistent") == 0
    assert ledger.pools() == {"papi-ip"}  # rolling caps count calls, not weight


@fake_time
async def test_over_limit_lists_windows_past_their_limit() -> None:
    """After a 429 the window holds more than the limit and over_limit() says which one."""
    exchange = SimulatedExchange(limits=Limits(papi_ip=60), clock=LoopClock(epoch=EPOCH))
    exchange.add_account(api_key=DOC_KEY, api_secret=DOC_SECRET, portfolio_margin=True)
    async with httpx.AsyncClient(transport=exchange.transport(), base_url="http://x") as http:
        wire = Wire(exchange, http)
        window = int(exchange.server_time() // 60)
        await wire.call("pm_collect_asset", [("asset", "USDT")])
        await wire.call("pm_collect_asset", [("asset", "USDT")])
        assert exchange.ledger.over_limit() == []
        assert (await wire.call("pm_collect_asset", [("asset", "USDT")])).status_code == 429
    assert exchange.ledger.over_limit() == [
        Overrun(pool="papi-ip", ip="127.0.0.1", window=window, weight=90, limit=60)
    ]


async def test_resends_finds_the_same_signed_request_executed_twice(
    wire: Wire, master: Account
) -> None:
    """Binance has no replay protection: the same signed bytes sent twice move money twice."""
    stamp = wire.exchange.server_ms()
    first = await wire.call("universal_transfer", TRANSFER, timestamp=stamp)
    second = await wire.call("universal_transfer", TRANSFER, timestamp=stamp)
    assert first.request.content == second.request.content
    assert first.json()["tranId"] != second.json()["tranId"]
    fresh = await wire.call("universal_transfer", TRANSFER, timestamp=stamp + 1)
    assert fresh.status_code == 200  # another signature: not a resend
    [group] = wire.exchange.ledger.resends()
    assert [e.seq for e in group] == [1, 2]
    assert master.balance("USDT", "UMFUTURE") == 503


async def test_a_refused_repeat_is_not_a_resend(wire: Wire, master: Account) -> None:
    """Only executed requests count: a repeat refused for its balance is no double execution."""
    big = [("type", "MAIN_UMFUTURE"), ("asset", "USDT"), ("amount", "600")]
    stamp = wire.exchange.server_ms()
    assert (await wire.call("universal_transfer", big, timestamp=stamp)).status_code == 200
    assert (await wire.call("universal_transfer", big, timestamp=stamp)).status_code == 400
    assert wire.exchange.ledger.resends() == []
    assert len(wire.exchange.ledger.executed("universal_transfer")) == 1


async def test_entries_filter_and_clear(wire: Wire) -> None:
    """entries() filters by endpoint, execution and status; clear() forgets them."""
    await wire.call("server_time")
    await wire.call("universal_transfer", TRANSFER)
    await wire.call("universal_transfer", TRANSFER, key=None)
    ledger = wire.exchange.ledger
    assert len(ledger.entries("universal_transfer")) == 2
    assert [e.status for e in ledger.entries("universal_transfer", executed=False)] == [401]
    assert len(ledger.entries(status=200)) == 2
    assert repr(ledger) == "<Ledger 3 requests, 2 executed>"
    ledger.clear()
    assert len(ledger) == 0


@fake_time
async def test_entry_keeps_params_timestamp_and_execution_time(wire: Wire) -> None:
    """Each entry keeps the parameters sent (no signature), the timestamp and the execution time."""
    stamp = wire.exchange.server_ms() - 40
    await wire.call("universal_transfer", TRANSFER, timestamp=stamp, recv_window=9000)
    [entry] = wire.exchange.ledger.executions("universal_transfer")
    assert dict(entry.params) == {
        "type": "MAIN_UMFUTURE",
        "asset": "USDT",
        "amount": "1",
        "recvWindow": "9000",
        "timestamp": str(stamp),
    }
    assert entry.timestamp == stamp
    assert entry.executed_ms == wire.exchange.server_ms()
    refused = await wire.call("universal_transfer", TRANSFER, timestamp=stamp - 60_000)
    assert refused.status_code == 400
    assert wire.exchange.ledger[-1].executed_ms is None
    assert wire.exchange.ledger[-1].timestamp == stamp - 60_000


async def test_executions_and_times_executed_match_parameters(wire: Wire) -> None:
    """executions() filters executed requests by any parameter values; refused ones never count."""
    await wire.call("universal_transfer", TRANSFER)
    await wire.call(
        "universal_transfer", [("type", "MAIN_UMFUTURE"), ("asset", "USDT"), ("amount", "2")]
    )
    await wire.call("universal_transfer", TRANSFER, key=None)  # refused: 401
    ledger = wire.exchange.ledger
    assert ledger.times_executed("universal_transfer", amount="1") == 1
    assert ledger.times_executed("universal_transfer", asset="USDT") == 2
    assert ledger.times_executed("universal_transfer", amount="3") == 0
    assert [e.params["amount"] for e in ledger.executions(type="MAIN_UMFUTURE")] == ["1", "2"]


async def test_duplicates_catch_a_transfer_resent_with_a_fresh_timestamp(wire: Wire) -> None:
    """A transfer sent again with a new timestamp is a duplicate (not a resend); reads are not."""
    stamp = wire.exchange.server_ms()
    await wire.call("universal_transfer", TRANSFER, timestamp=stamp)
    await wire.call("universal_transfer", TRANSFER, timestamp=stamp + 1, recv_window=6000)
    other = [("type", "MAIN_UMFUTURE"), ("asset", "USDT"), ("amount", "2")]
    await wire.call("universal_transfer", other)
    for _ in range(2):
        await wire.call("transfer_history", [("type", "MAIN_UMFUTURE")])
    ledger = wire.exchange.ledger
    assert ledger.resends() == []
    [group] = ledger.duplicates()
    assert [e.timestamp for e in group] == [stamp, stamp + 1]
    assert ledger.duplicates("transfer_history") == []
    wire.exchange.faults.add(Fault.failed(), endpoint="universal_transfer", times=1)
    await wire.call("universal_transfer", other)  # FAILED: moved nothing, so no duplicate
    await wire.call("universal_transfer", other)
    assert len(ledger.duplicates()) == 2
    assert ledger.times_executed("universal_transfer", amount="2") == 3
    assert [e.moved for e in ledger.executions("universal_transfer", amount="2")] == [
        True,
        False,
        True,
    ]


async def test_report_lists_executions_and_duplicates_across_processes(wire: Wire) -> None:
    """The JSON report carries every executed transfer and the duplicate count, round-trip."""
    started = totals(wire.exchange)
    stamp = wire.exchange.server_ms()
    await wire.call("universal_transfer", TRANSFER, timestamp=stamp)
    await wire.call("universal_transfer", TRANSFER, timestamp=stamp + 5)  # the same, again
    await wire.call("transfer_history", [("type", "MAIN_UMFUTURE")])
    seen = Report.loads(report(wire.exchange, started).dumps())
    assert [(e.endpoint, e.timestamp, e.params["amount"]) for e in seen.executions] == [
        ("universal_transfer", stamp, "1"),
        ("universal_transfer", stamp + 5, "1"),
    ]
    first = wire.exchange.ledger.executions()[0]
    assert seen.executions[0].result == str(first.result)
    assert seen.executions[0].executed_ms == first.executed_ms
    assert seen.executions[0].settlement == "CONFIRMED"
    assert seen.duplicates == 1
    assert seen.conserved
