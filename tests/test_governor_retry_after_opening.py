"""A refusal's ``retry_after`` at a window's opening, after a full window.

A lone process whose ten callers of PM auto-collection (750 of /papi's 6000 a
minute) use ``max_wait=0.05`` and sleep what a refusal tells them: its first
window fills, every caller is told to come back at the next opening, and there
each was told to come back a minute later (``retry_after`` 60 s): the full
window just ending was read as full through the next one too (``estimate``),
and nothing was sent in every other window (6000, 0, 6000, 0; review break26).
Now they are told to wait for the ending window to be past, a fraction of a
second. Deterministic (looptime).
"""

from __future__ import annotations

import anyio
import looptime
import pytest

from binance_transfers import ThrottledError
from tests.neighbour import LIMIT, PROFILES, Neighbour


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("phase", [5.0, 30.0, 55.0])
@looptime.enabled(strict=True)
async def test_callers_told_to_retry_at_an_opening_are_not_sent_a_window_away(
    phase: float, profile: str
) -> None:
    side = Neighbour(lambda window: 0, *PROFILES[profile], phase=phase, seed=1)
    client = side.exchange.client()
    until = (side.first + 4) * 60
    told: list[tuple[float, float]] = []

    async def calls() -> None:
        while side.now() < until:
            try:
                await client.pm_auto_collect(max_wait=0.05)
            except ThrottledError as refused:
                told.append((side.now(), refused.retry_after))
                await anyio.sleep(max(refused.retry_after, 0.01))

    async with client, anyio.create_task_group() as callers:
        for _ in range(10):
            callers.start_soon(calls)
    rows = side.rows(4)
    assert side.refused() == {}, rows
    assert [row for row in rows[1:-1] if row[1] != LIMIT] == [], (rows, told[:20])
