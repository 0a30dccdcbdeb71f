"""Cold start: a new governor cannot know what a previous life of its process spent.

A restarted process (issue 8's kill and recover) that bursts blind into a window
its predecessor already used meets a 429, and the requests behind it a 418 ban.
A cold pool admits one request and reads the answer's usage header before it
bursts; rolling caps (no header) slow-start, or are seeded from the journal.
"""

from __future__ import annotations

import asyncio
import contextlib

import anyio
import anyio.lowlevel
import looptime
import pytest

from binance_transfers import (
    ENDPOINTS,
    BinanceTransfersError,
    Governor,
    Limits,
    LoopClock,
    Permit,
    PoolSpec,
    ThrottledError,
    TransferType,
)
from binance_transfers._governor._geometry import CLOCK_STEP
from binance_transfers._storage import (
    CallCounter,
    MemoryStorage,
    StorageLink,
    WindowCounter,
)
from binance_transfers.sim import Fault, SimulatedExchange

from .test_governor import mono, synced

E0 = 1_767_225_600.0  # a minute boundary on Binance's clock
PM_ASSET = ENDPOINTS["pm_collect_asset"]  # /papi, weight 30
PMPRO_BNB = ENDPOINTS["pmpro_bnb_transfer"]  # rolling cap: 2 calls per 10 minutes

fake_time = looptime.enabled(strict=True)


def answer(governor: Governor, permit: Permit, **headers: str) -> None:
    written = governor.renew(permit)
    assert written is not None
    t = mono(governor)
    governor.observe(written, sent=t, received=t, status=200, headers=headers)


async def admitted_at_once(
    governor: Governor, endpoint: object, n: int, within: float = 0.0
) -> list[Permit]:
    """Start ``n`` acquires and return the permits granted within ``within`` seconds
    (0: without any time passing)."""
    got: list[Permit] = []

    async def one() -> None:
        got.append(await governor.acquire(endpoint))  # type: ignore[arg-type]

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
        await anyio.lowlevel.checkpoint()
        await anyio.lowlevel.checkpoint()
        if within:
            await anyio.sleep(within)
        tg.cancel_scope.cancel()
    return got


@looptime.enabled(strict=True)
async def test_a_restarted_process_does_not_get_the_ip_banned() -> None:
    """The previous life spent 190 of the 200 universal transfers this minute allows and
    was killed; the restarted process (a new governor) runs 20 concurrent transfers.
    Before: all 20 admitted blind, the 11th met a 429, the 9 behind it a 418 ban."""
    exchange = SimulatedExchange(clock=LoopClock(epoch=E0))
    exchange.add_demo_account()
    async with exchange.client() as before:
        for i in range(190):
            await before.transfer(
                type=TransferType.MAIN_UMFUTURE, asset="USDT", amount=f"1.{i:04d}"
            )
    exchange.faults.add(Fault.latency(0.05), endpoint="universal_transfer")
    async with exchange.client() as after:

        async def worker(w: int) -> None:
            for i in range(3):
                with contextlib.suppress(BinanceTransfersError):
                    await after.transfer(
                        type=TransferType.MAIN_UMFUTURE, asset="USDT", amount=f"2.{w:02d}{i}"
                    )

        await asyncio.gather(*[worker(w) for w in range(20)])
    assert exchange.ledger.entries(status=418) == []
    assert exchange.ledger.entries(status=429) == []
    assert exchange.ledger.over_limit() == []
    assert len(exchange.ledger.executed("universal_transfer")) == 190 + 60


