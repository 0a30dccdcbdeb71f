"""A new governor's first-opening wait: every waiter is woken (no renew).

``Governor.observe`` is documented as "call it once per permit"; ``renew`` is
what the transport calls at the write. A caller of the governor without the
transport (its own HTTP client: acquire, send, observe) never renews, and a
warm, unshared pool's answer of an unrenewed permit frees nothing in the
window counts. The answer that ends the first-opening wait still wakes the
waiters behind the opening request (and the window's end does, unreported).
"""

from __future__ import annotations

import anyio
import looptime

from binance_transfers import ENDPOINTS, Governor

from .test_governor import mono, synced

E0 = 1_767_225_600.0  # a minute's start on Binance's clock
BAL = ENDPOINTS["pm_balance"]  # /papi, weight 20 of 6000 a minute
USED = "x-mbx-used-weight-1m"


@looptime.enabled(strict=True)
async def test_waiters_without_renew_are_woken_after_the_first_opening() -> None:
    """100 one-shot calls of 20 (2000 of 6000) at once, 0.8 s before a minute
    ends, 0.4 s round trips: all answered within a minute."""
    governor = synced(Governor(), E0 + 59.2)  # cold start (the default)
    count = 0

    async def call() -> None:
        nonlocal count
        permit = await governor.acquire(BAL)
        sent = mono(governor)
        await anyio.sleep(0.4)
        count += 1
        headers = {USED: str(20 * count)}
        governor.observe(permit, sent=sent, received=mono(governor), status=200, headers=headers)

    with anyio.move_on_after(60):
        async with anyio.create_task_group() as group:
            for _ in range(100):
                group.start_soon(call)
    assert count == 100, f"{count} of 100 calls answered in 60 s: the rest asleep"
