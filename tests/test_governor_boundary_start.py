"""Governors of separate processes starting together just before a minute boundary.

Same harness as ``test_governor_start_together`` (10 callers of PM
auto-collection each, 750 of /papi's 6000 a minute, no faults), which pins
phases 5, 30 and 55 s. Started 0.2-2 s before Binance's minute ends (a cron
job at :00 on a host whose clock runs half a second ahead of Binance's lands
there), 34 of 96 runs (starts at 58.0-59.8 s, seeds 1-3, both profiles, n = 2
and 3) overran window 1: 7500 of 6000 with a 429 and 418s, or 6750 and a 429.

Seen in a trace (two processes, 59.8 s): both first requests land in window 0
(one governor reads the other's 750 there, the other reads nothing); both
heavy pools' warm-up request leaves at the same moment, two trip bounds after
the start (``_probed``), and lands in window 1. The first of the two to land
reads window 1 as empty beside its reservation of 750 and warms, the other
reads 750 of others in window 1 and warms: both burst (7500). Now a heavy pool
sends one request at a time to the end of the window it warmed in, and of the
next one if it warmed in a window's last eighth (``_young``), and its warm-up
request leaves past the next window's landing interval when it would straddle
a boundary: 0 of 48 runs of two processes overrun, 2 of 48 of three (one 429
each, no 418; kept below as strict xfails). Deterministic (looptime).
"""

from __future__ import annotations

from collections import Counter

import looptime
import pytest

from tests.neighbour import LIMIT, PROFILES, Neighbour

WINDOWS = 4

#: Three processes whose window 1 still meets one 429 (6750 of 6000): each
#: sends one request at a time, but on a report a few trips old.
OPEN = {(3, 1, "slow", 59.3), (3, 2, "slow", 59.3)}
CASES = [
    (n, seed, profile, phase)
    for n in (2, 3)
    for seed in (1, 2, 3)
    for profile in sorted(PROFILES)
    for phase in (58.5, 59.3, 59.8)
]


async def _run(
    n: int, seed: int, profile: str, phase: float
) -> tuple[Neighbour, list[tuple[int, int, int]]]:
    side = Neighbour(lambda window: 0, *PROFILES[profile], phase=phase, seed=seed)
    await side.crowd(n, WINDOWS)
    return side, side.rows(WINDOWS)


@pytest.mark.parametrize(
    ("n", "seed", "profile", "phase"),
    [
        pytest.param(
            *case,
            marks=pytest.mark.xfail(
                strict=True, reason="open: one 429 on a report a few trips old (6750 of 6000)"
            ),
        )
        if case in OPEN
        else case
        for case in CASES
    ],
)
@looptime.enabled(strict=True)
async def test_governors_starting_together_just_before_a_boundary_never_overrun_it(
    n: int, seed: int, profile: str, phase: float
) -> None:
    side, rows = await _run(n, seed, profile, phase)
    assert side.refused() == Counter(), rows
    assert [row for row in rows if row[1] > LIMIT] == [], rows
    assert side.exchange.ledger.over_limit() == [], rows


@pytest.mark.parametrize(("n", "seed", "profile", "phase"), sorted(OPEN))
@looptime.enabled(strict=True)
async def test_governors_starting_together_just_before_a_boundary_earn_no_ban(
    n: int, seed: int, profile: str, phase: float
) -> None:
    """Where one 429 remains, it is one: nothing of ours was already on its way behind it."""
    side, rows = await _run(n, seed, profile, phase)
    refused = side.refused()
    assert [key for key in refused if key[1] == 418] == [], (refused, rows)
    assert sum(refused.values()) <= 1, (refused, rows)
