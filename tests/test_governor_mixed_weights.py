"""Two processes on one IP, heavy and light requests in /papi (review finding F7).

Process A: PM auto-collection callers (750 of /papi's 6000 a minute); process B:
pm_balances callers (20 each), each process with its own governor, on the
simulated exchange. Two runs earned 418 bans (pre-existing, up to 8ca4a2d): B
joining mid-window (1:35) with answers 0.5-2.5 s late (window 2: 6040 of 6000, one
429, then eight 418s and the IP banned into window 3); and both starting together
at 30 s into a minute (window 0: 6100, a 429 and two 418s, a 418 again in window
1). A 418 bans the IP for both processes, whatever the window.

Traced. Both start together: A read B's 20s in its reports as its own requests
in flight (3020 against 3000 answered and 2 x 750 in flight), filled the window
to 6000 of its own, and B's requests on the way landed after its 429. It passes
since the first-news rules below and for a newcomer (a changed course: the
misreading itself is left; a rule reading a report's excess that no sum of ours
in flight makes up as someone else's fixed it, but made a lone process of mixed
weights read its own dropped or boundary requests as a neighbour's, and was
withdrawn).
B joining at 1:35: A's 8th request was written before B's first one
landed (nothing could tell A); B, told by that first answer that A spent 5250,
went on sending into the same window (it held back A's rate over a lag and one
request as heavy as its own, 20, not A's 750), and A's 429 came first: 8 x 418.
The window of a first news of others now holds back one request as heavy as
the heaviest the pool serves (750): B waits for the next window; one 429 (A's).
"""

from __future__ import annotations

import asyncio
from collections import Counter

import anyio
import looptime
import pytest

from binance_transfers._clock import LoopClock
from binance_transfers.sim import Fault, SimulatedExchange
from tests.test_governor_shared_ip import _callers

EPOCH = 1_767_225_600.0  # a minute's start on Binance's clock


async def _refusals(
    heavy: int, light: int, latency: float, jitter: float, seed: int, join: float
) -> tuple[Counter[tuple[int, int]], list[int]]:
    """``heavy`` PM auto-collection callers from 30 s into a minute and ``light``
    pm_balances callers from ``join`` s later, each process with its own governor,
    for 7 minutes: (429s and 418s by (window, status), /papi's use per window)."""
    exchange = SimulatedExchange(seed=seed, clock=LoopClock(epoch=EPOCH + 30.0))
    exchange.add_demo_account()
    exchange.faults.add(Fault.latency(latency, jitter=jitter))
    now = asyncio.get_running_loop().time()
    async with anyio.create_task_group() as group:
        group.start_soon(_callers, exchange.client(), heavy, now, now + 420, "pm_auto_collect")
        group.start_soon(_callers, exchange.client(), light, now + join, now + 420, "pm_balances")
    first = min(int(e.arrived // 60) for e in exchange.ledger)
    refused = Counter(
        (int(e.arrived // 60) - first, e.status) for e in exchange.ledger if e.status in (418, 429)
    )
    weights = exchange.ledger.window_weights("papi-ip")
    return refused, [weights[w] for w in sorted(weights)]


@pytest.mark.parametrize(
    ("heavy", "light", "latency", "jitter", "seed", "join"),
    [
        (2, 8, 0.5, 2.0, 1, 95.0),
        (3, 4, 0.05, 0.3, 14, 0.0),
    ],
    ids=["light-joins-at-1m35s-slow-answers", "both-at-once-seed-14"],
)
@looptime.enabled(strict=True)
async def test_heavy_and_light_processes_on_one_ip_earn_no_ban(
    heavy: int, light: int, latency: float, jitter: float, seed: int, join: float
) -> None:
    """Never a 418, anywhere."""
    refused, used = await _refusals(heavy, light, latency, jitter, seed, join)
    assert [k for k in refused if k[1] == 418] == [], (dict(refused), used)


@pytest.mark.parametrize(
    ("heavy", "light", "latency", "jitter", "seed", "join"),
    [
        pytest.param(2, 8, 0.5, 2.0, 1, 5.0, id="light-joins-at-35s-slow-answers"),
        pytest.param(2, 20, 0.2, 0.8, 1, 0.0, id="both-at-once-mid-answers"),
    ],
)
@looptime.enabled(strict=True)
async def test_a_light_newcomer_beside_an_unaware_heavy_filler_earns_no_ban(
    heavy: int, light: int, latency: float, jitter: float, seed: int, join: float
) -> None:
    """Never a 418 (the 2 of 54 sweep runs left: 3 heavy/light mixes x 3 seeds x 6
    joins). Traced in the first: A, unaware of B, fills window 0 with requests B
    cannot see on their way; B's cold probe, landed 37.4 s into the minute, shows
    4520 of 6000, room for B's light requests, which it sends (the window a
    newcomer leaves to the others is left for heavy requests only: closing it for
    light ones too broke light crowds); those landing after A's last request, and
    A's 429, are 418s, and the IP is banned for window 1 (6120 then 0). It passes
    since a light newcomer, beside heavier requests and with answers that take
    time, leaves that window to them once one more of theirs would fill it.

    Both starting together, A alone used to fill the window (8 x 750, its last
    landing at 2.89 s) while B's reports up to 2.24 s showed A's 3420: B's
    requests written on that news at 2.9-3.1 s landed after it, B's own 429 and
    two 418s. A heavy pool now warms only at an answer written two round trips
    after its start, which counts B's first requests: A shares from the start."""
    refused, used = await _refusals(heavy, light, latency, jitter, seed, join)
    assert [k for k in refused if k[1] == 418] == [], (dict(refused), used)
