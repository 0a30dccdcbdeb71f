"""Two processes on one IP, 30 % of PM auto-collections dropped (executed, no answer).

Same harness as ``test_governor_lost_warmup_answer`` (10 callers each, 750 of
/papi's 6000 a minute). Before a lost cold request held the next until its windows were over, these
30 %-drop cases were clean; since, they overrun: 7500 of 6000 with 418s, or
6750 with a 429 (a regression of that change, which fixed more at 60 % drops:
16 of 18 runs bad before, 0 after). Deterministic (looptime).
"""

from __future__ import annotations

from collections import Counter

import anyio
import looptime
import pytest

from binance_transfers.sim import Fault
from tests.neighbour import LIMIT, Neighbour

pytestmark = pytest.mark.xfail(
    strict=True,
    reason=(
        "open: two processes with 30 % of answers dropped overrun a window since a lost "
        "cold request holds the next until its windows are over"
    ),
)

WINDOWS = 6
PROFILES = {"slow": (0.05, 0.3), "fast": (0.02, 0.01)}


@pytest.mark.parametrize(
    ("seed", "profile", "phase"),
    [
        (1, "slow", 5.0),  # 5250, 7500 (418 x2) ; parent 5250, 4500
        (1, "slow", 55.0),  # 7500 in window 2 (429, 418, 418) ; parent clean
        (2, "fast", 30.0),  # 6750 in window 2 (429) ; parent clean
    ],
)
@looptime.enabled(strict=True)
async def test_drops_beside_another_process_never_overrun(
    seed: int, profile: str, phase: float
) -> None:
    side = Neighbour(lambda window: 0, *PROFILES[profile], phase=phase, seed=seed)
    side.exchange.faults.add(Fault.drop(), endpoint="pm_auto_collect", probability=0.3)
    clients = [side.exchange.client() for _ in range(2)]
    async with anyio.create_task_group() as callers:
        for client in clients:
            await client.__aenter__()
            for _ in range(10):
                callers.start_soon(side.calls, client, (side.first + WINDOWS) * 60)
    for client in clients:
        await client.__aexit__(None, None, None)
    rows = side.rows(WINDOWS)
    assert side.refused() == Counter(), rows
    assert [row for row in rows if row[1] > LIMIT] == [], rows
