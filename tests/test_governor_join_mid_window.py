"""Two processes, each with its own governor, one joining mid-window (B9-8).

Process A (4 PM auto-collection callers: 750 of /papi's 6000 a call) runs
from 00:00; process B (the same) starts in the middle of window 2 (02:30, or
02:00.05 with answers at once). Windows 3, 4 and 5 each took 6750 of 6000: one
request over, a 429 every window (the pool stops until the next window, and
429s count towards a ban).

Traced: not a race for a window's last request. A fills each window in its
opening burst. B, which saw A fill the windows before, reserves all but one
request's room for A (the room whose answer brings news) and wrote its one
request when its 429 freeze ended: Retry-After is whole seconds, so a 429
``t`` s into a window freezes B until ``t`` s into the next one, after A's
burst. It arrived after all of A's, in a full window: a 429 again, and none of
A's reports ever counted it, so A never learnt of B. Now a request into that
room waits for a window's opening, where it lands among A's opening requests.
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
from tests.test_governor import mono, server_now, sleep_until, synced
from tests.test_governor_shared_ip import _callers

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z
PM_AUTO = ENDPOINTS["pm_auto_collect"]  # /papi, weight 750 of 6000 a minute


@pytest.mark.parametrize(
    ("join", "latency"),
    [(150.0, 0.05), (120.05, None), (120.3, 0.05), (120.0, 0.05)],
    ids=["at-2m30s-trips-50-250ms", "at-2m0.05s-instant", "at-2m0.3s-trips", "at-2m-trips"],
)
@looptime.enabled(strict=True)
async def test_a_process_joining_mid_window_earns_no_429_in_the_windows_after(
    join: float, latency: float | None
) -> None:
    """Never a 429 or 418 from window 3 on (B's first contact, in window 2, may
    meet a window A filled); B is served beside A, and the IP's windows stay
    used. (Before: 6750 of 6000 and a 429 in windows 3, 4 and 5.)"""
    exchange = SimulatedExchange(seed=1, clock=LoopClock(epoch=EPOCH))
    exchange.add_demo_account()
    if latency is not None:
        exchange.faults.add(Fault.latency(latency, jitter=0.2))
    loop = asyncio.get_running_loop()
    now = loop.time()
    b = exchange.client()
    async with anyio.create_task_group() as group:
        group.start_soon(_callers, exchange.client(), 4, now, now + 360, "pm_auto_collect")
        group.start_soon(_callers, b, 4, now + join, now + 360, "pm_auto_collect")
    first = int(EPOCH // 60)
    refused = Counter(
        int(e.arrived // 60) - first for e in exchange.ledger if e.status in (418, 429)
    )
    weights = exchange.ledger.window_weights("papi-ip")
    used = [weights.get(first + i, 0) for i in range(7)]
    assert {w: n for w, n in refused.items() if w >= 3} == {}, used
    assert max(used) <= 6000 or used.index(max(used)) == 2, used
    assert min(used[3:6]) >= 0.75 * 6000, used


@pytest.mark.parametrize(("others", "waits"), [(6000, True), (5250, False), (3000, False)])
@looptime.enabled(strict=True)
async def test_the_room_left_beside_others_who_fill_windows_alone_is_taken_at_an_opening_only(
    others: int, waits: bool
) -> None:
    """Others were seen to fill window 0 alone (6000 of theirs: our request, 10 s
    into it, met a full window, a 429): window 1 keeps room for one request of
    ours, whose answer brings news. Wanted 10 s into window 1, that request would
    land after the others' opening requests, in a full window they never hear of:
    it waits for window 2's opening (a ``max_wait=0`` caller is told so), and goes
    then at once. Others who left room for one request of ours (5250), or half the
    window, are not waited for."""
    governor = synced(Governor(), EPOCH + 10)
    first = governor.renew(await governor.acquire(PM_AUTO))
    assert first is not None
    used = others + 750
    status, wait = (429, 50.0) if used > 6000 else (200, None)
    now = mono(governor)
    headers = {"x-mbx-used-weight-1m": str(used)}
    governor.observe(
        first, sent=now, received=now, status=status, headers=headers, retry_after=wait
    )
    await sleep_until(governor, EPOCH + 70)
    g = governor._geometry(mono(governor))
    opening = EPOCH + 120 + g.eps + g.guard  # Binance time: the earliest landing is in window 2
    if not waits:
        await governor.acquire(PM_AUTO, max_wait=0)
        return
    with pytest.raises(ThrottledError) as refused:
        await governor.acquire(PM_AUTO, max_wait=0)
    assert abs(server_now(governor) + refused.value.retry_after - opening) < 0.01
    await governor.acquire(PM_AUTO)
    assert opening - 0.001 <= server_now(governor) < opening + 0.01
