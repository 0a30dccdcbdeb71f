"""Governors of separate processes on one IP, beside a neighbour seen only through headers.

Two or three processes, each with 10 callers of PM auto-collection (750 of
/papi's 6000 a minute) and its own governor, share the IP with a process
spending at every minute's opening: 3000 and 750 by turns, or 4500 and 1500.
At each opening every process of ours writes one request first; one written
within its clock's uncertainty of the boundary may be either window's, and its
report was read as no window's count (``_others_either``). Its answer ended
the opening's wait all the same, and where that report proved others, nothing
of it was counted: the process took the new window for its own reservation
(1500-2250 of 6000) and sent its next request into what the others and the
neighbour had filled. Before the fix, every run of these (2 processes beside
4500/1500, 3 beside 3000/750): a 429 at most neighbour openings, and 418s.
Now the newer window counts what such a report shows at least there.
Deterministic (looptime).
"""

from __future__ import annotations

from collections import Counter

import anyio
import looptime
import pytest

from tests.neighbour import LIMIT, PROFILES, Neighbour

WINDOWS = 12


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("phase", [0.5, 30.0, 55.0])
@pytest.mark.parametrize(
    ("n", "heavy", "light"),
    [(2, 4500, 1500), (3, 3000, 750)],
    ids=["2-beside-4500", "3-beside-3000"],
)
@looptime.enabled(strict=True)
async def test_governors_of_one_ip_beside_a_neighbour_never_overrun_it(
    n: int, heavy: int, light: int, phase: float, profile: str
) -> None:
    side = Neighbour(
        lambda window: 0 if window < 2 else light if window % 2 else heavy,
        *PROFILES[profile],
        phase=phase,
    )
    async with anyio.create_task_group() as group:
        group.start_soon(side.run)
        await side.crowd(n, WINDOWS)
        group.cancel_scope.cancel()
    rows = side.rows(WINDOWS)
    assert side.refused() == Counter(), rows
    assert [row for row in rows if row[1] + row[2] > LIMIT] == [], rows
    assert side.over == 0, rows
