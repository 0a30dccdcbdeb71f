"""A max_wait shorter than the clock sync's round trip (B9-10).

``max_wait`` also bounds the clock sync a signed call needs first (README:
"past it: ThrottledError, nothing sent"). The sync used to be abandoned with
the call, so the clock was never synced and every later call needed the sync
again: with answers taking 0.2 s and ``max_wait=0.1``, every call was refused,
each time with ``retry_after=0.0``: a caller obeying it spun, at the same
instant, forever. A started sync now runs on in a task the client owns, and
the refusal says when it is expected to be done.
"""

from __future__ import annotations

import asyncio

import looptime
import pytest
import trio
import trio.testing

from binance_transfers import Client, Governor, Limits, LoopClock, ThrottledError
from binance_transfers.sim import Fault, SimulatedExchange

from .conftest import API_KEY, SECRET, SERVER_MS, FakeBinance, ok
from .test_clock_sync_shared import TIME, TRANSFER, SlowClock, transfer
from .test_clock_sync_shared import fake as fake  # the fixture: every transfer answered

fake_time = looptime.enabled(strict=True)


@fake_time
async def test_a_caller_obeying_retry_after_gets_a_signed_call_through(
    exchange: SimulatedExchange,
) -> None:
    """Answers take 0.2 s, max_wait=0.1: the second try goes through, told when to come."""
    exchange.faults.add(Fault.latency(0.2))  # every endpoint: the clock's too
    loop = asyncio.get_running_loop()
    async with exchange.client() as client:
        start = loop.time()
        hints: list[float] = []
        for _ in range(10):
            try:
                await client.pm_auto_collect(max_wait=0.1)
                break
            except ThrottledError as refused:
                hints.append(refused.retry_after)
                await asyncio.sleep(refused.retry_after)
        else:
            raise AssertionError(f"10 refusals in {loop.time() - start:.3f} s, retry_after {hints}")
    assert len(hints) == 1 and hints[0] > 0, hints


@fake_time
async def test_the_sync_runs_on_after_its_caller_is_refused(fake: FakeBinance) -> None:
    """Refused at its max_wait, the call leaves the sync running: the clock is synced
    without another call, and retry_after is when the sync is expected to be done
    (no round trip measured yet: the governor's ``latency``, 0.5 s)."""
    async with Client(API_KEY, SECRET, transport=SlowClock(fake, 0.2)) as client:
        clock = client.governor.server_clock
        with pytest.raises(ThrottledError, match="clock could not be synced") as refused:
            await transfer(client, max_wait=0.05)
        assert refused.value.retry_after == pytest.approx(0.45, abs=1e-6)
        assert refused.value.retry_at == pytest.approx(clock.now() + 0.45, abs=1e-6)
        assert fake.transfers == []
        await asyncio.sleep(0.2)
        assert clock.synced_at is not None
        await transfer(client, max_wait=0)  # no sync left to wait for
    assert len(fake.calls(TIME)) == 1
    assert len(fake.transfers) == 1


@fake_time
async def test_a_resync_refusal_names_the_measured_round_trip(fake: FakeBinance) -> None:
    """Once a sync's round trip is known (0.2 s), a resync's refusal expects as much."""
    async with Client(API_KEY, SECRET, transport=SlowClock(fake, 0.2)) as client:
        await transfer(client, max_wait=None)
        await asyncio.sleep(client.governor.server_clock.resync_interval)
        with pytest.raises(ThrottledError) as refused:
            await transfer(client, max_wait=0.05)
        assert refused.value.retry_after == pytest.approx(0.15, abs=1e-6)
        await asyncio.sleep(refused.value.retry_after)
        await transfer(client, max_wait=0)
    assert len(fake.calls(TIME)) == 2


@fake_time
async def test_a_sync_later_than_expected_is_expected_to_take_as_long_again(
    fake: FakeBinance,
) -> None:
    """Past its expected end (the prior 0.5 s; it takes 2 s), a refusal 1 s into the
    sync says 1 s more: never 0, which would make an obedient caller spin."""
    async with Client(API_KEY, SECRET, transport=SlowClock(fake, 2.0)) as client:
        with pytest.raises(ThrottledError):
            await transfer(client, max_wait=0)
        await asyncio.sleep(0.9)
        with pytest.raises(ThrottledError) as refused:
            await transfer(client, max_wait=0.1)
        assert refused.value.retry_after == pytest.approx(1.0, abs=1e-6)
        await asyncio.sleep(refused.value.retry_after)
        await transfer(client, max_wait=0)
    assert len(fake.calls(TIME)) == 1


@fake_time
async def test_a_sync_waiting_for_its_permit_is_expected_after_it(fake: FakeBinance) -> None:
    """The /api pool (here 1 a minute) is spent: the sync's request waits for the next
    window, so its refusal says "after that window opens", not "in a round trip"
    (an obedient caller then comes back once, not every half second for a minute)."""
    governor = Governor(
        Limits(api_ip=1), clock=LoopClock(epoch=SERVER_MS / 1000 + 1), cold_start=False
    )
    async with Client(API_KEY, SECRET, transport=SlowClock(fake, 0), governor=governor) as client:
        await client.server_time()  # the minute's one /api request
        with pytest.raises(ThrottledError) as refused:
            await transfer(client, max_wait=0)
        # The next window opens 59 s on; then the unsynced clock's guard (~1 s) and the
        # governor's assumed round trip (0.5 s).
        assert 59.5 < refused.value.retry_after < 61, refused.value
        await asyncio.sleep(refused.value.retry_after)
        await transfer(client, max_wait=0)
    assert len(fake.calls(TIME)) == 2


def test_under_trio_a_caller_obeying_retry_after_gets_a_signed_call_through() -> None:
    """The same under trio (the sync runs in a system task): refused once, then through."""
    fake = FakeBinance()
    fake.script("POST", TRANSFER, ok({"tranId": 1}))
    hints: list[float] = []

    async def main() -> None:
        async with Client(API_KEY, SECRET, transport=SlowClock(fake, 0.2)) as client:
            for _ in range(10):
                try:
                    await transfer(client, max_wait=0.1)
                    break
                except ThrottledError as refused:
                    hints.append(refused.retry_after)
                    await trio.sleep(refused.retry_after)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert hints == [pytest.approx(0.4, abs=1e-6)]
    assert len(fake.calls(TIME)) == 1
    assert len(fake.transfers) == 1
