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
(0.05-0.35 s) at 58.0 and 59.5-59.7 s. The first full window may lose one or
two requests, once.

Those 6 (traced at 58.0 and 59.7 s, seed 1): the first report of the new window
was read as the old one's, and the new window's reports showed 750 of someone
else's. The reservation halved each window, and any reservation keeps out the
eighth 750: 5250 for about eight windows. At 58.0 the report was of a request
written after an answer had shown 3750 in the old window: it showed 750, so it
was the new window's (``_below``), and now it is read so. At 59.7 nothing tells
(the warm-up request, the first answer of all): the 750 is reserved still, and
halves away as before (kept below as strict xfails). Fading it to nothing at
once fixed this case, and took the room in which a neighbour spending 750 at
:30 of every minute was seen (``_rehint``).
Deterministic (looptime).
"""

from __future__ import annotations

from collections import Counter

import looptime
import pytest

from tests.neighbour import LIMIT, PROFILES, Neighbour

WINDOWS = 12

#: 5250 from window 2 on (slow answers): a warm-up's report that may be either window's.
OPEN = {(1, "slow", 59.7)}


def _marked(cases: list[tuple[int, str, float]]) -> list[object]:
    return [
        pytest.param(
            *case, marks=pytest.mark.xfail(strict=True, reason="open: 750 reserved for nobody")
        )
        if case in OPEN
        else case
        for case in cases
    ]


CASES = [
    (seed, profile, phase)
    for seed in (1, 2)
    for profile in sorted(PROFILES)
    for phase in (58.0, 58.5, 59.0, 59.7)
]


@pytest.mark.parametrize(("seed", "profile", "phase"), _marked(CASES))
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


@pytest.mark.parametrize(("seed", "profile", "phase"), _marked(CASES))
@looptime.enabled(strict=True)
async def test_a_lone_process_started_just_before_a_boundary_loses_at_most_one_request_later(
    seed: int, profile: str, phase: float
) -> None:
    """From window 2 on, a reservation for nobody costs one request at most, once
    (before: 5250 in windows 2-11 at 58.0 and 59.7 s, slow answers, seed 1)."""
    side = Neighbour(lambda window: 0, *PROFILES[profile], phase=phase, seed=seed)
    await side.crowd(1, WINDOWS)
    rows = side.rows(WINDOWS)
    assert side.refused() == Counter(), rows
    assert sum(LIMIT - row[1] for row in rows[2:-1]) <= 750, rows
