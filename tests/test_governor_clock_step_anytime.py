"""a 10 ms step of Binance's clock at any moment after a sync, not just at its start.

The tests of test_governor_clock_step.py step Binance's clock before the first
call. Here it steps in the middle of a saturated run (at several moments, both ways, twice in one
run), with jittery trips, at Binance's real minute and at 1-s windows:
no window gets more than its limit. (A check: it held on main e1df29e; with
CLOCK_STEP = 0 the "back" cases fail, 12000 of 6000.)
"""

from __future__ import annotations

import math
import random

import anyio
import looptime
import pytest

from binance_transfers import ENDPOINTS, Governor, Limits
from binance_transfers._governor._geometry import step_band

from .test_governor import synced

E0 = 1_767_225_600.0
PM_ASSET = ENDPOINTS["pm_collect_asset"]  # /papi, weight 30 of 6000 a window

fake_time = looptime.enabled(strict=True)


@fake_time
@pytest.mark.parametrize("time_scale", [1, 60], ids=["minute", "1s"])
@pytest.mark.parametrize("at", [0.5, 0.97], ids=lambda a: f"at{a}w")
@pytest.mark.parametrize("sign", [-1, 1], ids=["back", "ahead"])
async def test_a_step_at_any_moment_overfills_no_window(
    time_scale: int, at: float, sign: int
) -> None:
    governor = synced(
        Governor(Limits(time_scale=time_scale), latency=0.0, cold_start=False), E0 + 0.3
    )
    window = governor.limits.window
    step = step_band(window)
    monotonic = governor.server_clock.clock.monotonic
    start = monotonic()
    base = governor.server_clock.shift
    rng = random.Random(time_scale * 1000 + round(at * 100) * sign)
    # Binance's clock: the estimate, then stepped by `step` at `at` windows, and back
    # to the estimate 0.9 window later (two steps in one run, each within the band).
    step_at, back_at = start + at * window, start + (at + 0.9) * window

    def true_shift(t: float) -> float:
        return base + (sign * step if step_at <= t < back_at else 0.0)

    landed: dict[int, int] = {}
    stop = start + 3.2 * window

    async def caller() -> None:
        while monotonic() < stop:
            permit = await governor.acquire(PM_ASSET)
            written = governor.renew(permit)
            assert written is not None
            sent = monotonic()
            trip = 0.002 + rng.random() * 0.003
            await anyio.sleep(trip / 2)
            t = monotonic()
            index = math.floor((t + true_shift(t)) / window)
            landed[index] = landed.get(index, 0) + PM_ASSET.ip_weight
            await anyio.sleep(trip / 2)
            governor.observe(written, sent=sent, received=monotonic(), status=200)

    async with anyio.create_task_group() as tg:
        for _ in range(300):
            tg.start_soon(caller)
    assert max(landed.values()) <= 6000, landed
    # It was saturated: the windows inside the run were (nearly) full.
    assert sum(landed.values()) >= 2 * 6000, landed
