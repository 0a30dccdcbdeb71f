"""A report read against ours in flight: ours are counted whole or not at all.

A report counts ours written before its request and not answered yet as ours
(a lone process's burst is nobody else's). But each of ours is counted whole
or not at all: what of the report no sum of ours in flight can make up is
someone else's (review finding F7: a PM auto-collection process, 750 a
request, read 3020 against 3000 answered and 2 x 750 in flight as its own
alone, filled the window to 6000 of its own beside a pm_balances process's
20s, earned a 429, and the other process's requests on the way earned 418s).
"""

from __future__ import annotations

import anyio
import looptime

from binance_transfers import ENDPOINTS, Governor, Permit, ThrottledError

from .test_governor import mono, synced

E0 = 1_767_225_600.0  # a minute's start on Binance's clock
AUTO = ENDPOINTS["pm_auto_collect"]  # /papi, weight 750 of 6000 a minute
USED = "x-mbx-used-weight-1m"


async def _admitted_at_once(governor: Governor) -> list[Permit]:
    got: list[Permit] = []
    while True:
        try:
            got.append(await governor.acquire(AUTO, max_wait=0))
        except ThrottledError:
            return got


@looptime.enabled(strict=True)
async def test_what_no_sum_of_ours_in_flight_makes_up_is_someone_elses() -> None:
    """Two of ours in flight (1500), a third written after them answered first
    with 770: 750 is itself, and 20 no sum of 750s makes up. The window holds
    ours (2250) and 20 of someone else's: four more fit (before: five, 6000 of
    ours beside their 20, a 429)."""
    governor = synced(Governor(cold_start=False), E0 + 10)
    first, second = await governor.acquire(AUTO), await governor.acquire(AUTO)
    assert governor.renew(first) is not None and governor.renew(second) is not None
    await anyio.sleep(0.01)
    third = governor.renew(await governor.acquire(AUTO))
    assert third is not None
    sent = mono(governor)
    await anyio.sleep(0.05)
    governor.observe(third, sent=sent, received=mono(governor), status=200, headers={USED: "770"})
    more = await _admitted_at_once(governor)
    assert 2250 + 750 * len(more) + 20 <= 6000, len(more)


@looptime.enabled(strict=True)
async def test_a_report_ours_in_flight_make_up_is_still_ours_alone() -> None:
    """The same, answered with 1500: one of ours in flight landed before it. No one
    else as far as it tells: the window is ours to fill (5 more: 6000)."""
    governor = synced(Governor(cold_start=False), E0 + 10)
    first, second = await governor.acquire(AUTO), await governor.acquire(AUTO)
    assert governor.renew(first) is not None and governor.renew(second) is not None
    await anyio.sleep(0.01)
    third = governor.renew(await governor.acquire(AUTO))
    assert third is not None
    sent = mono(governor)
    await anyio.sleep(0.05)
    governor.observe(third, sent=sent, received=mono(governor), status=200, headers={USED: "1500"})
    more = await _admitted_at_once(governor)
    assert len(more) == 5
