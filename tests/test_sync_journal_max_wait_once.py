"""``max_wait`` of a journaled call is spent once.

With a journal, ``Client._send_journaled`` syncs Binance's clock first (bounded by
``max_wait``); handing the transport the whole ``max_wait`` again would let a call
whose clock sync took 0.9 s of ``max_wait=1`` wait another second for a permit,
returning ~1.9 s after it was made (``max_wait`` "bounds the whole call's
waiting": permits, the clock sync, resends). The transport gets what is left
of it after the sync, the seeding and the intent's commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import looptime

from binance_transfers import Client, ThrottledError

from .conftest import API_KEY, SECRET, FakeBinance, error, ok
from .test_clock_sync_shared import SlowClock

TRANSFER = "/sapi/v1/asset/transfer"
LIMITED = "Too many requests; current limit of IP is 6000 requests per minute."


@looptime.enabled(strict=True)
async def test_a_journaled_call_waits_no_longer_than_its_max_wait(tmp_path: Path) -> None:
    """The clock sync takes 0.9 s; the transfer is answered 429 with Retry-After 1 s
    (Binance executed nothing). With ``max_wait=1`` the resend (at 1.9 s) is past the
    bound: the call must end by 1 s (refused, ThrottledError), not succeed at 1.9 s."""
    fake = FakeBinance()
    fake.script(
        "POST",
        TRANSFER,
        error(429, -1003, LIMITED, **{"Retry-After": "1"}),
        ok({"tranId": 1}),
    )
    loop = asyncio.get_running_loop()
    async with Client(
        API_KEY, SECRET, transport=SlowClock(fake, 0.9), journal=tmp_path / "journal.sqlite"
    ) as client:
        start = loop.time()
        with contextlib.suppress(ThrottledError):
            await client.transfer(type="MAIN_UMFUTURE", asset="USDT", amount="1", max_wait=1)
        took = loop.time() - start
    assert took <= 1.0 + 1e-6, f"returned {took:.3f} s after a call with max_wait=1"
