"""Settling an unknown outcome while Binance bans the IP (HTTP 418).

A settlement only reads (the clock, the history); a ban's end is known (the
418 says it, the governor keeps it). So a settlement that meets a ban waits
it out and reads again: it never raises ``IPBannedError`` (the 2-process demo
crashed in ``reconcile`` on one, losing track of its unknown transfers), and
never sends a read during the ban. Every test runs on looptime's fake clock:
a two-minute ban takes no real time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import anyio
import looptime
import pytest

from binance_transfers import (
    Client,
    MarginTransferDirection,
    OutcomeUnknownError,
    SettleBy,
    Settlement,
    ThrottledError,
)
from binance_transfers._reconcile import through_limits
from binance_transfers.sim import Fault, SimulatedExchange

from .conftest import API_KEY, SECRET
from .test_reconcile import MARGIN, executed_ids, unknown_after

fake_time = looptime.enabled(strict=True)

IP = "127.0.0.1"  # SimulatedExchange.client's


@pytest.fixture
async def client(exchange: SimulatedExchange) -> AsyncIterator[Client]:
    async with exchange.client(settle_margin=MARGIN) as c:
        yield c


def ban_now(exchange: SimulatedExchange) -> float:
    """Ban the client's IP from now on (Binance's first ban: 2 minutes); its monotonic end."""
    return exchange.limiter.ban(IP, exchange.clock.monotonic())


def reads_during_ban(exchange: SimulatedExchange, end: float) -> list[int]:
    """Sequence numbers of the requests that arrived during the ban (answered 418)."""
    return [e.seq for e in exchange.ledger if e.monotonic < end and e.status == 418]


@fake_time
async def test_a_ban_that_starts_while_settling_is_waited_out(
    exchange: SimulatedExchange, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Executed, its answer lost; Binance bans the IP before the history is read:
    the first read earns a 418, the settlement waits for the ban's end and then
    finds the transfer (it used to raise IPBannedError)."""
    unknown = await unknown_after(Fault.drop(), exchange, client)
    end = ban_now(exchange)
    with caplog.at_level(logging.WARNING, "binance_transfers"):
        settled = await client.reconcile(unknown)
    assert settled.executed is True and settled.by is SettleBy.HISTORY
    assert [settled.tran_id] == executed_ids(exchange, "universal_transfer")
    # One read met the ban (nothing told the client of it before); none after it.
    assert len(reads_during_ban(exchange, end)) == 1
    (lookup, *_) = [e for e in exchange.ledger.entries("transfer_history") if e.status == 200]
    assert lookup.monotonic >= end
    assert any("banned" in r.getMessage() and "settl" in r.getMessage() for r in caplog.records)


@fake_time
async def test_a_ban_the_governor_already_knows_is_waited_out_without_a_request(
    exchange: SimulatedExchange, client: Client
) -> None:
    """Another call met the 418 first: the governor refuses at once during the
    ban, and the settlement sleeps until its end instead of failing."""
    unknown = await unknown_after(Fault.unavailable(), exchange, client)
    end = ban_now(exchange)
    with pytest.raises(Exception, match="418"):
        await client.server_time()  # the 418 that tells the governor
    assert client.governor.banned_until is not None
    before = len(exchange.ledger)
    settled = await client.reconcile(unknown)
    assert settled.executed is False and settled.settled  # 503: never executed
    assert all(e.monotonic >= end for e in list(exchange.ledger)[before:])
    assert reads_during_ban(exchange, end) == [before]  # server_time's, only


@fake_time
async def test_settlements_running_at_once_all_survive_a_ban(
    exchange: SimulatedExchange, client: Client
) -> None:
    """As in the demo: several unknown outcomes settled at once, the ban starts
    between their looks; each one is settled, none is lost."""
    unknowns = [await unknown_after(Fault.drop(), exchange, client, f"{n}.5") for n in range(1, 4)]
    unknowns.append(await unknown_after(Fault.unavailable(), exchange, client, "9.5"))
    settled: list[tuple[int, Settlement]] = []

    async def settle(index: int) -> None:
        settled.append((index, await client.reconcile(unknowns[index])))

    async with anyio.create_task_group() as tg:
        for index in range(len(unknowns)):
            tg.start_soon(settle, index)
        # Past the recvWindow, before the second look (one settle margin later).
        await anyio.sleep(5.0 + 1.5 * MARGIN)
        ban_now(exchange)
    verdicts = {index: s.executed for index, s in settled}
    assert verdicts == {0: True, 1: True, 2: True, 3: False}
    found = sorted(s.tran_id for _, s in settled if s.tran_id is not None and s.executed)
    assert found == sorted(executed_ids(exchange, "universal_transfer"))


@fake_time
async def test_a_margin_transfer_settled_by_balances_waits_out_a_ban(
    exchange: SimulatedExchange,
) -> None:
    """The balances' path too: a dropped sub-account margin transfer, a ban
    before the balances are read again: settled once the ban is over."""
    desk, endpoint = "desk-1@sim.invalid", "sub_account_margin_transfer"
    exchange.faults.add(Fault.drop(), endpoint=endpoint, times=1)
    async with exchange.client(settle_margin=MARGIN) as client:
        baseline = await client.margin_transfer_baseline(email=desk, asset="USDT")
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.sub_account_margin_transfer(
                email=desk,
                asset="USDT",
                amount="30",
                direction=MarginTransferDirection.SPOT_TO_MARGIN,
            )
        end = ban_now(exchange)
        settled = await client.reconcile_margin_transfer(caught.value, baseline)
    assert (settled.executed, settled.by) == (True, SettleBy.BALANCES), settled.reason
    assert len(reads_during_ban(exchange, end)) == 1
    assert exchange.ledger.times_executed(endpoint) == 1


@fake_time
async def test_a_refusal_without_a_wait_is_not_retried_in_a_hot_loop() -> None:
    """B8-4: with ``settle_margin=0`` (accepted) a refusal naming no wait
    (the clock could not be synced within max_wait) was read again after
    ``sleep(0)``: 49 refusals in no time, a WARNING each. Now a tenth of a second
    at least passes between reads."""
    client = Client(API_KEY, SECRET, settle_margin=0)
    reads = 0

    async def read() -> str:
        nonlocal reads
        reads += 1
        if reads < 50:
            raise ThrottledError(
                "Binance's clock could not be synced within max_wait", retry_at=0.0, retry_after=0.0
            )
        return "read"

    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await through_limits(read, "transfer_history", client._reconciler.margin) == "read"
    await client.aclose()
    assert loop.time() - start >= 49 * 0.1, f"{reads} reads in {loop.time() - start:.3f} s"
