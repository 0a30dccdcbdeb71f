"""Two processes on one IP, each with its own governor: the other is not gone
because our reports of two windows did not show it (B8-2).

B7-4's world (2 processes x 3 PM auto-collection callers, 750 of
/papi's 6000: 8 a window; answers 0.5-1.5 s late, the clock sync's trip 1.9 s,
54 s into Binance's minute) with the exchange's seed 4. One process held back
for the other (sharing, a large reservation) the whole of window 2; the
other's reports of windows 1 and 2 showed no one else, it took the first as
gone, opened window 3 unshared and sent 7 requests in 1.25 s beside the first
one's opening: 6750 of 6000, a 429. Deterministic on looptime.
"""

from __future__ import annotations

import asyncio

import anyio
import looptime

from binance_transfers._clock import LoopClock
from binance_transfers.sim import Fault, SimulatedExchange
from tests.test_governor_shared_ip import _callers, _refusals_and_use


@looptime.enabled(strict=True)
async def test_two_processes_with_long_trips_and_heavy_requests_seed_4() -> None:
    """No 429 or 418 after the blind first window, whatever the other's quiet spells."""
    start = 1_767_225_600.0 + 54.0  # 54 s into a minute on Binance's clock
    exchange = SimulatedExchange(seed=4, clock=LoopClock(epoch=start))
    exchange.add_demo_account()
    exchange.faults.add(Fault.latency(1.9), endpoint="server_time")
    exchange.faults.add(Fault.latency(0.5, jitter=1.0), endpoint="pm_auto_collect")
    loop = asyncio.get_running_loop()
    now = loop.time()
    async with anyio.create_task_group() as group:
        for _ in range(2):
            group.start_soon(_callers, exchange.client(), 3, now, now + 300, "pm_auto_collect")
    bad, used = _refusals_and_use(exchange)
    # It ran: a few windows' worth after the first.
    assert sum(used[1:]) >= 6 * 750 * 3, (dict(bad), used)
    assert [k for k in bad if k[1] == 418] == [], (dict(bad), used)
    assert [k for k in bad if k[0] >= 2] == [], (dict(bad), used)
