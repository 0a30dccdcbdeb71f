"""Two processes on one IP, each with its own governor, answers 0.5-2.5 s late
(the clock sync's trip too): no 429 after the first two windows (B8-3).

A sweep of this world (2 processes x 2/3/5 PM auto-collection callers, 750 of
/papi's 6000: 8 a window; 3 trip profiles; phases 0/50/54 s; exchange seeds
1-16) found these runs with a 429 or 418 after the second window, each a
window at 6750 or 7500 of 6000:

* seed 2 at phase 54: the reports that showed the other process passed for
  ours alone (the "alone" test counted our weight in flight twice, see
  ``Sharing._note_others``); neither shared;
* seed 3 at phase 54: a request written as the sharing of a window ended, on
  our estimate of Binance's clock, landed in that window's last 0.3 s, beside
  what the other had spent since our last report of it (``FixedPool._open``
  shares a window until nothing written can land in it);
* seeds 9 and 14 at phase 50 (and seed 2, fixed before these tests): both
  banned in the blind first window; after the ban each took the other as gone
  (the windows of the ban had no reports) and opened a window with a burst
  (``Sharing._gone``: only windows whose reports showed no one else count).

Deterministic on looptime.
"""

from __future__ import annotations

import asyncio

import anyio
import looptime
import pytest

from binance_transfers._clock import LoopClock
from binance_transfers.sim import Fault, SimulatedExchange
from tests.test_governor_shared_ip import _callers, _refusals_and_use


@pytest.mark.parametrize(
    ("seed", "phase", "callers"),
    [
        (2, 50.0, 5),
        (2, 54.0, 5),
        (2, 54.0, 3),
        (3, 54.0, 2),
        (9, 50.0, 3),
        (14, 50.0, 5),
    ],
    ids=[
        "seed2-phase50-5x2-ban",
        "seed2-phase54-5x2",
        "seed2-phase54-3x2",
        "seed3-phase54-2x2",
        "seed9-phase50-3x2-ban",
        "seed14-phase50-5x2-ban",
    ],
)
@looptime.enabled(strict=True)
async def test_two_processes_with_trips_up_to_2_5_s_stay_under_the_limit_after_window_1(
    seed: int, phase: float, callers: int
) -> None:
    exchange = SimulatedExchange(seed=seed, clock=LoopClock(epoch=1_767_225_600.0 + phase))
    exchange.add_demo_account()
    exchange.faults.add(Fault.latency(0.5, jitter=2.0))  # every endpoint, the clock's too
    loop = asyncio.get_running_loop()
    now = loop.time()
    async with anyio.create_task_group() as group:
        for _ in range(2):
            group.start_soon(
                _callers, exchange.client(), callers, now, now + 300, "pm_auto_collect"
            )
    bad, used = _refusals_and_use(exchange)
    # Issue 7's target: 429s (the blind first contact) only in the first two windows.
    assert [k for k in bad if k[0] >= 2] == [], (dict(bad), used)
