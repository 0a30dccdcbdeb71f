"""A refusal that waits for an answer of ours says when to come back, never "now".

While a new governor's first request on a pool is out (a cold pool reads its
answer's usage header before it sends more), the governor's lower bound for the
next call is "now": the answer may free it any moment. A ``max_wait`` refusal
used to say ``retry_after=0`` there, and a caller obeying it was refused again
in the same instant, a busy loop until the answer. It now says when the answer
is due: a typical round trip after the request was written (its endpoint's
recent trips; before any, the shorter of all endpoints' median and the clock
sync's), at least ``RETRY_FLOOR``; overdue, as long again as it has taken so
far, at most the trip bound. The lower bound that ``acquire`` refuses on
at once is unchanged: a caller whose ``max_wait`` covers the real answer is
admitted, not refused (break29).

Deterministic (looptime).
"""

from __future__ import annotations

import asyncio

import anyio
import looptime
import pytest

from binance_transfers import (
    ENDPOINTS,
    Governor,
    GovernorHooks,
    LoopClock,
    ThrottledError,
    TransferType,
)
from binance_transfers._governor._geometry import RETRY_FLOOR
from binance_transfers.sim import Fault, SimulatedExchange

from .test_governor import mono, synced
from .test_governor_coldstart import E0, PM_ASSET, admitted_at_once

fake_time = looptime.enabled(strict=True)
PMPRO_BNB = ENDPOINTS["pmpro_bnb_transfer"]  # rolling cap: 2 calls per 10 minutes
USED = {"x-mbx-used-weight-1m": "30"}
SYNC_TRIP = 0.08  # the clock sync's round trip: the typical trip before any answer


async def first_out(governor: Governor) -> tuple[object, float]:
    (probe,) = await admitted_at_once(governor, PM_ASSET, 1)
    written = governor.renew(probe)
    assert written is not None
    return written, mono(governor)


async def refusal(governor: Governor) -> float:
    with pytest.raises(ThrottledError) as refused:
        await governor.acquire(PM_ASSET, max_wait=0)
    return refused.value.retry_after


@fake_time
async def test_a_refusal_while_the_first_answer_is_out_says_when_it_is_due() -> None:
    governor = synced(Governor(), E0 + 10, eps=0.001 + SYNC_TRIP / 2)
    written, t0 = await first_out(governor)
    assert await refusal(governor) == pytest.approx(SYNC_TRIP)
    await anyio.sleep(0.05)
    assert await refusal(governor) == pytest.approx(SYNC_TRIP - 0.05)
    await anyio.sleep(SYNC_TRIP - 0.05)
    t = mono(governor)
    governor.observe(written, sent=t0, received=t, status=200, headers=USED)  # type: ignore[arg-type]
    permit = await governor.acquire(PM_ASSET, max_wait=0)  # on time, as told
    governor.refund(permit)


@fake_time
async def test_an_overdue_answer_is_asked_for_again_as_long_again_up_to_the_trip_bound() -> None:
    governor = synced(Governor(latency=0.5), E0 + 10, eps=0.001 + SYNC_TRIP / 2)
    await first_out(governor)
    await anyio.sleep(SYNC_TRIP + 0.1)
    assert await refusal(governor) == pytest.approx(SYNC_TRIP + 0.1)  # as long again
    await anyio.sleep(10)
    assert await refusal(governor) == pytest.approx(0.5)  # the trip bound, not 10 s


@fake_time
async def test_the_retry_is_never_shorter_than_the_floor() -> None:
    governor = synced(Governor(latency=0.0), E0 + 10)  # a sync of no round trip
    await first_out(governor)
    start, told = mono(governor), []
    for _ in range(100):  # bounded: a refusal saying 0 spun here, time standing still
        if mono(governor) - start >= 0.1:
            break
        told.append(await refusal(governor))
        await anyio.sleep(told[-1])
    assert min(told) >= RETRY_FLOOR - 1e-9 and len(told) <= 0.1 / RETRY_FLOOR + 1, told


@fake_time
async def test_the_lower_bound_still_admits_a_caller_whose_max_wait_covers_the_answer() -> None:
    governor = synced(Governor(), E0 + 10, eps=0.001 + SYNC_TRIP / 2)
    written, t0 = await first_out(governor)
    admitted: list[float] = []

    async def second() -> None:
        governor.refund(await governor.acquire(PM_ASSET, max_wait=0.3))
        admitted.append(mono(governor) - t0)

    async with anyio.create_task_group() as group:
        group.start_soon(second)
        await anyio.sleep(0.05)
        t = mono(governor)
        governor.observe(written, sent=t0, received=t, status=200, headers=USED)  # type: ignore[arg-type]
    assert admitted == [pytest.approx(0.05)]


