"""A light crowd beside a heavy filler on one IP, answers 0.06-0.3 s late.

Process A: PM auto-collection callers (750 of /papi's 6000); process B:
pm_balances callers (weight 20), each process with its own governor, both
from 30 s into a minute (B ``join`` s after A), for 5 minutes.

- B joining 5 s after A (2 heavy, 8 light callers, answers 0.06 s): B's first
  request is served 85 s later, at the opening of the second window after
  (none in the rest of the joining window nor in the next whole one).
- Both starting together (8 heavy, 20 light, answers 0.15-0.3 s): a 429 and
  nine 418s in window 0, a 418 in window 1 (and A's window 1 banned: none of
  its collections served there). Fixed: a heavy pool warms only at an answer
  written two round trips after its start, which counts B's first requests.

Deterministic (looptime).
"""

from __future__ import annotations

import asyncio
from collections import Counter

import anyio
import looptime
import pytest

from binance_transfers._clock import LoopClock
from binance_transfers.sim import Fault, SimulatedExchange
from binance_transfers.sim._ledger import LedgerEntry
from tests.test_governor_shared_ip import _callers

EPOCH = 1_767_225_600.0  # a minute's start on Binance's clock


async def _run(
    heavy: int, light: int, latency: float, jitter: float, join: float
) -> tuple[SimulatedExchange, float]:
    exchange = SimulatedExchange(seed=1, clock=LoopClock(epoch=EPOCH + 30.0))
    exchange.add_demo_account()
    exchange.faults.add(Fault.latency(latency, jitter=jitter))
    now = asyncio.get_running_loop().time()
    async with anyio.create_task_group() as group:
        group.start_soon(_callers, exchange.client(), heavy, now, now + 300, "pm_auto_collect")
        group.start_soon(_callers, exchange.client(), light, now + join, now + 300, "pm_balances")
    return exchange, EPOCH + 30.0 + join


def _light(e: LedgerEntry) -> bool:
    return e.endpoint != "pm_auto_collect" and e.path.startswith("/papi")


@pytest.mark.xfail(
    strict=True, reason="open (pre-existing): the first light request is served 85 s after joining"
)
@looptime.enabled(strict=True)
async def test_a_light_crowd_joining_a_heavy_filler_is_served_within_a_window() -> None:
    exchange, joined = await _run(2, 8, 0.06, 0.0, 5.0)
    served = [e.arrived for e in exchange.ledger if _light(e) and e.status == 200]
    heavy = Counter(
        int(e.arrived // 60) - int(joined // 60)
        for e in exchange.ledger
        if e.endpoint == "pm_auto_collect" and e.status == 200
    )
    assert served, dict(heavy)
    assert served[0] - joined < 60, (served[0] - joined, dict(heavy))


@pytest.mark.parametrize(("latency", "jitter"), [(0.15, 0.15), (0.06, 0.24)])
@looptime.enabled(strict=True)
async def test_light_and_heavy_crowds_starting_together_earn_no_ban(
    latency: float, jitter: float
) -> None:
    exchange, joined = await _run(8, 20, latency, jitter, 0.0)
    first = int(joined // 60)
    refused = Counter(
        (int(e.arrived // 60) - first, e.status) for e in exchange.ledger if e.status in (418, 429)
    )
    assert [k for k in refused if k[1] == 418] == [], dict(refused)
