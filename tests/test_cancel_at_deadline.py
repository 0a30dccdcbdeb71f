"""A cancellation arriving in the very turn a caller's max_wait runs out is not lost.

A caller's ``max_wait`` is an anyio ``move_on_after``. When asyncio's plain
``task.cancel()`` (a task group's, ``wait_for``'s, ``aclose()``'s) lands in
the same event-loop turn as that deadline's own cancellation, asyncio folds
the two into one ``CancelledError``; anyio before 4.16 took it for the
deadline's alone and swallowed it (anyio #1214): the caller got
``ThrottledError`` and ran on, its task still marked as being cancelled. Hence
``anyio>=4.16`` in the dependencies.
"""

from __future__ import annotations

import asyncio

import anyio
import httpx
import looptime
import pytest

from binance_transfers import Client

from .conftest import API_KEY, SECRET, FakeBinance, ok


class SlowClock(httpx.AsyncBaseTransport):
    def __init__(self, fake: FakeBinance) -> None:
        self.fake = fake

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v3/time":
            await anyio.sleep(0.2)
        return self.fake(request)


@looptime.enabled(strict=True)
async def test_a_cancel_in_the_turn_max_wait_ends_reaches_the_caller() -> None:
    """The clock sync outlasts max_wait=0.1; task.cancel() comes at 0.1 too, right after
    the deadline's own: the caller is cancelled, not refused with ThrottledError."""
    fake = FakeBinance()
    fake.script("POST", "/sapi/v1/asset/transfer", ok({"tranId": 1}))
    loop = asyncio.get_running_loop()
    async with Client(API_KEY, SECRET, transport=SlowClock(fake)) as client:
        start = loop.time()
        call = asyncio.create_task(
            client.transfer(type="MAIN_UMFUTURE", asset="USDT", amount="1", max_wait=0.1)
        )
        await asyncio.sleep(0)  # the call waits for the sync: its deadline's timer is set
        loop.call_at(start + 0.1, call.cancel)
        with pytest.raises(asyncio.CancelledError):
            await call
        assert loop.time() == pytest.approx(start + 0.1, abs=1e-9)
    assert fake.transfers == []
