"""B7-3: a 418's ban ends for us once nothing written then can land before
its end on Binance's clock (``banned_until - g.lo``), not at its end on our estimate
alone (``- g.shift``): with long trips the clock sync's own trip is long (1.9 s:
eps ~0.95 s) and the estimate may run ahead of Binance by up to eps."""

from __future__ import annotations

import asyncio

import anyio
import looptime

from binance_transfers import ENDPOINTS, Governor
from binance_transfers._clock import LoopClock
from binance_transfers.sim import Fault, SimulatedExchange
from tests.test_governor import SUB_UNIVERSAL, synced
from tests.test_governor_shared_ip import _callers

E0 = 1_767_225_600.0  # a minute boundary on Binance's clock


@looptime.enabled(strict=True)
async def test_no_request_is_sent_before_the_ban_ends_on_binances_clock() -> None:
    """B7-3 (the review's reproducer, as it was written):
    the end of a 418's ban (Binance's clock) was turned into ours with the estimate
    alone (``- g.shift``); with a 1.9 s sync trip the estimate runs up to 0.95 s ahead,
    and the first request after the ban arrived 157 ms before its end: a second 418.
    One client (10 callers of pm_auto_collect), a steady neighbour spending 3000 of
    /papi 2 s into every window from the third on, answers 0.5-1.5 s late; the
    first contact earns that window's 429 and 418s (blind: expected; the client
    sends a quarter of a window at each opening before a report of it, see
    test_governor_first_contact.py, and the neighbour's spend lands among the
    rest, on its way). The reproducer's neighbour spent 1 s into the window: it
    now lands before the rest leaves, and its report shows it: no ban comes."""
    exchange = SimulatedExchange(seed=1, clock=LoopClock(epoch=E0))
    exchange.add_demo_account()
    exchange.faults.add(Fault.latency(1.9), endpoint="server_time")
    exchange.faults.add(Fault.latency(0.5, jitter=1.0), endpoint="pm_auto_collect")
    papi = tuple(
        spec
        for spec in exchange.limiter.pools(ENDPOINTS["pm_auto_collect"], None)
        if spec.key == "papi-ip"
    )
    loop = asyncio.get_running_loop()
    stop = loop.time() + 300

    async def neighbour() -> None:
        """Spends 3000 of /papi 2 s into every window (Binance's clock), from 122 s."""
        await anyio.sleep(60)
        while loop.time() < stop:
            now = exchange.clock.time() + exchange.skew
            await anyio.sleep((int(now // 60) + 1) * 60 + 2 - now)
            now = exchange.clock.time() + exchange.skew
            for _ in range(3000 // papi[0].weight):
                exchange.limiter.charge(papi, "127.0.0.1", now)

    async with anyio.create_task_group() as group:
        group.start_soon(neighbour)
        group.start_soon(_callers, exchange.client(), 10, loop.time(), stop, "pm_auto_collect")
        await anyio.sleep(305)
        group.cancel_scope.cancel()
    bans = [e.arrived - E0 for e in exchange.ledger if e.status == 418]
    assert bans, "the scenario no longer earns its first-contact ban: it tests nothing"
    # The first ban's 418s go to requests already on the way (a trip: < 2.5 s);
    # none may arrive later: the governor knew of the ban by then.
    late = [round(t, 3) for t in bans if t > bans[0] + 2.5]
    assert late == [], f"418 at {late} s, the first at {bans[0]:.3f} s"


@looptime.enabled(strict=True)
async def test_another_processs_ban_ends_on_binances_clock_too() -> None:
    """The same for a ban another process met, published through a shared storage
    (its end on Binance's clock): with the estimate off by up to eps (0.5 s here),
    nothing of ours may be written before the ban's end can have passed on Binance's
    clock; ``- g.shift`` alone resumed eps early."""
    g = synced(Governor(latency=0.0, cold_start=False), E0 + 1, eps=0.5)
    g._storage_froze("*", E0 + 301)  # what RedisStorage calls on another's 418
    start = anyio.current_time()
    await g.acquire(SUB_UNIVERSAL, wait_on_ban=True)
    # 300 s on our estimate, plus the estimate's whole uncertainty and guard.
    assert anyio.current_time() - start >= 300 + 0.5
