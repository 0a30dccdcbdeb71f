"""A lone process idle for minutes resumes with a burst beside a new neighbour.

Ours (10 callers of PM auto-collection, 750 of /papi's 6000 a call, the same
client all along) fills windows 0-3, is idle from window 5 to 7, and resumes at
window 8's opening (or 0.5 s or 5 s after it). Meanwhile another process
started spending 3000 at each minute's opening (from window 6), unseen: nothing
of ours was answered there. Ours resumes with its whole burst before any report
of that window, 4500 served beside the 3000: a 429, three 418s, and the next
minute banned (answers 0.05-0.35 s and 0.5-2.5 s, every start). After an idle
window the opening to meet moves to the one after the resumed window
(``_first_opening``: ``lo + 1``), so the resumed window itself is not waited on.

Deterministic (looptime).
"""

from __future__ import annotations

from collections import Counter

import anyio
import looptime
import pytest

from binance_transfers import ENDPOINTS, BinanceTransfersError
from binance_transfers._clock import LoopClock
from binance_transfers.sim import Fault, SimulatedExchange

E0 = 1_767_225_600.0  # a minute's start on Binance's clock
LIMIT = 6000


@pytest.mark.parametrize("resume", [0.0, 0.5, 5.0])
@pytest.mark.parametrize(("latency", "jitter"), [(0.05, 0.3), (0.5, 2.0)])
@looptime.enabled(strict=True)
async def test_a_burst_after_idle_minutes_meets_a_neighbour_that_came_meanwhile(
    latency: float, jitter: float, resume: float
) -> None:
    exchange = SimulatedExchange(seed=1, clock=LoopClock(epoch=E0 + 30.0))
    exchange.add_demo_account()
    exchange.faults.add(Fault.latency(latency, jitter=jitter))
    papi = tuple(
        spec
        for spec in exchange.limiter.pools(ENDPOINTS["pm_auto_collect"], None)
        if spec.key == "papi-ip"
    )
    first = int((E0 + 30.0) // 60)
    spent, over = Counter[int](), 0

    def binance_now() -> float:
        return exchange.clock.time() + exchange.skew

    async def neighbour() -> None:
        nonlocal over
        while True:
            await anyio.sleep((int(binance_now() // 60) + 1) * 60 - binance_now())
            now = binance_now()
            if int(now // 60) - first >= 6:
                for _ in range(3000 // papi[0].weight):
                    over += bool(exchange.limiter.charge(papi, "127.0.0.1", now)[1])
                spent[int(now // 60)] += 3000

    client = exchange.client()

    async def calls(until: float) -> None:
        while binance_now() < until:
            try:
                await client.pm_auto_collect()
            except BinanceTransfersError:
                await anyio.sleep(1)

    async def caller() -> None:
        await calls((first + 3) * 60)
        await anyio.sleep((first + 8) * 60 + resume - binance_now())
        await calls((first + 11) * 60)

    async with client, anyio.create_task_group() as group:
        group.start_soon(neighbour)
        async with anyio.create_task_group() as callers:
            for _ in range(10):
                callers.start_soon(caller)
        group.cancel_scope.cancel()
    refused = Counter(
        (int(e.arrived // 60) - first, e.status) for e in exchange.ledger if e.status in (418, 429)
    )
    ours = exchange.ledger.window_weights("papi-ip")
    rows = [(w - first, ours.get(w, 0), spent.get(w, 0)) for w in range(first, first + 11)]
    assert [ours for _, ours, _ in rows[5:8]] == [0, 0, 0], rows  # idle there
    assert refused == Counter(), rows
    assert [row for row in rows if row[1] + row[2] > LIMIT] == [], rows
    assert over == 0, rows
