"""Binance's clock steps back 2.5 s mid-run, long after the sync (open: a strict xfail).

A lone process (10 callers of PM auto-collection, 750 of /papi's 6000 a
minute) fills every window. 50 s into its fourth window, the exchange's clock
moves back 2.5 s. The governor, sure of its estimate, opens the next window
2.5 s before the exchange does: its first two requests land in the full
window (7500 of 6000), a 429 and a 418. The ban's end, read on the same
stale clock, came 2.5 s early, and the two clock syncs sent then earned two
more 418s; a ban is now waited out a twentieth longer (the second test).
Found by a review of the governor (issue 7), beside neighbours or not, with
one to three processes; the issue's targets cover a clock 2.5 s off at the
start and steps of 10 ms, not this. Not fixed: meeting every opening with one
request first (as beside others, ``_first_opening``), whose report would show
the old window's count, may be the way. Deterministic (looptime).
"""

from __future__ import annotations

from collections import Counter

import anyio
import looptime
import pytest

from tests.neighbour import LIMIT, Neighbour

STEP_AT = 230.0  # loop seconds: 50 s into the fourth window (start 0.5 s into a minute)


async def _run() -> Neighbour:
    """A lone process filling every window for 10; the step back at ``STEP_AT``."""
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
    return side


@pytest.mark.xfail(strict=True, reason="open: a 2.5 s step back mid-run meets the opening burst")
@looptime.enabled(strict=True)
async def test_a_step_back_of_binances_clock_mid_run_does_not_overrun_a_window() -> None:
    side = await _run()
    rows = side.rows(10)
    assert side.refused() == Counter(), rows
    assert [row for row in rows if row[1] > LIMIT] == [], rows


@looptime.enabled(strict=True)
async def test_a_ban_met_after_a_step_back_of_binances_clock_is_not_met_again() -> None:
    """The same run: the 429 and the first 418 stay (above), but no request reaches
    Binance during the ban: its end is waited out with a margin (was: two more
    418s, for the clock syncs sent 2.5 s before it ended)."""
    side = await _run()
    refused = [
        (entry.endpoint, entry.status)
        for entry in side.exchange.ledger
        if entry.status in (418, 429)
    ]
    assert refused == [("pm_auto_collect", 429), ("pm_auto_collect", 418)], side.rows(10)
    rows = side.rows(11)
    # Back at work after the ban (it slow-starts, as after any ban): 0 in window
    # 6, where the ban's margin ended, then 750, 1500, 3000, 5250.
    assert sum(ours for _, ours, _ in rows[6:11]) >= LIMIT * 3 // 2, rows
