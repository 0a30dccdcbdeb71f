"""A lone process started just before a minute boundary fills its windows.

Same harness as ``test_governor_start_together``'s lone case (one process, 10
callers of PM auto-collection, 750 of /papi's 6000 a minute, no faults, no
neighbour), which pins phases 5 and 55 s and asserts every full window is
6000. Started 58-59.9 s into Binance's minute, 21 of 156 runs (seeds 1-6, both
profiles, 13 phases) kept 5250 in every window from the second full one on: a
reservation for nobody. Its warm-up request, written two trip bounds after the
start, could land on either side of the boundary; its report was read as no
window's, and the next report's excess as someone else's. A heavy pool's
warm-up request now leaves past the next window's landing interval when it
would straddle a boundary (``_probed``): 6 of 156, all with slow answers
(0.05-0.35 s) at 58.0 and 59.5-59.7 s (kept below as strict xfails). The
first full window may lose one or two requests, once.
Deterministic (looptime).
"""

from __future__ import annotations

from collections import Counter

import looptime
import pytest

from tests.neighbour import LIMIT, PROFILES, Neighbour

WINDOWS = 12

#: Still 5250 from window 2 on (slow answers).
OPEN = {(1, "slow", 58.0), (1, "slow", 59.7)}
CASES = [
    (seed, profile, phase)
    for seed in (1, 2)
    for profile in sorted(PROFILES)
    for phase in (58.0, 58.5, 59.0, 59.7)
]


@pytest.mark.parametrize(
    ("seed", "profile", "phase"),
    [
        pytest.param(
            *case,
            marks=pytest.mark.xfail(strict=True, reason="open: 750 reserved for nobody"),
        )
        if case in OPEN
        else case
        for case in CASES
    ],
)
@looptime.enabled(strict=True)
async def test_a_lone_process_started_just_before_a_boundary_fills_every_full_window(
    seed: int, profile: str, phase: float
) -> None:
    side = Neighbour(lambda window: 0, *PROFILES[profile], phase=phase, seed=seed)
    (client,) = await side.crowd(1, WINDOWS)
    rows = side.rows(WINDOWS)
    assert side.refused() == Counter(), rows
    papi = [p for p in client.governor.snapshot() if p.key == "papi-ip"]
    # Its first full window goes one request at a time (``_young``), and may lose
    # one or two of them to the moved warm-up: once.
    assert rows[1][1] >= LIMIT - 1500, f"{rows} {papi}"
    assert [row for row in rows[2:-1] if row[1] != LIMIT] == [], f"{rows} {papi}"
