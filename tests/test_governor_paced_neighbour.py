"""A neighbour whose spend is not one burst at each window's start (review finding F1).

A steady-neighbour rule that takes another process for done in a window once
our first report there shows the same spend as in the window before, and then
holds nothing back for it, overruns a neighbour that spends the very same
amount every window in a few requests over the first seconds (a cron job
sending four heavy requests one after the other, or two jobs at :00 and :05):
that first report shows only its first part, and the rest lands on top of a
window already filled (7500-8250 of 6000 every window). The neighbour's later
requests then meet a window over its limit (Binance answers them 429, and an IP
that keeps going gets a 418 ban: ours too). Today's rules hold back for the
neighbour's steps and pass the first two tests; a neighbour that MOVES its
spend later in the window (kept visible as a strict xfail) is overrun still.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import anyio
import looptime
import pytest

from binance_transfers import ENDPOINTS
from binance_transfers._clock import LoopClock
from binance_transfers.sim import Fault, SimulatedExchange
from tests.test_governor_shared_ip import _callers

E0 = 1_767_225_600.0  # a minute's start on Binance's clock
WINDOWS = 10
LIMIT = 6000  # /papi's weight a minute

# (seconds into each window, weight spent then): 3000 a window, every window.
SCHEDULES: dict[str, tuple[tuple[float, int], ...]] = {
    "four-requests-over-7.5s": ((0.0, 750), (2.5, 750), (5.0, 750), (7.5, 750)),
    "four-requests-over-30s": ((0.0, 750), (10.0, 750), (20.0, 750), (30.0, 750)),
    "two-jobs-at-0s-and-5s": ((0.0, 1500), (5.0, 1500)),
}


async def _beside(
    schedule: tuple[tuple[float, int], ...] | Callable[[int], tuple[tuple[float, int], ...]],
    latency: float,
    jitter: float,
    phase: float,
) -> tuple[list[tuple[int, int, int]], Counter[tuple[int, int]], Counter[int]]:
    """Three callers of pm_auto_collect (750 of /papi's 6000) for ``WINDOWS`` minutes
    beside a process spending ``schedule`` in every window; per window (index from
    our first arrival, ours, the neighbour's), our 429s/418s by (window, status), and
    the neighbour's requests that found the window over its limit, by window."""
    exchange = SimulatedExchange(seed=1, clock=LoopClock(epoch=E0 + phase))
    exchange.add_demo_account()
    exchange.faults.add(Fault.latency(latency, jitter=jitter))
    papi = tuple(
        spec
        for spec in exchange.limiter.pools(ENDPOINTS["pm_auto_collect"], None)
        if spec.key == "papi-ip"
    )
    loop = asyncio.get_running_loop()
    stop = loop.time() + WINDOWS * 60
    spent: Counter[int] = Counter()
    over: Counter[int] = Counter()

    def binance_now() -> float:
        return exchange.clock.time() + exchange.skew

    def plan(index: int) -> tuple[tuple[float, int], ...]:
        return schedule(index) if callable(schedule) else schedule

    async def neighbour() -> None:
        start = int(binance_now() // 60) + 1
        while loop.time() < stop:
            window = int(binance_now() // 60) + 1
            for offset, weight in plan(window - start):
                await anyio.sleep(window * 60 + offset - binance_now())
                now = binance_now()
                for _ in range(weight // papi[0].weight):
                    _, exceeded = exchange.limiter.charge(papi, "127.0.0.1", now)
                    if exceeded:  # Binance would answer this request of theirs 429
                        over[int(now // 60)] += 1
                spent[int(now // 60)] += weight

    async with anyio.create_task_group() as group:
        group.start_soon(neighbour)
        group.start_soon(_callers, exchange.client(), 3, loop.time(), stop, "pm_auto_collect")
        await anyio.sleep(WINDOWS * 60 + 5)
        group.cancel_scope.cancel()
    first = min(int(e.arrived // 60) for e in exchange.ledger)
    refused = Counter(
        (int(e.arrived // 60) - first, e.status) for e in exchange.ledger if e.status in (418, 429)
    )
    ours = exchange.ledger.window_weights("papi-ip")
    rows = [(w - first, ours[w], spent.get(w, 0)) for w in sorted(ours)]
    return rows, refused, Counter({w - first: n for w, n in over.items()})


@pytest.mark.parametrize(
    ("schedule", "latency", "jitter", "phase"),
    [
        ("four-requests-over-7.5s", 0.05, 0.3, 0.0),
        ("four-requests-over-7.5s", 0.05, 0.3, 30.0),
        ("four-requests-over-30s", 0.05, 0.3, 0.0),
        ("four-requests-over-30s", 0.5, 2.0, 0.0),
        ("two-jobs-at-0s-and-5s", 0.05, 0.3, 30.0),
        ("two-jobs-at-0s-and-5s", 0.5, 2.0, 0.0),
    ],
)
@looptime.enabled(strict=True)
async def test_a_steady_neighbour_spending_over_a_few_seconds_is_not_overrun(
    schedule: str, latency: float, jitter: float, phase: float
) -> None:
    """The neighbour spends 3000 of every window, the same each time, in parts over
    its first seconds. After the first two windows (the first contact is blind) no
    window may hold more than 6000, and no request (ours or the neighbour's) may meet
    a 429 or a 418. A rule that trusts a first report: 5250 of ours beside its 3000
    (8250 of 6000) in every window from the fourth on (four requests over 7.5 s or
    30 s), 4500 beside 3000 and our own 429s (two jobs at :00 and :05)."""
    rows, refused, over = await _beside(SCHEDULES[schedule], latency, jitter, phase)
    assert len(rows) >= WINDOWS - 1, rows  # it ran
    late = [(w, ours, theirs) for w, ours, theirs in rows if w >= 2]
    assert [row for row in late if row[1] + row[2] > LIMIT] == [], rows
    assert {w: n for w, n in over.items() if w >= 2} == {}, (over, rows)
    assert [k for k in refused if k[1] == 418 or k[0] >= 2] == [], (refused, rows)


def _steady_then(
    after: tuple[tuple[float, int], ...],
) -> Callable[[int], tuple[tuple[float, int], ...]]:
    """3000 at each window's start for five windows, then the same 3000 as ``after``."""
    return lambda index: ((0.0, 3000),) if index < 5 else after


@pytest.mark.parametrize(
    ("after", "latency", "jitter"),
    [
        (((0.0, 1500), (30.0, 1500)), 0.05, 0.3),
        (((0.0, 1500), (5.0, 1500)), 0.05, 0.3),
        (((0.0, 1500), (5.0, 1500)), 0.5, 2.0),
    ],
    ids=["half-at-30s", "half-at-5s", "half-at-5s-slow-answers"],
)
@looptime.enabled(strict=True)
async def test_a_steady_neighbour_that_splits_the_same_spend_is_not_overrun(
    after: tuple[tuple[float, int], ...], latency: float, jitter: float
) -> None:
    """The neighbour spends 3000 at every window's start for five windows (taken for
    steady: nothing held back), then the very same 3000 in two halves. No window may
    then hold more than 6000, and no request may meet a 429 or a 418. A rule that
    trusts a first report: 3750-4500 of ours beside its 3000 (up to 7500 of 6000)
    from the third window after the change."""
    rows, refused, over = await _beside(_steady_then(after), latency, jitter, 0.0)
    assert len(rows) >= WINDOWS - 1, rows  # it ran
    late = [(w, ours, theirs) for w, ours, theirs in rows if w >= 2]
    assert [row for row in late if row[1] + row[2] > LIMIT] == [], rows
    assert {w: n for w, n in over.items() if w >= 2} == {}, (over, rows)
    assert [k for k in refused if k[1] == 418 or k[0] >= 2] == [], (refused, rows)


@looptime.enabled(strict=True)
async def test_a_neighbour_that_moves_its_spend_later_is_not_overrun() -> None:
    """3000 at each window's start for five windows, then the same 3000 at :15:
    no window may hold more than 6000, no request meet a 429 or a 418. Today: our
    5250 beside its 3000 (8250 of 6000) in the third and fourth moved windows (the
    reservation fades while the neighbour's spend shows up after our burst)."""
    rows, refused, over = await _beside(_steady_then(((15.0, 3000),)), 0.05, 0.3, 0.0)
    assert len(rows) >= WINDOWS - 1, rows  # it ran
    late = [(w, ours, theirs) for w, ours, theirs in rows if w >= 2]
    assert [row for row in late if row[1] + row[2] > LIMIT] == [], rows
    assert {w: n for w, n in over.items() if w >= 2} == {}, (over, rows)
    assert [k for k in refused if k[1] == 418 or k[0] >= 2] == [], (refused, rows)
