"""A neighbour that spent at minute openings, left for minutes, and comes back.

Another process on the IP spends 3000 of /papi's 6000 at each minute's opening
(a script run every minute at :00) for two minutes, stops for five or eight,
then starts again. Ours (10 callers of PM auto-collection, 750 a call) meets
its first spend with half a window before that opening's report; once the
neighbour is known gone, ours opens each window with its whole burst again, so
the neighbour's return is met by 4500 beside its 3000: a 429, then 418s for the
requests already on their way, and the IP banned for the next minute (seeds 1
and 2, answers 0.05-0.35 s and 0.5-2.5 s: every run).

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

WINDOWS = 14


async def _neighbour_returns(
    latency: float, jitter: float, back: int, seed: int, spend: int = 3000, away: int = 2
) -> tuple[Counter[tuple[int, int]], list[tuple[int, int, int]], int]:
    """Ours from 30 s into a minute for ``WINDOWS`` minutes; the neighbour spends
    ``spend`` at the openings of windows ``away`` to 3 (from our start) and of
    ``back`` on: our 429s/418s by (window, status), (window, ours, the
    neighbour's), and the neighbour's requests that met a window over its limit."""
    side = Neighbour(
        lambda window: spend if away <= window <= 3 or window >= back else 0,
        latency,
        jitter,
        seed=seed,
    )
    start = asyncio.get_running_loop().time()
    async with anyio.create_task_group() as group:
        group.start_soon(side.run)
        stop = start + WINDOWS * 60
        group.start_soon(_callers, side.exchange.client(), 10, start, stop, "pm_auto_collect")
        await anyio.sleep(WINDOWS * 60 + 5)
        group.cancel_scope.cancel()
    return side.refused(), side.rows(WINDOWS), side.over


def _neither_overran(
    refused: Counter[tuple[int, int]], rows: list[tuple[int, int, int]], over: int, met: int
) -> None:
    """No 429 or 418 of ours, no window over its limit, none of the neighbour's
    requests met a full window, and ours ran in window ``met`` beside it."""
    assert refused == Counter(), rows
    assert [row for row in rows if row[1] + row[2] > LIMIT] == [], rows
    assert over == 0, rows
    assert rows[met][1] > 0, rows


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("back", [9, 12])
@pytest.mark.parametrize(("latency", "jitter"), [(0.05, 0.3), (0.5, 2.0)])
@looptime.enabled(strict=True)
async def test_a_neighbour_returning_after_minutes_away_is_not_overrun(
    latency: float, jitter: float, back: int, seed: int
) -> None:
    refused, rows, over = await _neighbour_returns(latency, jitter, back, seed)
    _neither_overran(refused, rows, over, back)


@pytest.mark.parametrize("spend", [3750, 4500])
@pytest.mark.parametrize(("latency", "jitter"), [(0.05, 0.3), (0.5, 2.0)])
@looptime.enabled(strict=True)
async def test_a_neighbour_first_spending_more_than_half_at_a_later_opening_is_not_overrun(
    latency: float, jitter: float, spend: int
) -> None:
    """A neighbour first spending at the 4th opening after our start, more than
    half the window (5 or 6 auto-collections' worth): the half window ours sent
    before that opening's report (3000) and its spend overfilled the window: a
    429 (3750), a 418 and the next minute banned (4500), every run. A quarter
    (1500) leaves it room up to 4500."""
    refused, rows, over = await _neighbour_returns(latency, jitter, 4, 1, spend, away=4)
    _neither_overran(refused, rows, over, 4)


@pytest.mark.parametrize("spend", [1500, 3000, 4500])
@pytest.mark.parametrize("back", [7, 10])
@pytest.mark.parametrize(("latency", "jitter"), [(0.05, 0.3), (0.5, 2.0)])
@looptime.enabled(strict=True)
async def test_a_neighbour_met_at_our_first_opening_and_back_later_is_not_overrun(
    latency: float, jitter: float, back: int, spend: int
) -> None:
    """The neighbour spends at our first opening already (windows 1-3), leaves, and
    comes back. Heard of before our first opening's report, it ended the rule that
    meets each opening by a quarter of a window: once its reservation faded, its
    return met the rest of the window as a burst (429s and 418s in 140 of 288
    runs of a sweep: away 3-9 minutes, 1500-4500, four start phases, both
    link profiles)."""
    refused, rows, over = await _neighbour_returns(latency, jitter, back, 1, spend, away=1)
    _neither_overran(refused, rows, over, back)