@fake_time
async def test_a_cold_pool_admits_one_request_and_reads_its_usage_header() -> None:
    """Binance reports 5940 of 6000 used: the pool is warm, and counts it.

    Whoever spent it may be a live process that has not heard of us and fills
    the window to its limit (F7): that window holds back one request as heavy
    as the heaviest /papi serves (750) beside it, so no 30-weight call fits
    there; the next window admits beside what they spent (reserved there).
    (Before: two at once, 6000, beside a process that may fill the window.)"""
    g = synced(Governor(latency=0.0), E0 + 10)
    first = await admitted_at_once(g, PM_ASSET, 20)
    assert len(first) == 1  # the probe
    answer(g, first[0], **{"x-mbx-used-weight-1m": "5940"})
    pool = next(p for p in g._pools.values() if p.key == "papi-ip")
    assert not pool.cold  # warm: the header was the truth
    assert next(p.used for p in g.snapshot() if p.key == "papi-ip") == 5940
    assert await admitted_at_once(g, PM_ASSET, 20, within=1.0) == []
    more = await admitted_at_once(g, PM_ASSET, 20, within=60.0)
    assert more and all(record[0] == int(E0 // 60) + 1 for _, _, ((_, _, record),) in more)


@fake_time
async def test_a_cold_pool_answered_without_its_usage_header_stays_one_at_a_time() -> None:
    """An answer without the header (a WAF's 403, a proxy's 5xx) tells nothing of
    the window: no slow start on it (1, 2, 4 at once before: blind, into a window
    a previous life may have filled; review break28: a 429 and a 418)."""
    g = synced(Governor(latency=0.0), E0 + 10)
    sizes = []
    for _ in range(3):
        got = await admitted_at_once(g, PM_ASSET, 20)
        sizes.append(len(got))
        for permit in got:
            answer(g, permit)
    assert sizes == [1, 1, 1]


@fake_time
async def test_a_cold_rolling_cap_slow_starts() -> None:
    """Rolling caps have no header: each answer lets one more go at once (1, 2, 4)."""
    g = synced(Governor(Limits(papi_ip=10**6), latency=0.0), E0 + 10)
    sizes = []
    for _ in range(3):
        got = await admitted_at_once(g, ENDPOINTS["pm_auto_collect"], 20)
        sizes.append(len(got))
        for permit in got:  # /papi is told its count; the cap is not
            answer(g, permit, **{"x-mbx-used-weight-1m": "750"})
    assert sizes == [1, 2, 4]


@fake_time
async def test_a_cold_probe_given_back_lets_the_next_one_go() -> None:
    g = synced(Governor(latency=0.0), E0 + 10)
    (probe,) = await admitted_at_once(g, PM_ASSET, 5)
    g.refund(probe)
    assert len(await admitted_at_once(g, PM_ASSET, 5)) == 1


@fake_time
async def test_a_cold_probe_written_and_never_answered_keeps_its_place_until_warm() -> None:
    """Its answer alone would have told whether the window is full (a previous
    life may have filled it): the next request must not go blind into that
    window (it went at once: a second request into a full window, a 418)."""
    g = synced(Governor(latency=0.0), E0 + 10)
    (probe,) = await admitted_at_once(g, PM_ASSET, 5)
    written = g.renew(probe)
    assert written is not None
    g.observe(written, sent=mono(g), received=None)  # a read timeout: lost
    assert await admitted_at_once(g, PM_ASSET, 5, within=49.0) == []
    with pytest.raises(ThrottledError) as refused:  # told when, not "now" again and again
        await g.acquire(PM_ASSET, max_wait=0)
    assert E0 + 60 <= refused.value.retry_at < E0 + 60.01 + CLOCK_STEP
    await g.acquire(PM_ASSET)  # warm: the window a previous life spent in is over
    assert E0 + 60 < g.server_clock.now() < E0 + 60.01 + CLOCK_STEP


@fake_time
async def test_a_pool_is_warm_from_the_first_window_that_starts_after_the_first_use() -> None:
    """Nothing of a previous life can count in a window that opened after the restart.
    What another process spends at that window's opening shows only in its reports:
    one request first (test_governor_first_contact.py), then the rest at once."""
    g = synced(Governor(latency=0.0), E0 + 10)
    (_probe,) = await admitted_at_once(g, PM_ASSET, 5)  # never answered
    await anyio.sleep(50.1)  # Binance's next minute
    (opening,) = await admitted_at_once(g, PM_ASSET, 20)
    answer(g, opening, **{"x-mbx-used-weight-1m": "30"})
    assert len(await admitted_at_once(g, PM_ASSET, 20)) == 20


@fake_time
async def test_a_cold_wait_ends_when_the_pool_warms_up_even_without_an_answer() -> None:
    g = synced(Governor(latency=0.0), E0 + 10)
    (_probe,) = await admitted_at_once(g, PM_ASSET, 1)
    await g.acquire(PM_ASSET)  # waits: the probe is never answered
    assert E0 + 60 < g.server_clock.now() < E0 + 60.01 + CLOCK_STEP


@fake_time
async def test_cold_start_can_be_switched_off() -> None:
    g = synced(Governor(latency=0.0, cold_start=False), E0 + 10)
    assert len(await admitted_at_once(g, PM_ASSET, 20)) == 20


@fake_time
async def test_a_rolling_cap_seeded_from_the_journal_counts_the_previous_life() -> None:
    """2 per 10 minutes; the previous life made one call 5 minutes ago: one more now,
    the next when that call's 10 minutes are over, not at once."""
    g = synced(Governor(latency=0.0), E0 + 300)
    g.seed(PMPRO_BNB, [E0])
    (first,) = await admitted_at_once(g, PMPRO_BNB, 3)
    answer(g, first)  # warm already: no slow start, the cap alone decides
    assert await admitted_at_once(g, PMPRO_BNB, 3) == []
    await g.acquire(PMPRO_BNB)
    assert E0 + 600 < g.server_clock.now() < E0 + 601


@fake_time
async def test_seeding_counts_in_the_fixed_window_too() -> None:
    g = synced(Governor(Limits(papi_ip=90), latency=0.0), E0 + 10)
    g.seed(PM_ASSET, [E0 + 5, E0 + 6])
    assert next(p.used for p in g.snapshot() if p.key == "papi-ip") == 60
    probe = await g.acquire(PM_ASSET, max_wait=0)  # cold: one at a time
    answer(g, probe)  # no header: still 60 of ours from the previous life, + 30
    with pytest.raises(BinanceTransfersError):
        await g.acquire(PM_ASSET, max_wait=0)  # full: 60 + 30


class _Shared:
    """A storage shared by several processes (as Redis is), here backed by memory."""

    def __init__(self) -> None:
        self._memory = MemoryStorage()

    def window_counter(self, spec: PoolSpec, link: StorageLink) -> WindowCounter:
        return self._memory.window_counter(spec, link)

    def call_counter(self, spec: PoolSpec, link: StorageLink) -> CallCounter:
        return self._memory.call_counter(spec, link)

    def discard(self, key: str) -> None:
        self._memory.discard(key)


@fake_time
async def test_a_governor_on_a_shared_storage_starts_warm() -> None:
    """A shared storage already counts what every process on it spent: no probing."""
    g = synced(Governor(latency=0.0, storage=_Shared()), E0 + 10)
    assert len(await admitted_at_once(g, PM_ASSET, 20)) == 20
    assert synced(Governor(latency=0.0), E0 + 10).cold_start


@fake_time
async def test_the_first_opening_waits_for_a_report_within_that_window_only() -> None:
    """Answers without a usage header never report on the first window whose opening
    the governor sees: one request at a time there, not for good after it."""
    g = synced(Governor(latency=0.0), E0 + 10)
    answer(g, (await admitted_at_once(g, PM_ASSET, 5))[0], **{"x-mbx-used-weight-1m": "30"})
    await anyio.sleep(50.1)  # Binance's next minute: the first opening seen
    for _ in range(2):
        (one,) = await admitted_at_once(g, PM_ASSET, 20)
        answer(g, one)  # no header
    await anyio.sleep(60.0)  # the minute after
    assert len(await admitted_at_once(g, PM_ASSET, 20)) == 20
