"""The clock sync runs in a task the client owns, shared by every caller that needs it.

Callers wait for it up to their own deadlines; one leaving (its deadline, its
cancellation) never cancels it for the others; its failure reaches each of
them as the typed error a caller met before; ``aclose()`` stops it, leaving
no task behind under asyncio or trio.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import looptime
import pytest
import trio
import trio.testing

from binance_transfers import (
    BinanceTransfersError,
    Client,
    ClientClosedError,
    ConnectionFailedError,
    IPBannedError,
    MalformedResponseError,
    ThrottledError,
)

from .conftest import API_KEY, SECRET, FakeBinance, error, ok

fake_time = looptime.enabled(strict=True)
TIME = "/api/v3/time"
TRANSFER = "/sapi/v1/asset/transfer"


@pytest.fixture
def fake() -> FakeBinance:
    """conftest's fake, answering every transfer."""
    binance = FakeBinance()
    binance.script("POST", TRANSFER, ok({"tranId": 1}))
    return binance


class SlowClock(httpx.AsyncBaseTransport):
    """``fake`` behind a round trip of ``delay`` s on the clock's endpoint; ``refuse``
    makes every connection to it fail."""

    def __init__(self, fake: FakeBinance, delay: float, *, refuse: bool = False) -> None:
        self.fake = fake
        self.delay = delay
        self.refuse = refuse

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == TIME:
            await anyio.sleep(self.delay)
            if self.refuse:
                self.fake.requests.append(request)
                raise httpx.ConnectError("connection refused")
        return self.fake(request)


async def transfer(client: Client, max_wait: float | None = None) -> object:
    return await client.transfer(type="MAIN_UMFUTURE", asset="USDT", amount="1", max_wait=max_wait)


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """What the running loop's exception handler saw (an exception never retrieved...)."""
    seen: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: seen.append(context))
    yield seen
    gc.collect()
    loop.set_exception_handler(None)


def others() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}


@fake_time
async def test_a_cancelled_caller_leaves_the_sync_to_the_others(fake: FakeBinance) -> None:
    """Two callers wait for one sync; the first is cancelled half-way: the second gets
    through on the same sync (before, it started a second one)."""
    async with Client(API_KEY, SECRET, transport=SlowClock(fake, 0.2)) as client:
        first = asyncio.create_task(transfer(client))
        second = asyncio.create_task(transfer(client))
        await asyncio.sleep(0.1)
        first.cancel()
        await transfer(client)  # a third, joining late
        await second
        with pytest.raises(asyncio.CancelledError):
            await first
        assert asyncio.get_running_loop().time() == pytest.approx(0.2, abs=1e-6)
    assert len(fake.calls(TIME)) == 1
    assert len(fake.transfers) == 2


def _malformed(fake: FakeBinance) -> None:
    fake.script("GET", TIME, ok({"time": 1}))


def _banned(fake: FakeBinance) -> None:
    fake.script("GET", TIME, error(418, -1003, "Way too much request weight used."))


FAILURES: dict[str, tuple[Callable[[FakeBinance], None], type[BinanceTransfersError], int]] = {
    "malformed": (_malformed, MalformedResponseError, 1),
    "banned": (_banned, IPBannedError, 1),
    "unreachable": (lambda fake: None, ConnectionFailedError, 3),  # 2 retries
}


@fake_time
@pytest.mark.parametrize("failure", FAILURES)
async def test_a_failing_sync_reaches_every_waiter_as_its_typed_error(
    failure: str, fake: FakeBinance, loop_errors: list[dict[str, Any]]
) -> None:
    """Three callers share one sync that fails: each gets the typed error, nothing is sent,
    and nothing is left for asyncio to log (before, each caller synced again on its own)."""
    script, expected, requests = FAILURES[failure]
    script(fake)
    transport = SlowClock(fake, 0.2, refuse=failure == "unreachable")
    async with Client(API_KEY, SECRET, transport=transport) as client:
        calls = (transfer(client) for _ in range(3))
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert [type(outcome) for outcome in outcomes] == [expected] * 3, outcomes
    assert len(fake.calls(TIME)) == requests
    assert fake.transfers == []
    gc.collect()
    assert loop_errors == []


@fake_time
async def test_a_sync_that_fails_after_its_caller_left_is_not_left_unretrieved(
    fake: FakeBinance, loop_errors: list[dict[str, Any]]
) -> None:
    """The caller is refused at 0.05 s; the sync fails at 0.2 s with nobody waiting:
    no "exception was never retrieved", and the next call syncs afresh."""
    fake.script("GET", TIME, ok({"time": 1}), ok({"serverTime": fake.server_ms}))
    async with Client(API_KEY, SECRET, transport=SlowClock(fake, 0.2)) as client:
        with pytest.raises(ThrottledError):
            await transfer(client, max_wait=0.05)
        await asyncio.sleep(1)
        gc.collect()
        assert client.governor.server_clock.synced_at is None
        await transfer(client)
    assert len(fake.calls(TIME)) == 2
    assert loop_errors == []


