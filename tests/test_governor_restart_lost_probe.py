"""A restarted process (no journal) whose cold probe's answer is lost earns no 418.

The previous life (10 callers of PM auto-collection, 750 of /papi's 6000 a
minute) filled the window and was killed 10 s into it; the new process starts
at once, cold. The README's promise for a cold start: one request goes first,
and its answer's usage header tells the count; so a window the previous life
used up costs at most that one request's 429. Here that first request's answer
is held back 45 s (past the client's 30 s read timeout: lost), or its
connection drops, or it is a WAF's 403 without the usage header. The lost answer
used to leave the pool cold with room for one more request, which went blind
into the same full window: 7500 of 6000, and a 418 ban for it (its 429 was never
read: the first answer never came). Now the lost request keeps its place until
the pool warms (the next window): one 429 at most, as with the answer not lost.
Deterministic (looptime).
"""

from __future__ import annotations

import anyio
import looptime
import pytest

from binance_transfers.sim import Fault
from tests.neighbour import PROFILES, Neighbour


@pytest.mark.parametrize("fault", ["late", "drop", "waf"])
@pytest.mark.parametrize(
    ("seed", "profile", "kill_at"), [(1, "fast", 10.0), (1, "slow", 10.0), (2, "fast", 60.3)]
)
@looptime.enabled(strict=True)
async def test_a_restart_whose_cold_probe_tells_nothing_earns_no_ban(
    seed: int, profile: str, kill_at: float, fault: str
) -> None:
    """``waf``: the first answer is a WAF's 403, without the usage header (review
    break28): counted as an answer, it doubled the cold allowance, and two
    requests went blind into the full window (a 429 and a 418)."""
    side = Neighbour(lambda window: 0, *PROFILES[profile], phase=30.0, seed=seed)
    first = side.exchange.client()
    await first.__aenter__()
    with anyio.move_on_after((side.first + 1) * 60 + kill_at - side.now()):  # killed
        async with anyio.create_task_group() as callers:
            for _ in range(10):
                callers.start_soon(side.calls, first, (side.first + 10) * 60)
    lost = {"late": Fault.late(45.0), "drop": Fault.drop(), "waf": Fault.waf()}[fault]
    side.exchange.faults.add(lost, endpoint="pm_auto_collect", times=1)
    second = side.exchange.client()
    async with second, anyio.create_task_group() as callers:
        for _ in range(10):
            callers.start_soon(side.calls, second, (side.first + 5) * 60)
    with anyio.move_on_after(1):
        await first.__aexit__(None, None, None)
    rows = side.rows(5)
    # 1500 of the restarted process's in a window its previous life filled: 7500.
    assert [k for k in side.refused() if k[1] == 418] == [], (rows, side.refused())
    assert sum(side.refused().values()) <= 1, (rows, side.refused())
