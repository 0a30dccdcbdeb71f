"""A lone process idle for minutes resumes with a burst beside a new neighbour.

Ours (10 callers of PM auto-collection, 750 of /papi's 6000 a call, the same
client all along) fills windows 0-3, is idle from window 5 to 7, and resumes at
window 8's opening (or 0.5 s or 5 s after it). Meanwhile another process
started spending 3000 at each minute's opening (from window 6), unseen: nothing
of ours was answered there. Ours resumes with its whole burst before any report
of that window, 4500 served beside the 3000: a 429, three 418s, and the next
minute banned (answers 0.05-0.35 s and 0.5-2.5 s, every start). After an idle
window the opening to meet moves to the one after the resumed window
(``_first_opening``: ``lo + 1``), so the resumed window itself is not waited on.

Deterministic (looptime).
"""

from __future__ import annotations

from collections import Counter

import anyio
import looptime
import pytest

from tests.neighbour import LIMIT, Neighbour


@pytest.mark.parametrize("resume", [0.0, 0.5, 5.0])
@pytest.mark.parametrize(("latency", "jitter"), [(0.05, 0.3), (0.5, 2.0)])
@looptime.enabled(strict=True)
async def test_a_burst_after_idle_minutes_meets_a_neighbour_that_came_meanwhile(
    latency: float, jitter: float, resume: float
) -> None:
    side = Neighbour(lambda window: 3000 if window >= 6 else 0, latency, jitter)
    client = side.exchange.client()
    first = side.first

    async def caller() -> None:
        await side.calls(client, (first + 3) * 60)
        await anyio.sleep((first + 8) * 60 + resume - side.now())
        await side.calls(client, (first + 11) * 60)

    async with client, anyio.create_task_group() as group:
        group.start_soon(side.run)
        async with anyio.create_task_group() as callers:
            for _ in range(10):
                callers.start_soon(caller)
        group.cancel_scope.cancel()
    refused, rows = side.refused(), side.rows(11)
    assert [ours for _, ours, _ in rows[5:8]] == [0, 0, 0], rows  # idle there
    assert refused == Counter(), rows
    assert [row for row in rows if row[1] + row[2] > LIMIT] == [], rows
    assert side.over == 0, rows
