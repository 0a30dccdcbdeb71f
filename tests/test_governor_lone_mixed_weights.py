"""A process alone on its IP, heavy and light requests in /papi: it sees no one else.

Guards against a rule (tried and withdrawn) that read a report's excess no sum
of ours in flight makes up as someone else's, taking the excess over ours
answered and counted in that window only: an answered request near a boundary
counted in its write window while it landed in the next, or a dropped request
still charged, became a neighbour's, and a lone process of 750s and 20s held
back room for no one (3120 of 6000 in a window; shared for six minutes with
dropped connections).
"""

from __future__ import annotations

import asyncio

import anyio
import looptime

from binance_transfers._clock import LoopClock
from binance_transfers._governor._fixed import FixedPool
from binance_transfers._governor._sharing import NEVER
from binance_transfers.sim import Fault, SimulatedExchange
from tests.test_governor_shared_ip import _callers

EPOCH = 1_767_225_600.0  # a minute's start on Binance's clock


async def _alone(phase: float, latency: float, jitter: float, drop: float) -> list[int]:
    """2 PM auto-collection callers (750) and 8 pm_balances callers (20) on one
    governor for six minutes from ``phase`` s into a minute, ``drop`` of the
    pm_balances connections dropped after the request landed: /papi per window.
    Asserts that the governor never took anyone else for being on the IP."""
    exchange = SimulatedExchange(seed=1, clock=LoopClock(epoch=EPOCH + phase))
    exchange.add_demo_account()
    exchange.faults.add(Fault.latency(latency, jitter=jitter))
    if drop:
        exchange.faults.add(Fault.drop(), endpoint="pm_balance", probability=drop)
    heavy = exchange.client()
    light = exchange.client(governor=heavy.governor)
    now = asyncio.get_running_loop().time()
    async with anyio.create_task_group() as group:
        group.start_soon(_callers, heavy, 2, now, now + 360, "pm_auto_collect")
        group.start_soon(_callers, light, 8, now, now + 360, "pm_balances")
    weights = exchange.ledger.window_weights("papi-ip")
    used = [weights[w] for w in sorted(weights)]
    pool = heavy.governor._pools["papi-ip"]
    assert isinstance(pool, FixedPool)
    assert pool.others_in == NEVER, (pool.others_in % 100, used)
    return used


@looptime.enabled(strict=True)
async def test_a_lone_process_with_heavy_and_light_requests_sees_no_one_else() -> None:
    """One governor, 2 PM auto-collection callers (750) and 8 pm_balances
    callers (20), answers 0.05-2.05 s late, from 57.5 s into a minute for six
    minutes. Nobody else is on the IP: it never reports others, and every
    full window is used as on 8ca4a2d (5000-5730 of 6000 there; 3120 in
    window 1 since the excess rule)."""
    used = await _alone(57.5, 0.5, 2.0, 0.0)
    assert min(used[1:-1]) >= 4900, used


@looptime.enabled(strict=True)
async def test_a_lone_process_whose_light_requests_are_sometimes_dropped_sees_no_one_else() -> None:
    """The same process, answers 0.05-0.35 s late, 5 % of the pm_balances
    connections dropped after the request landed (no answer: not counted as
    landed anywhere, no longer in flight), from 30 s into a minute. One dropped
    20 beside another 20 in flight in the first window is read as a neighbour's
    (40 over ours, 20 in flight): from then on every window is used to about
    5450 of 6000 for six minutes (5730-5910 on 8ca4a2d, no one else seen)."""
    used = await _alone(30.0, 0.05, 0.3, 0.05)
    assert min(used[1:-1]) >= 5600, used
