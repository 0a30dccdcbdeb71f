"""A process alone on its IP in scaled windows (``time_scale=60``: 1 s windows).

PM auto-collection (750 of /papi's 6000 a window) from three callers, answers
0.05-0.35 s late: alone, every window holds eight (6000). The first-opening
wait (one request, then a report a third of the window later) is not for
such windows: it cost the first full window a request, and the trajectory
after it read a report of ours as 750 of someone else's: seven a window.
"""

from __future__ import annotations

import asyncio

import looptime

from binance_transfers import Limits
from binance_transfers._clock import LoopClock
from binance_transfers.sim import Fault, SimulatedExchange
from tests.test_governor_shared_ip import _callers

EPOCH = 1_767_225_600.0  # a minute's start on Binance's clock


@looptime.enabled(strict=True)
async def test_a_lone_heavy_process_fills_scaled_windows() -> None:
    exchange = SimulatedExchange(
        seed=1, clock=LoopClock(epoch=EPOCH + 0.5), limits=Limits(time_scale=60)
    )
    exchange.add_demo_account()
    exchange.faults.add(Fault.latency(0.05, jitter=0.3))
    now = asyncio.get_running_loop().time()
    await _callers(exchange.client(), 3, now, now + 12, "pm_auto_collect")
    weights = exchange.ledger.window_weights("papi-ip")
    used = [weights[w] for w in sorted(weights)]
    assert [w for w in used[1:-1] if w < 6000] == [], used
