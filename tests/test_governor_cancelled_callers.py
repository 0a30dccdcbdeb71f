"""Callers cancelled mid-flight beside a neighbour: nothing leaks, nothing polls.

Ten callers of PM auto-collection (750 of /papi's 6000 a window), each call
wrapped in ``anyio.move_on_after(0.1..0.3)``, beside ``tests.neighbour``'s
process spending 0/1500/3000 at the minute openings. The calls are cancelled
in the write-ahead gate, in the governor's queue (its leader too), and on the
wire (detached: they still land). A caller that retries at once after each
cancellation makes one call every 0.2 s: 34,500 in 12 windows, each its own
deadline on the fake clock, which looptime reaches only after 42 idle turns of
the loop (1.6 million turns, 20-60 s of wall time here, where the governor's
own timers went off twice in 2 windows). These callers back off 1-3 s after a
cancellation instead (1,500 calls in 6 windows, 2 s).
"""

from __future__ import annotations

import asyncio
import functools
import random
import sys
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import anyio
import looptime

import binance_transfers._governor
from binance_transfers import BinanceTransfersError, Client
from tests.neighbour import LIMIT, Neighbour

WINDOWS = 6
BACKOFF = (1.0, 3.0)
GOVERNOR = str(Path(binance_transfers._governor.__file__).parent)


def _spends(window: int) -> int:
    return (0, 1500, 3000)[window % 3]


async def _calls(
    side: Neighbour, client: Client, until: float, rng: random.Random | None, counts: Counter[str]
) -> None:
    while side.now() < until:
        counts["calls"] += 1
        with anyio.move_on_after(rng.uniform(0.1, 0.3) if rng else float("inf")) as scope:
            try:
                await client.pm_auto_collect()
            except BinanceTransfersError:
                await anyio.sleep(1)
        if scope.cancelled_caught and rng is not None:
            counts["cancelled"] += 1
            await anyio.sleep(rng.uniform(BACKOFF[0], BACKOFF[1]))


async def _run(seed: int, cancel: bool) -> tuple[Neighbour, Client, Counter[str]]:
    side = Neighbour(_spends, 0.05, 0.3, phase=30.0, seed=seed)
    rng = random.Random(seed)
    counts = Counter[str]()
    loop = asyncio.get_running_loop()
    call_at = loop.call_at

    def counted(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        frame: FrameType | None = sys._getframe(1)
        while frame is not None and GOVERNOR not in frame.f_code.co_filename:
            frame = frame.f_back
        if frame is None:
            return call_at(when, callback, *args, **kwargs)

        def fire(*a: Any) -> None:  # a timer the governor set went off
            counts["governor wake-ups"] += 1
            callback(*a)

        return call_at(when, fire, *args, **kwargs)

    client = side.exchange.client()
    async with client, anyio.create_task_group() as group:
        group.start_soon(side.run)
        loop.call_at = counted  # type: ignore[method-assign, assignment]
        try:
            async with anyio.create_task_group() as callers:
                for _ in range(10):
                    callers.start_soon(
                        _calls,
                        side,
                        client,
                        (side.first + WINDOWS) * 60,
                        random.Random(rng.random()) if cancel else None,
                        counts,
                    )
            await anyio.sleep(40)  # every detached request answers
            # Nothing held back for the cancelled: four more calls, queued, go
            # within three windows.
            async with anyio.create_task_group() as last:
                for _ in range(4):
                    last.start_soon(functools.partial(client.pm_auto_collect, max_wait=180))
        finally:
            del loop.call_at
        group.cancel_scope.cancel()
    return side, client, counts


@looptime.enabled(strict=True)
async def test_cancelled_callers_cost_no_capacity_and_no_wakeups() -> None:
    side, client, counts = await _run(1, cancel=True)
    rows = side.rows(WINDOWS)
    assert side.refused() == Counter(), rows
    assert counts["cancelled"] > 1000, counts
    # Every cancellation left the queue and gave its permit back or landed: no
    # less weight a window than callers never cancelled (more, some seeds: the
    # governor's share beside a neighbour depends on when demand comes).
    plain, _, _ = await _run(1, cancel=False)
    base = plain.rows(WINDOWS)
    assert [row for row, b in zip(rows, base, strict=True) if row[1] < b[1]] == [], (rows, base)
    assert [row for row in rows if row[1] + row[2] > LIMIT] == [], rows
    busy = [p for p in client.governor.snapshot() if p.in_flight or p.waiters]
    assert busy == []
    assert "waiters=0 " in repr(client.governor)  # no record of a cancelled caller kept
    papi = next(p for p in client.governor.snapshot() if p.key == "papi-ip")
    assert papi.used == papi.landed, papi  # nothing held for a request never sent
    # Nobody left counted as queued: the next call goes by the next opening.
    assert client.estimate("pm_auto_collect") <= (int(side.now() // 60) + 1) * 60 + 1
    # No polling: the governor's queue sleeps until a window opens or an
    # answer comes (its leader's timer, cancelled with the leader, does not go off).
    assert counts["governor wake-ups"] <= 2 * WINDOWS, counts
