"""A process joining just after an opening, answers 0.5-2.5 s late (review finding F3).

B9-8 (``_governor/_probes.py``) fixed a process joining mid-window with quick
answers (tests/test_governor_join_mid_window.py: 50-250 ms). With the trips the
steady-neighbour tests use (0.5 s, jitter 2 s), a process B joining 0.5-1.5 s
after window 2's opening, beside process A (4 PM auto-collection callers, 750 of
/papi's 6000 a call, filling every window in its opening burst), takes window 2 to
7500 of 6000: a 429, then a request sent after it (its sender never heard of the
other's 429) earns a 418, and the IP is banned through window 3 (nothing of either
process served there; the ban's 418 again at 3:02). eb7d131 does the same
(pre-existing; the B9-8 fix does not reach it).
"""

from __future__ import annotations

import asyncio
from collections import Counter

import anyio
import looptime
import pytest

from binance_transfers import ENDPOINTS, Governor, ThrottledError
from binance_transfers._clock import LoopClock
from binance_transfers.sim import Fault, SimulatedExchange
from tests.test_governor import mono, server_now, synced
from tests.test_governor_shared_ip import _callers

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z
PM_AUTO = ENDPOINTS["pm_auto_collect"]  # /papi, weight 750 of 6000 a minute


@pytest.mark.parametrize(("join", "b_callers"), [(120.5, 4), (121.0, 1), (121.5, 1)])
@looptime.enabled(strict=True)
async def test_a_process_joining_after_an_opening_with_slow_answers_earns_no_ban(
    join: float, b_callers: int
) -> None:
    """Never a 418; no 429 from window 3 on (B's first contact, in window 2, may
    meet a full window: one 429 there is the blind first contact's)."""
    exchange = SimulatedExchange(seed=1, clock=LoopClock(epoch=EPOCH))
    exchange.add_demo_account()
    exchange.faults.add(Fault.latency(0.5, jitter=2.0))
    now = asyncio.get_running_loop().time()
    async with anyio.create_task_group() as group:
        group.start_soon(_callers, exchange.client(), 4, now, now + 360, "pm_auto_collect")
        group.start_soon(
            _callers, exchange.client(), b_callers, now + join, now + 360, "pm_auto_collect"
        )
    first = int(EPOCH // 60)
    refused = Counter(
        (int(e.arrived // 60) - first, e.status) for e in exchange.ledger if e.status in (418, 429)
    )
    weights = exchange.ledger.window_weights("papi-ip")
    used = [weights.get(first + i, 0) for i in range(7)]
    assert [k for k in refused if k[1] == 418 or k[0] >= 3] == [], (dict(refused), used)
    assert max(used[3:6]) <= 6000, used


@looptime.enabled(strict=True)
async def test_the_window_where_others_are_first_seen_is_theirs_for_heavy_requests() -> None:
    """A new governor's first request, 3 s into window 0, reads 4500: 3750 of
    someone else's, who cannot have heard of us and may fill the window. The
    rest of it is theirs: the next request waits for window 1's opening
    (before: four lags of sharing, then the 1500 believed left, in window 0)."""
    governor = synced(Governor(cold_start=False), EPOCH + 3)
    permit = governor.renew(await governor.acquire(PM_AUTO))
    assert permit is not None
    now = mono(governor)
    headers = {"x-mbx-used-weight-1m": "4500"}
    governor.observe(permit, sent=now, received=now, status=200, headers=headers)
    with pytest.raises(ThrottledError):
        await governor.acquire(PM_AUTO, max_wait=0)
    await governor.acquire(PM_AUTO)
    assert EPOCH + 60 <= server_now(governor) < EPOCH + 60.1
