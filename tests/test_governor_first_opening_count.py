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

from binance_transfers import ENDPOINTS, Governor, ThrottledError

from .test_governor import mono, synced

E0 = 1_767_225_600.0  # a minute's start on Binance's clock
AUTO = ENDPOINTS["pm_auto_collect"]  # /papi, weight 750 of 6000 a minute
USED = "x-mbx-used-weight-1m"


@looptime.enabled(strict=True)
async def test_a_request_renewed_into_the_opening_does_not_free_the_opening_requests_place() -> (
    None
):
    """Born at :10 (cold, warmed by its second answer, at :11.2: a first answer of
    heavy requests cannot count those of processes started with it). A admitted at :59.0 (the
    window before only), B at :59.7 reaches the next one: the opening request.
    A is written at :59.7 too (renewed into the opening) and answered first.
    B's report is still out: a third request reaching the opening must wait."""
    governor = synced(Governor(), E0 + 10)
    probe = governor.renew(await governor.acquire(AUTO))
    assert probe is not None
    sent = mono(governor)
    await anyio.sleep(0.1)
    governor.observe(probe, sent=sent, received=mono(governor), status=200, headers={USED: "750"})
    await anyio.sleep(1.0)  # :11.1
    probe = governor.renew(await governor.acquire(AUTO, max_wait=0))
    assert probe is not None
    sent = mono(governor)
    await anyio.sleep(0.1)
    governor.observe(probe, sent=sent, received=mono(governor), status=200, headers={USED: "1500"})
    await anyio.sleep(47.8)  # :59.0
    a = await governor.acquire(AUTO, max_wait=0)
    await anyio.sleep(0.7)  # :59.7
    b = governor.renew(await governor.acquire(AUTO, max_wait=0))  # the opening request
    assert b is not None
    a_written = governor.renew(a)
    assert a_written is not None
    a_sent = mono(governor)
    await anyio.sleep(0.1)
    governor.observe(
        a_written, sent=a_sent, received=mono(governor), status=200, headers={USED: "2250"}
    )
    with pytest.raises(ThrottledError):  # B, the opening request, is still out
        await governor.acquire(AUTO, max_wait=0)
