"""Two governors starting together on one IP, a warm-up answer lost (read timeout).

Same harness as ``test_governor_start_together`` (two processes, 10 callers of
PM auto-collection each, 750 of /papi's 6000 a minute), but the first one or two
PM auto-collections of the run are answered 45 s late: past the client's 30 s
read timeout, so the governor sees a lost answer during its heavy pool's warm-up.

Without the fault all 42 runs of this sweep (3 seeds x 7 phases x 2 profiles)
are clean; with it, 25 of 84 overran /papi: 7500 of 6000 in window 1 with a 429
and 418s (both pools warm at the window boundary on a timer with no answer
seen), or 6750 in window 0 and a 429. A pool warmed, by an answer or by that
timer, now sends one request at a time to the end of that window (``_young``):
each answer shows what the other added. Deterministic (looptime).
"""

from __future__ import annotations

from collections import Counter

import looptime
import pytest

from binance_transfers.sim import Fault
from tests.neighbour import LIMIT, PROFILES, Neighbour

WINDOWS = 4


@pytest.mark.parametrize(
    ("seed", "profile", "phase", "lost"),
    [
        (1, "slow", 30.0, 1),  # 5250, 7500 (429, 418, 418)
        (1, "fast", 30.0, 2),  # 1500, 7500 (429, 418, 418)
        (2, "slow", 55.0, 2),  # 1500, 7500 (429, 418, 418)
        (3, "slow", 5.0, 1),  # 6750 in window 0 (429)
    ],
)
@looptime.enabled(strict=True)
async def test_a_warm_up_answer_lost_never_overruns_governors_starting_together(
    seed: int, profile: str, phase: float, lost: int
) -> None:
    side = Neighbour(lambda window: 0, *PROFILES[profile], phase=phase, seed=seed)
    side.exchange.faults.add(Fault.late(45.0), endpoint="pm_auto_collect", times=lost)
    await side.crowd(2, WINDOWS)
    rows = side.rows(WINDOWS)
    assert side.refused() == Counter(), rows
    assert [row for row in rows if row[1] > LIMIT] == [], rows
    assert side.exchange.ledger.over_limit() == [], rows
