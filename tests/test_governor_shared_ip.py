"""Two processes on one IP, each with its own Governor (B-7, breaker2).

The most common "other process on the IP" is a second instance of this SDK:
two workers, two pods behind one NAT. Each governor learns what the other
spends only from usage headers, a trip late.
"""

from __future__ import annotations

import asyncio

import anyio
import looptime

from binance_transfers import BinanceTransfersError, Client
from binance_transfers.sim import SimulatedExchange


@looptime.enabled(strict=True)
async def test_two_processes_with_their_own_governors_on_one_ip_are_never_banned() -> None:
    """breaker2's B-7: two clients, each with its own Governor, read /papi (weight
    20 of 6000 a minute) for three minutes with 20 coroutines each. Each opened
    a window with a burst sized to what it saw, together twice the limit: a 429,
    then the other's requests already on the way arrived over the limit, and
    Binance banned the IP (418). Issue 7's target for another process on the
    IP: never a 418, 429s only in the first two windows."""
    exchange = SimulatedExchange()
    exchange.add_demo_account()
    async with exchange.client() as first, exchange.client() as second:
        loop = asyncio.get_running_loop()
        stop = loop.time() + 180

        async def reader(client: Client) -> None:
            while loop.time() < stop:
                try:
                    await client.pm_balances()
                except BinanceTransfersError:
                    await anyio.sleep(1)

        async with anyio.create_task_group() as group:
            for client in (first, second):
                for _ in range(20):
                    group.start_soon(reader, client)
    windows = sorted({int(e.arrived // 60) for e in exchange.ledger})
    refused = [(int(e.arrived // 60) - windows[0], e.status) for e in exchange.ledger]
    assert [r for r in refused if r[1] == 418] == []
    assert [r for r in refused if r[1] == 429 and r[0] >= 2] == []
