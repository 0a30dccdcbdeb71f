"""A ``ThrottledError``'s ``retry_after`` is when a permit may be had (``estimate``).

``max_wait=0`` callers are told to come back after ``retry_after`` seconds.
After a newcomer's first contact, its heavy requests wait for the next window
(``closed``): the estimate says so, and a caller honouring it is admitted
then, rather than told "0 s" again and again until the window ends.
"""

from __future__ import annotations

import anyio
import looptime

from binance_transfers import ENDPOINTS, Governor, ThrottledError

from .test_governor import mono, synced

E0 = 1_767_225_600.0  # a minute's start on Binance's clock
AUTO = ENDPOINTS["pm_auto_collect"]  # /papi, weight 750 of 6000 a minute
USED = "x-mbx-used-weight-1m"


@looptime.enabled(strict=True)
async def test_a_caller_retrying_after_retry_after_is_admitted_after_a_first_contact() -> None:
    """A new governor's first answer (:10) reports 3000 in the window, 750 of
    them its own: another process spends there. A ``max_wait=0`` caller that
    waits out each refusal's ``retry_after`` is admitted by its third try."""
    governor = synced(Governor(), E0 + 10)  # cold start (the default)
    first = governor.renew(await governor.acquire(AUTO))
    assert first is not None
    sent = mono(governor)
    await anyio.sleep(0.1)
    governor.observe(first, sent=sent, received=mono(governor), status=200, headers={USED: "3000"})
    told: list[float] = []
    for _ in range(3):
        try:
            await governor.acquire(AUTO, max_wait=0)
            return
        except ThrottledError as refused:
            told.append(refused.retry_after)
            await anyio.sleep(refused.retry_after)
    raise AssertionError(f"refused three times, told to retry after {told} s")
