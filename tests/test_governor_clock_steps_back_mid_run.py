"""Binance's clock steps back 2.5 s mid-run, long after the sync (open: a strict xfail).

A lone process (10 callers of PM auto-collection, 750 of /papi's 6000 a
minute) fills every window. 50 s into its fourth window, the exchange's clock
moves back 2.5 s. The governor, sure of its estimate, opens the next window
2.5 s before the exchange does: its first two requests land in the full
window (7500 of 6000), a 429 and a 418; the ban's end, read on the same
stale clock, comes 2.5 s early, and the two clock syncs sent then earn two
more 418s (none of /papi for two windows; the third sync, 58.4 s into the
window the ban ends in, puts the clock right). Found by a review of the
governor (issue 7), beside neighbours or not, with one to three processes;
the issue's targets cover a clock 2.5 s off at the start and steps of 10 ms,
not this. Not fixed: meeting every opening with one request first (as beside
others, ``_first_opening``), whose report would show the old window's count,
may be the way.
Deterministic (looptime).
"""

from __future__ import annotations

from collections import Counter

import anyio
import looptime
import pytest

from tests.neighbour import LIMIT, Neighbour

STEP_AT = 230.0  # loop seconds: 50 s into the fourth window (start 0.5 s into a minute)


@pytest.mark.xfail(strict=True, reason="open: a 2.5 s step back mid-run meets the opening burst")
@looptime.enabled(strict=True)
async def test_a_step_back_of_binances_clock_mid_run_does_not_overrun_a_window() -> None:
    side = Neighbour(lambda window: 0, 0.05, 0.3, phase=0.5, seed=1)

    async def step() -> None:
        await anyio.sleep(STEP_AT)
        side.exchange.skew -= 2.5

    client = side.exchange.client()
    async with client, anyio.create_task_group() as group:
        group.start_soon(step)
        async with anyio.create_task_group() as callers:
            for _ in range(10):
                callers.start_soon(side.calls, client, (side.first + 10) * 60)
    rows = side.rows(10)
    assert side.refused() == Counter(), rows
    assert [row for row in rows if row[1] > LIMIT] == [], rows