@fake_time
async def test_aclose_stops_the_sync_and_its_waiters(fake: FakeBinance) -> None:
    """A sync hanging for 29 s: aclose() returns at once, no task is left running, a
    caller still waiting gets ClientClosedError, and a closed client starts no sync."""
    async with Client(API_KEY, SECRET, transport=SlowClock(fake, 29)) as client:
        before = others()
        with pytest.raises(ThrottledError):
            await transfer(client, max_wait=0.5)
        waiting = asyncio.create_task(client._transport.sync_time())
        await asyncio.sleep(0.5)
        assert len(others() - before) == 2  # the sync and its waiter
        await client.aclose()
        assert asyncio.get_running_loop().time() == pytest.approx(1.0, abs=1e-6)
        with pytest.raises(ClientClosedError):
            await waiting
        assert others() == before
        with pytest.raises(ClientClosedError):
            await client._transport.sync_time()
        assert others() == before
    assert fake.transfers == []


@fake_time
async def test_the_forced_resync_after_a_timestamp_rejection_is_shared() -> None:
    """Two transfers meet -1021 (nothing executed) within one sync's round trip: one
    resync serves both, each is sent again once (as before: one sync at a time)."""
    fake = FakeBinance()
    rejected = error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
    fake.script("POST", "/sapi/v1/asset/transfer", rejected, rejected, ok({"tranId": 1}))
    async with Client(API_KEY, SECRET, transport=SlowClock(fake, 0.2)) as client:
        await asyncio.gather(transfer(client), transfer(client))
    assert len(fake.calls(TIME)) == 2
    assert len(fake.transfers) == 4


def system_tasks() -> set[trio.lowlevel.Task]:
    root = trio.lowlevel.current_root_task()
    assert root is not None
    return {task for nursery in root.child_nurseries for task in nursery.child_tasks}


def test_under_trio_aclose_stops_the_sync_and_a_late_failure_crashes_nothing() -> None:
    """Under trio the sync is a system task: a failure nobody waits for any more must not
    crash the run (TrioInternalError), and aclose() leaves no system task behind."""
    fake = FakeBinance()
    fake.script("GET", TIME, ok({"time": 1}), ok({"serverTime": fake.server_ms}))
    fake.script("POST", TRANSFER, ok({"tranId": 1}))
    transport = SlowClock(fake, 0.2)
    outcomes: list[str] = []

    async def main() -> None:
        before = system_tasks()
        async with Client(API_KEY, SECRET, transport=transport) as client:
            with pytest.raises(ThrottledError):
                await transfer(client, max_wait=0.05)
            await trio.sleep(1)  # the sync failed meanwhile, its caller long gone
            assert system_tasks() == before
            transport.delay = 29
            with pytest.raises(ThrottledError):
                await transfer(client, max_wait=0.05)
            assert len(system_tasks() - before) == 1
            async with trio.open_nursery() as nursery:

                async def wait() -> None:
                    try:
                        await client._transport.sync_time()
                    except ClientClosedError:
                        outcomes.append("closed")

                nursery.start_soon(wait)
                await trio.sleep(0.1)
                await client.aclose()
            assert system_tasks() == before
            assert trio.current_time() == pytest.approx(1.2, abs=1e-6)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert outcomes == ["closed"]
    assert len(fake.calls(TIME)) == 1  # the second sync was stopped before its answer
    assert fake.transfers == []


def test_under_trio_a_cancelled_caller_leaves_the_sync_to_the_others() -> None:
    """Two callers under trio; the first one's scope is cancelled: one sync serves both."""
    fake = FakeBinance()
    fake.script("POST", TRANSFER, ok({"tranId": 1}))

    async def main() -> None:
        async with Client(API_KEY, SECRET, transport=SlowClock(fake, 0.2)) as client:
            async with trio.open_nursery() as nursery:
                first = trio.CancelScope()

                async def cancelled() -> None:
                    with first:
                        await transfer(client)

                nursery.start_soon(cancelled)
                nursery.start_soon(transfer, client)
                await trio.sleep(0.1)
                first.cancel()
            assert trio.current_time() == pytest.approx(0.2, abs=1e-6)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len(fake.calls(TIME)) == 1
    assert len(fake.transfers) == 1
