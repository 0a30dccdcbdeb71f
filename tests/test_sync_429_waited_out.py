"""A 429 answering the clock sync (``Transport._sync``).

``_sync`` retries what its request may meet (a ban with ``wait_on_ban``, a failed
connection or read), and a 429 too: otherwise another process on the IP spending /api's
request weight answers GET /api/v3/time with a 429 and Retry-After, and every
signed call waiting for that sync (all of them at once: they share it) would fail
with TooManyRequestsError, although ``retry_on_429=True`` (the default) promises
that a 429 is waited out and retried; the same 429 on the transfer itself is.
Nothing is sent twice either way (the sync is a read), so ``_sync`` waits it out
and retries, as many times as ``request()`` would (``rate_limit_retries``).
"""

from __future__ import annotations

import asyncio

import httpx
import looptime
import pytest

from binance_transfers import Client, TooManyRequestsError, TransferResult

from .conftest import API_KEY, SECRET, FakeBinance, error, ok

TIME = "/api/v3/time"
TRANSFER = "/sapi/v1/asset/transfer"
LIMITED = "Too many requests; current limit of IP is 6000 requests per minute."


@looptime.enabled(strict=True)
async def test_a_429_on_the_clock_sync_is_waited_out_like_any_other() -> None:
    """Three transfers need the first sync; Binance answers it 429 (Retry-After 2 s),
    then the time. Each transfer goes out once, after the 429's 2 s."""
    fake = FakeBinance()
    fake.script(
        "GET",
        TIME,
        error(429, -1003, LIMITED, **{"Retry-After": "2"}),
        ok({"serverTime": fake.server_ms}),
    )
    fake.script("POST", TRANSFER, ok({"tranId": 1}))
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake)) as client:
        calls = [client.transfer(type="MAIN_UMFUTURE", asset="USDT", amount="1") for _ in range(3)]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(o, TransferResult) for o in outcomes), outcomes
        assert asyncio.get_running_loop().time() >= 2
    assert len(fake.calls(TIME)) == 2
    assert len(fake.transfers) == 3


@looptime.enabled(strict=True)
@pytest.mark.parametrize("retry_on_429", [True, False])
async def test_the_sync_s_429s_are_retried_no_more_than_a_call_s(retry_on_429: bool) -> None:
    """As ``request()`` does: ``rate_limit_retries`` resends (none without
    ``retry_on_429``), then the 429 reaches the callers; nothing is transferred."""
    fake = FakeBinance()
    limited = error(429, -1003, LIMITED, **{"Retry-After": "1"})
    fake.script("GET", TIME, *[limited] * 20)
    async with Client(
        API_KEY, SECRET, transport=httpx.MockTransport(fake), retry_on_429=retry_on_429
    ) as client:
        calls = [client.transfer(type="MAIN_UMFUTURE", asset="USDT", amount="1") for _ in range(2)]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        retries = client._transport.rate_limit_retries if retry_on_429 else 0
    assert all(isinstance(o, TooManyRequestsError) for o in outcomes), outcomes
    assert len(fake.calls(TIME)) == 1 + retries
    assert fake.transfers == []
