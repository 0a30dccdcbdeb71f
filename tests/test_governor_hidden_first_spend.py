"""A neighbour's first spend hidden by an ambiguous answer read as its write window's.

Found by review (branch break27) of aca5b3b (``settle``: a governor that never
saw another process resolves an ambiguous answer's doubt as landed in the
window its report is read as). A lone process started at :55 (10 callers of
pm_auto_collect, one at a time in its first windows); its request written 1.5 s
after the start travels 4 s more (``Fault.latency``, not ``Fault.late``: it
lands in window 1, not in window 0). A neighbour spends 750 at :57 of every
window. Window 0's reports after :57 show 750 above ours answered: the request
in flight explains it (a doubt), it lands in window 1, its answer is read as
window 0's and, alone, the doubt is resolved as landed there: the neighbour's
first 750 passes for ours. Window 1 opens with nothing reserved for it:
6000 of ours + its 750 at :57 = 6750, its request over the limit.

d4667a5 (``_undoubt(doubt, None)``): 5250 + 750 in every window, none over.
young5 (f22dbd5): 6750 in window 1 (one neighbour request over), 5250 after.
Sweep (seeds 1-3, phases 53/55/57, 1.0-2.0 s after the start, travel 4/6/10 s,
neighbour 750 at :56-:59 of every window; 198 runs, both trees): the changed
branch fires in 18, rows differ in those 18 only: young5 window 1 over in all
18; d4667a5 over in 15 of them too (windows 2-5, 5 neighbour requests each),
not in these 3 (travel 4 s). No 429/418 of ours in any.

Deterministic (looptime).
"""

from __future__ import annotations

from collections import Counter

import anyio
import looptime
import pytest

from binance_transfers.sim import Fault
from tests.neighbour import LIMIT, Neighbour


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.xfail(strict=True, reason="open: a hidden first spend, 6750 in window 1")
@looptime.enabled(strict=True)
async def test_a_neighbour_first_seen_beside_a_slow_request_is_not_overrun(seed: int) -> None:
    side = Neighbour(lambda w: 0, 0.05, 0.3, phase=55.0, seed=seed)
    ex = side.exchange
    windows = 6

    async def neighbour() -> None:  # 750 at :57 of every window, from window 0
        for w in range(windows):
            await anyio.sleep(max(0.0, (side.first + w) * 60 + 57.0 - side.now()))
            now = side.now()
            side.over += bool(ex.limiter.charge(side.papi, "127.0.0.1", now)[1])
            side.spent[int(now // 60)] += 750

    async def inject() -> None:
        await anyio.sleep(1.5)  # just warmed: the next request travels 4 s more
        ex.faults.add(Fault.latency(4.0), endpoint="pm_auto_collect", times=1)

    client = ex.client()
    async with anyio.create_task_group() as group:
        group.start_soon(neighbour)
        group.start_soon(inject)
        async with client, anyio.create_task_group() as callers:
            for _ in range(10):
                callers.start_soon(side.calls, client, (side.first + windows) * 60)
        group.cancel_scope.cancel()
    rows = side.rows(windows)
    # young5: [(0, 5250, 750), (1, 6000, 750), (2, 5250, 750), ...], one over
    # d4667a5: 5250 + 750 in every window
    assert side.refused() == Counter(), rows
    assert [row for row in rows if row[1] + row[2] > LIMIT] == [], rows
    assert side.over == 0, rows
