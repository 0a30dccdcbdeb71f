"""A new governor's first opening is met by one request until its report is back.

Ours that may land in the first opening are counted by record, as
``renew`` replaces a record: a request admitted with a record in the window
before only, then written near the boundary (renewed into the opening) and
answered, is not the opening request, and its answer does not let a second
request into the opening while the opening request's report is still out.
"""

from __future__ import annotations

import anyio
import looptime
import pytest

from binance_transfers import ENDPOINTS, Endpoint, Governor, ThrottledError

from .test_governor import mono, sleep_until, synced

E0 = 1_767_225_600.0  # a minute's start on Binance's clock
AUTO = ENDPOINTS["pm_auto_collect"]  # /papi, weight 750 of 6000 a minute
BALANCE = ENDPOINTS["pm_balance"]  # /papi, weight 20: light (``_few``: no one-at-a-time)
USED = "x-mbx-used-weight-1m"


async def _warm(governor: Governor, endpoint: Endpoint, answers: int) -> None:
    """``answers`` requests one after the other from :10, each answered 0.1 s later
    (a heavy pool warms at its second answer, ``_probed``; a light one at its first)."""
    weight = endpoint.ip_weight
    for i in range(answers):
        probe = governor.renew(await governor.acquire(endpoint, max_wait=0 if i else None))
        assert probe is not None
        sent = mono(governor)
        await anyio.sleep(0.1)
        headers = {USED: str((i + 1) * weight)}
        governor.observe(probe, sent=sent, received=mono(governor), status=200, headers=headers)
        await anyio.sleep(1.0)


@looptime.enabled(strict=True)
async def test_a_request_renewed_into_the_opening_does_not_free_the_opening_requests_place() -> (
    None
):
    """Born at :10, warm at its first answer (light requests). A admitted at :59.0 (the
    window before only), B at :59.7 reaches the next one: the opening request.
    A is written at :59.7 too (renewed into the opening) and answered first.
    B's report is still out: a third request reaching the opening must wait."""
    governor = synced(Governor(), E0 + 10)
    await _warm(governor, BALANCE, 1)
    await sleep_until(governor, E0 + 59.0)
    a = await governor.acquire(BALANCE, max_wait=0)
    await anyio.sleep(0.7)  # :59.7
    b = governor.renew(await governor.acquire(BALANCE, max_wait=0))  # the opening request
    assert b is not None
    a_written = governor.renew(a)
    assert a_written is not None
    a_sent = mono(governor)
    await anyio.sleep(0.1)
    governor.observe(
        a_written, sent=a_sent, received=mono(governor), status=200, headers={USED: "60"}
    )
    with pytest.raises(ThrottledError):  # B, the opening request, is still out
        await governor.acquire(BALANCE, max_wait=0)


@looptime.enabled(strict=True)
async def test_heavy_requests_go_one_at_a_time_to_the_end_of_the_window_they_warmed_in() -> None:
    """Born at :10, warm at its second answer (:11.2). Until window 0 ends, a heavy
    request waits for the answer of the one before (``_young``): processes started
    with it may have warmed at the same moment, and the next report shows them.
    From the next window on, two may be out at once."""
    governor = synced(Governor(), E0 + 10)
    await _warm(governor, AUTO, 2)
    await sleep_until(governor, E0 + 59.0)
    a = governor.renew(await governor.acquire(AUTO, max_wait=0))
    assert a is not None
    with pytest.raises(ThrottledError):  # A is out
        await governor.acquire(AUTO, max_wait=0)
    a_sent = mono(governor)
    await anyio.sleep(0.1)
    governor.observe(a, sent=a_sent, received=mono(governor), status=200, headers={USED: "2250"})
    b = governor.renew(await governor.acquire(AUTO, max_wait=0))  # A answered: B goes
    assert b is not None
    b_sent = mono(governor)
    await anyio.sleep(0.1)
    governor.observe(b, sent=b_sent, received=mono(governor), status=200, headers={USED: "3000"})
    await sleep_until(governor, E0 + 62.0)  # window 1's opening request (``_first_opening``)
    c = governor.renew(await governor.acquire(AUTO, max_wait=0))
    assert c is not None
    c_sent = mono(governor)
    await anyio.sleep(0.1)
    governor.observe(c, sent=c_sent, received=mono(governor), status=200, headers={USED: "750"})
    await sleep_until(governor, E0 + 90.0)
    d = governor.renew(await governor.acquire(AUTO, max_wait=0))
    assert d is not None
    assert governor.renew(await governor.acquire(AUTO, max_wait=0)) is not None  # D is out
