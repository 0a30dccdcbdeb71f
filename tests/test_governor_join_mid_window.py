"""Two processes, each with its own governor, one joining mid-window: a 429 in every window after.

Process A (4 PM auto-collection callers: 750 of /papi's 6000 a call) runs
from 00:00; process B (the same) starts at 02:30, in the middle of window 2.
Answers take 0.05-0.25 s. Windows 3, 4 and 5 then each take 6750 of 6000: one
request over, a 429 every window (the pool stops until the next window, and
429s count towards a ban). Not a boundary race (B joined mid-window): the two
processes race for each window's last request. Same with no latency and B
joining at 02:00.05. Pre-existing on every release; kept visible as a strict
xfail until the sharing rules are fixed (processes that must share an IP
should share a ``RedisStorage``: exact counts, no header inference).
"""

from __future__ import annotations

import asyncio
from collections import Counter

import anyio
import looptime
import pytest

from binance_transfers._clock import LoopClock
from binance_transfers.sim import Fault, SimulatedExchange
from tests.test_governor_shared_ip import _callers

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.mark.xfail(
    strict=True, reason="two adaptive governors race for each window's last request: 6750 of 6000"
)
@looptime.enabled(strict=True)
async def test_a_process_joining_mid_window_earns_no_429_in_the_windows_after() -> None:
    exchange = SimulatedExchange(seed=1, clock=LoopClock(epoch=EPOCH))
    exchange.add_demo_account()
    exchange.faults.add(Fault.latency(0.05, jitter=0.2))
    loop = asyncio.get_running_loop()
    now = loop.time()
    async with anyio.create_task_group() as group:
        group.start_soon(_callers, exchange.client(), 4, now, now + 360, "pm_auto_collect")
        group.start_soon(_callers, exchange.client(), 4, now + 150, now + 360, "pm_auto_collect")
    first = int(EPOCH // 60)
    refused = Counter(
        int(e.arrived // 60) - first for e in exchange.ledger if e.status in (418, 429)
    )
    weights = exchange.ledger.window_weights("papi-ip")
    used = [weights.get(first + i, 0) for i in range(7)]
    assert {w: n for w, n in refused.items() if w >= 3} == {}, used