@fake_time
async def test_callers_obeying_refusals_through_the_client_never_spin() -> None:
    """Five transfers with ``max_wait=0`` at a new client's start, retried when told:
    refused at the clock sync, at the write-ahead gate and at the cold pool, each
    refusal says a time to come back (it said 0 at the gate and the cold pool)."""
    exchange = SimulatedExchange(clock=LoopClock(epoch=E0 + 10))
    exchange.add_demo_account()
    exchange.faults.add(Fault.latency(0.05), endpoint="universal_transfer")
    loop = asyncio.get_running_loop()
    told: list[float] = []

    async with exchange.client() as client:
        start = loop.time()

        async def obey(i: int) -> float:
            while len(told) < 1000:  # bounded: a refusal saying 0 spun here
                try:
                    await client.transfer(
                        type=TransferType.MAIN_UMFUTURE, asset="USDT", amount=f"2.{i}", max_wait=0
                    )
                    return loop.time() - start
                except ThrottledError as error:  # anything else fails the test
                    told.append(error.retry_after)
                    await asyncio.sleep(error.retry_after)
            raise AssertionError(f"refused {len(told)} times: {told[-5:]}")

        done = await asyncio.gather(*(obey(i) for i in range(5)))
    assert len(told) >= 5 and min(told) >= RETRY_FLOOR - 1e-6, told
    assert max(done) < 1.0, done
    # Each caller is refused at most once per RETRY_FLOOR while it waits.
    assert len(told) <= 5 * (1 + max(done) / RETRY_FLOOR), (len(told), done)


# What the review (break30) found in the first version of this change.


@fake_time
async def test_a_refusal_after_waiting_does_not_count_the_refused_call_itself() -> None:
    """A rolling cap of 2 calls per 10 minutes, the first call in flight: the second
    caller, refused at its deadline, was still queued when the refusal was worked
    out and counted itself ahead of itself: told 600 s, admitted 0.08 s later."""
    governor = synced(Governor(), E0 + 10, eps=0.001 + SYNC_TRIP / 2)
    first = governor.renew(await governor.acquire(PMPRO_BNB))
    assert first is not None
    t0 = mono(governor)
    with pytest.raises(ThrottledError) as refused:
        await governor.acquire(PMPRO_BNB, max_wait=0.01)  # refused after waiting
    assert refused.value.retry_after == pytest.approx(SYNC_TRIP - 0.01)
    await anyio.sleep(SYNC_TRIP - 0.01)
    governor.observe(first, sent=t0, received=mono(governor), status=200, headers={})
    governor.refund(await governor.acquire(PMPRO_BNB, max_wait=0))  # as told


@fake_time
async def test_a_fast_endpoint_is_not_told_another_endpoints_slow_trips() -> None:
    exchange = SimulatedExchange(clock=LoopClock(epoch=E0 + 10))
    exchange.add_demo_account()
    exchange.faults.add(Fault.latency(1.0), endpoint="universal_transfer")
    exchange.faults.add(Fault.latency(0.05), endpoint="pm_collect_asset")
    loop = asyncio.get_running_loop()
    async with exchange.client() as client:
        for i in range(5):  # five trips of 1 s on another pool
            await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount=f"1.{i}")
        start = loop.time()
        first = asyncio.ensure_future(client.pm_collect_asset(asset="USDT"))  # cold /papi
        await asyncio.sleep(0.001)
        with pytest.raises(ThrottledError) as refused:
            await client.pm_collect_asset(asset="USDT", max_wait=0)
        await first
        answered = loop.time() - start
        # Told at most twice the real wait (it said 0.999 s for 0.05 s), and not now.
        told = refused.value.retry_after
        assert RETRY_FLOOR - 1e-9 <= told <= 2 * answered, (told, answered)
        # And once that endpoint's own trips are known, those.
        assert client.governor._typical_trip(PM_ASSET) == pytest.approx(0.05, abs=0.01)


@fake_time
async def test_the_first_clock_syncs_refusal_says_the_measured_trip_and_reaches_the_hooks() -> None:
    refusals: list[tuple[str, float]] = []

    class Hooks(GovernorHooks):
        def refused(self, endpoint: str, reason: str, retry_after: float) -> None:
            refusals.append((endpoint, retry_after))

    exchange = SimulatedExchange(clock=LoopClock(epoch=E0 + 10))
    exchange.add_demo_account()
    exchange.faults.add(Fault.latency(0.02), endpoint="server_time")
    governor = Governor(exchange.limits, clock=exchange.clock, hooks=Hooks())
    async with exchange.client(governor=governor) as client:
        await client.server_time()  # a public read: a trip of 0.02 s, no sync
        with pytest.raises(ThrottledError, match="clock could not be synced") as refused:
            await client.pm_collect_asset(asset="USDT", max_wait=0)
    # It said the assumed bound (0.5 s), and no hook heard of it.
    assert refused.value.retry_after == pytest.approx(0.02, abs=0.005)
    assert refusals == [("server_time", refused.value.retry_after)]


@fake_time
async def test_a_refusal_just_before_the_answer_is_due_still_says_the_floor() -> None:
    governor = synced(Governor(), E0 + 10, eps=0.001 + SYNC_TRIP / 2)
    await first_out(governor)
    await anyio.sleep(SYNC_TRIP - 0.0001)
    assert await refusal(governor) == pytest.approx(RETRY_FLOOR)
