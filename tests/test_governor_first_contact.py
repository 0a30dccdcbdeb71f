"""First contact with a steady neighbour that spends at every minute's opening.

Another process on the IP spends 3000 of /papi's 6000 at each minute's opening
on Binance's clock (a script run every minute at :00, started with ours), seen
by us only through ``X-MBX-USED-WEIGHT-1M``. Our new process (10 callers of PM
auto-collection, 750 a call) starts mid-minute, before the neighbour's first
spend: its first answers show no one else. It used to open the next minute, the
first whose opening it saw, with 8 requests at once (6000 of 6000) into a window
the neighbour had just half filled: a 429, then 418s for the requests already on
their way, and the IP banned for the next minute. Swept (seeds 1-10, answers
0.05-0.35 s, 0.2-1.0 s and 0.5-2.5 s, starts 0, 30 and 59 s into the minute): 68
of 90 runs with a 429 and 66 with 418s, all in that window.

A new governor now sends one request into the first window whose opening it
sees and waits for its report before the others: one round trip, once.

Deterministic (looptime).
"""

from __future__ import annotations

import asyncio
from collections import Counter

import anyio
import looptime
import pytest

from tests.neighbour import LIMIT, Neighbour
from tests.test_governor_shared_ip import _callers

WINDOWS = 4


async def _beside_neighbour(
    phase: float, latency: float, jitter: float, spend: int, later: int = 0
) -> tuple[Counter[tuple[int, int]], list[tuple[int, int, int]], int]:
    """10 PM auto-collection callers for ``WINDOWS + later`` minutes from ``phase`` s
    into Binance's minute, beside a process spending ``spend`` at every minute's
    opening from the ``later + 1``-th after our start on: our 429s/418s by (window
    from our start, status), (window, ours, the neighbour's) per window, and the
    neighbour's requests that met a window over its limit."""
    side = Neighbour(lambda window: spend if window > later else 0, latency, jitter, phase=phase)
    start = asyncio.get_running_loop().time()
    windows = WINDOWS + later
    async with anyio.create_task_group() as group:
        group.start_soon(side.run)
        stop = start + windows * 60
        group.start_soon(_callers, side.exchange.client(), 10, start, stop, "pm_auto_collect")
        await anyio.sleep(windows * 60 + 5)
        group.cancel_scope.cancel()
    return side.refused(), side.rows(windows), side.over


@pytest.mark.parametrize(
    ("phase", "latency", "jitter"),
    [(0.0, 0.05, 0.3), (30.0, 0.05, 0.3), (30.0, 0.5, 2.0), (59.0, 0.05, 0.3)],
)
@looptime.enabled(strict=True)
async def test_the_first_opening_a_new_governor_sees_is_met_by_one_request(
    phase: float, latency: float, jitter: float
) -> None:
    """No 429 and no 418 at all, no window over the limit, and the neighbour's own
    requests never refused. Before: 8 of ours let go at the opening of window 1
    (4500 served beside the neighbour's 3000, a 429, 418s, window 2 banned)."""
    refused, rows, over = await _beside_neighbour(phase, latency, jitter, 3000)
    assert refused == Counter(), rows
    assert [row for row in rows if row[1] + row[2] > LIMIT] == [], rows
    assert over == 0, rows
    assert rows[1][1] > 0, rows  # it ran beside the neighbour


@pytest.mark.parametrize("later", [1, 4])
@pytest.mark.parametrize(("phase", "latency", "jitter"), [(30.0, 0.05, 0.3), (30.0, 0.5, 2.0)])
@looptime.enabled(strict=True)
async def test_a_neighbour_first_spending_at_a_later_opening_is_met_by_half_a_window(
    phase: float, latency: float, jitter: float, later: int
) -> None:
    """The same neighbour, first spending at the 2nd (or 5th) opening after our start:
    windows alone until then say nothing of an opening to come. Only the first
    opening was met by one request; the neighbour's was met by 8 of ours at once
    (4500 served beside its 3000, a 429, 418s, the next window banned): swept
    (first spend at the 2nd-6th opening, 5 seeds, answers 0.05-0.35 s and
    0.5-2.5 s), every run. Now, while no one else was heard of, half of a window
    goes at each later opening and the rest after a report of it."""
    refused, rows, over = await _beside_neighbour(phase, latency, jitter, 3000, later)
    assert refused == Counter(), rows
    assert [row for row in rows if row[1] + row[2] > LIMIT] == [], rows
    assert over == 0, rows
    assert [ours for _, ours, _ in rows[1 : later + 1]] == [LIMIT] * later, rows  # alone
    assert rows[later + 1][1] > 0, rows  # it ran beside the neighbour


@pytest.mark.parametrize(("phase", "latency", "jitter"), [(30.0, 0.05, 0.3), (30.0, 0.5, 2.0)])
@looptime.enabled(strict=True)
async def test_alone_the_first_opening_probe_costs_no_weight(
    phase: float, latency: float, jitter: float
) -> None:
    """Alone on the IP, the probe delays the first full window's burst by a round trip
    and costs nothing of it: every window from the first full one holds 6000."""
    refused, rows, _ = await _beside_neighbour(phase, latency, jitter, 0)
    assert refused == Counter(), rows
    assert [ours for _, ours, _ in rows[1:]] == [LIMIT] * (WINDOWS - 1), rows
