"""After the other process stops, the survivor is back to the whole window within minutes.

Two processes on one IP, each with its own governor and 4 PM auto-collection
callers (750 of /papi's 6000 a call), answers at once. The second stops at
240 s (window 4). The other counts as gone once our reports of 3 windows
since it last surely spent show no one else; the survivor stayed at
3000-3750 of 6000 for windows 8-16 (12 minutes after the other stopped), and
reached 6000 only from window 28.

What is asserted: five windows after the 3 quiet windows (windows 9-14), the
survivor uses at least 4500 of 6000 (75 %; alone it takes 5250-6000).
Cause: the first request of each window, written at its opening within eps
of the boundary, was answered in a report read as no window's (``absent``);
counted as ours in neither window, its 750 read as someone else's in the next
report of its window, so no window was ever quiet.

Since each later opening is met by a quarter of the window beside a neighbour
heard of at our first one (``_first_opening``), window 10 opens with two of
ours written at the boundary: their reports read as no window's, they pass for
1500 of someone else's, and window 11 reserves 3000 for nobody (3000 in window
10; 4500-5250 after it). Reading them by counts (``_below``) mended it, and
starved a neighbour spending at :30 that we read as gone. Now a report whose
others are no more than ours answered in reports read as no window's reads as
none of theirs for the reservation too, as it already did for ``_heard``.
Deterministic (looptime).
"""

from __future__ import annotations

import asyncio

import anyio
import looptime

from binance_transfers._clock import LoopClock
from binance_transfers.sim import SimulatedExchange
from tests.test_governor_shared_ip import _callers

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: window 0 starts with the run


async def _survivor() -> list[int]:
    """/papi per window, windows 0-14: the survivor's and the leaver's together."""
    exchange = SimulatedExchange(seed=1, clock=LoopClock(epoch=EPOCH))
    exchange.add_demo_account()
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with anyio.create_task_group() as group:
        survivor, leaver = start + 15 * 60.0, start + 240.0  # the other stops in window 4
        group.start_soon(_callers, exchange.client(), 4, start, survivor, "pm_auto_collect")
        group.start_soon(_callers, exchange.client(), 4, start, leaver, "pm_auto_collect")
    weights = exchange.ledger.window_weights("papi-ip")
    first = int(EPOCH // 60)
    return [weights.get(first + i, 0) for i in range(15)]


@looptime.enabled(strict=True)
async def test_the_survivor_takes_the_ip_back_once_the_other_process_stops() -> None:
    used = await _survivor()
    # From the fifth window after the quiet ones (was 3000 in window 10, once).
    assert min(used[9:15]) >= 4500, used
