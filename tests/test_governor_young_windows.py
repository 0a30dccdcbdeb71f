"""The first windows after a start (``_young``): what it costs, and what is open.

A heavy pool goes one request at a time to the end of the window it warmed in
(and of the next when it warmed in a window's last eighth). Light requests on
the same pool are not held back by that (a lone process with one PM
auto-collection and 30 callers of pm_balances, weight 20, answers 0.5-0.6 s:
2850 or 950 in its first windows when they were, 5990 or 5610 before).

A lone process, one answer 5-45 s late among its first requests after it
warmed (found by review, branch break26): requests written after the late one
were answered before it, their reports counted it (in flight) as a doubt, and
its answer, after the next window opened, may be either window's: the 750
those reports counted was left as someone else's (``_undoubt``), a reservation
for nobody fading by halves, each crumb a whole request (4500, then 5250 for up
to 9 windows). A governor that never saw anyone else now reads it as the
window its report is read as (``settle``). Over 256 runs (seeds 1-2, phases
10/30/53/55, both profiles, 5-45 s late), the first full window is short by a
request in 84 (48 before the first-windows rule; never later, 2 before this
fix); no 429, no 418.

Two processes started at 59.5 s, one answer dropped, beside a neighbour
spending 3000 at each opening: 6750 and a 429 in window 1 (1 run of 960); the
dropped answer was a cold request's, which now keeps its place until the pool
warms: no 429.

Four processes started together met one 429 in a later window (window 5, 10
of 72 runs): fixed, and pinned in ``tests/test_governor_start_together.py``
(a report of none that may be the older window's).

Deterministic (looptime).
"""

from __future__ import annotations

from collections import Counter

import anyio
import looptime
import pytest

from binance_transfers.sim import Fault
from tests.neighbour import LIMIT, Neighbour


async def _lone_late(seed: int, phase: float, at: float, late: float, windows: int) -> Neighbour:
    side = Neighbour(lambda w: 0, 0.05, 0.3, phase=phase, seed=seed)
    ex = side.exchange

    async def inject() -> None:
        await anyio.sleep(at)  # a second or two after the start: just warmed
        ex.faults.add(Fault.late(late), endpoint="pm_auto_collect", times=1)

    client = ex.client()
    async with client, anyio.create_task_group() as callers:
        callers.start_soon(inject)
        for _ in range(10):
            callers.start_soon(side.calls, client, (side.first + windows) * 60)
    return side


@pytest.mark.parametrize(
    ("seed", "phase", "at", "late"),
    [
        (1, 55.0, 1.5, 10.0),  # young2: 6000, 4500, 6000...; 2e38f3d: 6000 x 4
        (1, 53.0, 2.0, 5.0),  # young2: 6000, 4500, 6000...
        (2, 53.0, 1.5, 5.0),  # young2: 6000, 4500, 5250, 5250, ...
        (1, 30.0, 1.5, 45.0),  # young2: 6000, 5250, 6000...
    ],  # 2e38f3d: 6000 in every window, all four
)
@looptime.enabled(strict=True)
async def test_a_late_answer_in_the_first_windows_costs_at_most_one_request_once(
    seed: int, phase: float, at: float, late: float
) -> None:
    side = await _lone_late(seed, phase, at, late, 8)
    rows = side.rows(8)
    assert side.refused() == Counter(), rows
    assert rows[1][1] >= LIMIT - 750, rows  # one at a time, and the late one: once
    assert [row for row in rows[2:-1] if row[1] != LIMIT] == [], rows


@looptime.enabled(strict=True)
async def test_two_started_at_59_5_with_a_dropped_answer_beside_a_3000_neighbour() -> None:
    """young2: 2250, 3750 (+3000 = 6750, a 429 in window 1); 2e38f3d: 2250, 3000, no 429.
    The only run of 960 (n 1-3, phases 0-59.5, fast/slow, no fault/drop/late,
    neighbour 0/1500/3000) that overruns on young2 and not on 2e38f3d. The
    dropped answer is a cold request's: it now keeps its place until the pool
    warms (``Pool.lost``), and the window is not overrun."""
    side = Neighbour(lambda w: 3000, 0.02, 0.01, phase=59.5, seed=1)
    side.exchange.faults.add(Fault.drop(), endpoint="pm_auto_collect", times=1)
    clients = [side.exchange.client() for _ in range(2)]
    async with anyio.create_task_group() as group:
        group.start_soon(side.run)
        async with anyio.create_task_group() as callers:
            for client in clients:
                await client.__aenter__()
                for _ in range(10):
                    callers.start_soon(side.calls, client, (side.first + 6) * 60)
        group.cancel_scope.cancel()
    for client in clients:
        await client.__aexit__(None, None, None)
    rows = side.rows(6)
    assert side.refused() == Counter(), rows
    assert [row for row in rows if row[1] + row[2] > LIMIT] == [], rows


@pytest.mark.parametrize("phase", [0.5, 53.0])
@looptime.enabled(strict=True)
async def test_light_calls_after_one_heavy_call_are_not_held_back_in_the_first_windows(
    phase: float,
) -> None:
    """A lone process: one PM auto-collection (750) at its start, 30 callers of
    pm_balances (20) on the same /papi pool, answers 0.5-0.6 s late. The heavy
    request makes the pool ``_few`` for good; ``_young`` holds back heavy
    requests only (it sent the light ones one per trip through the window it
    warmed in, and the next at phase 53)."""
    side = Neighbour(lambda w: 0, 0.5, 0.1, phase=phase, seed=1)
    until = (side.first + 4) * 60
    client = side.exchange.client()

    async def lights() -> None:
        while side.now() < until:
            await client.pm_balances()

    async with client, anyio.create_task_group() as callers:
        callers.start_soon(client.pm_auto_collect)
        for _ in range(30):
            callers.start_soon(lights)
    rows = side.rows(4)
    # young2: phase 0.5: 2850, 5980, 6000, 6000; phase 53: 950, 2180, 5980, 6000
    # 2e38f3d: phase 0.5: 5990, 6000, 6000, 6000; phase 53: 5610, 5980, 6000, 6000
    full = rows if phase < 1 else rows[1:]  # started 0.5 s in: window 0 is 59.5 s long
    assert side.refused() == Counter(), rows
    assert [row for row in full if row[1] < LIMIT - 100] == [], rows
