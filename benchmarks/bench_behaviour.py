"""Idle waiters, fairness, pool independence, cancellations: real time, real asyncio."""

from __future__ import annotations

import asyncio
import time

from binance_transfers import ENDPOINTS, Governor, Limits, ThrottledError

from ._report import Report

SAPI_ONE = ENDPOINTS["sub_account_margin_transfer"]  # own /sapi bucket, weight 1
SAPI_HEAVY = ENDPOINTS.evolve("sub_account_margin_transfer", ip_weight=60)[
    "sub_account_margin_transfer"
]
PAPI = ENDPOINTS["pm_collect_asset"]  # /papi, weight 30


def _governor(limits: Limits) -> Governor:
    governor = Governor(limits, latency=0.0, cold_start=False)
    clock = governor.server_clock
    now = clock.clock.monotonic()
    clock.update(sent=now, received=now, server_ms=round(time.time() * 1000))
    return governor


async def idle_waiters(report: Report) -> None:
    """1,000 coroutines blocked on a full pool cost what an idle loop costs."""
    seconds = 2.0
    cpu = time.process_time()
    await asyncio.sleep(seconds)
    baseline = time.process_time() - cpu

    governor = _governor(Limits(sapi_ip=1, time_scale=1 / 60))  # an hour-long window
    await governor.acquire(SAPI_ONE)
    tasks = [asyncio.ensure_future(governor.acquire(SAPI_ONE)) for _ in range(1_000)]
    await asyncio.sleep(0.2)  # all of them queued
    cpu = time.process_time()
    await asyncio.sleep(seconds)
    blocked = time.process_time() - cpu
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    report.add(
        "1,000 coroutines blocked for 2 s: CPU",
        f"{blocked * 1000:.1f} ms (idle loop: {baseline * 1000:.1f} ms)",
        "at the idle baseline (+ <= 5 ms)",
        blocked <= baseline + 0.005,
    )


async def flat_cost(report: Report) -> None:
    """Queueing one more waiter costs the same behind 100 waiters or behind 10,000."""

    async def cost_behind(queued: int) -> float:
        governor = _governor(Limits(sapi_ip=1, time_scale=1 / 60))  # an hour-long window
        await governor.acquire(SAPI_ONE)
        tasks = [asyncio.ensure_future(governor.acquire(SAPI_ONE)) for _ in range(queued)]
        await asyncio.sleep(0.05)
        start = time.perf_counter()
        more = [asyncio.ensure_future(governor.acquire(SAPI_ONE)) for _ in range(2_000)]
        await asyncio.sleep(0)  # one loop iteration: each new task runs until it queues
        queued_now = governor.snapshot()[0].waiters
        if queued_now != queued + len(more):
            raise RuntimeError(f"{queued_now} waiters queued, expected {queued + len(more)}")
        per_waiter = (time.perf_counter() - start) / len(more)
        for task in tasks + more:
            task.cancel()
        await asyncio.gather(*tasks, *more, return_exceptions=True)
        return per_waiter

    small = min([await cost_behind(100) for _ in range(3)])
    large = min([await cost_behind(10_000) for _ in range(3)])
    report.add(
        "queueing a waiter behind 100 vs 10,000 waiters",
        f"{small * 1e6:.1f} µs vs {large * 1e6:.1f} µs (ratio {large / small:.2f})",
        "flat (ratio <= 1.5)",
        large <= 1.5 * small,
    )


async def fairness(report: Report) -> None:
    """A weight-60 call behind a stream of weight-1 calls is served in its turn."""
    governor = _governor(Limits(sapi_ip=100, time_scale=60))
    order: list[str] = []
    stop = asyncio.Event()

    async def light_stream() -> None:
        async def one(i: int) -> None:
            await governor.acquire(SAPI_ONE)
            order.append(f"light{i}")

        tasks, i = [], 0
        while not stop.is_set():
            tasks.append(asyncio.ensure_future(one(i)))
            i += 1
            await asyncio.sleep(0.002)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    stream = asyncio.ensure_future(light_stream())
    await asyncio.sleep(0.3)  # the pool is saturated by the stream
    queued_ahead = governor.snapshot()[0].waiters
    started_before = len(order) + queued_ahead
    start = time.perf_counter()
    await governor.acquire(SAPI_HEAVY)
    waited = time.perf_counter() - start
    order.append("heavy")
    before = order[: order.index("heavy")]
    stop.set()
    await stream
    # Served in turn: no light call that arrived after it went before it.
    overtaken = sum(1 for name in before if int(name[5:]) >= started_before)
    report.add(
        "weight 60 behind a stream of weight 1 (100 per 1 s window)",
        f"served after {waited:.2f} s; {queued_ahead} light calls queued ahead, "
        f"{overtaken} later ones overtook it",
        "served in turn (0 overtook), not starved (< 2 windows)",
        waited < 2.0 and overtaken == 0,
    )

    # Pool independence: /papi saturated and queued, a /sapi call on a free pool.
    governor = _governor(Limits(papi_ip=30, time_scale=1 / 60))
    await governor.acquire(PAPI)
    papi_waiters = [asyncio.ensure_future(governor.acquire(PAPI)) for _ in range(500)]
    await asyncio.sleep(0.05)
    worst = 0.0
    for _ in range(1_000):
        start = time.perf_counter()
        await governor.acquire(SAPI_ONE)
        worst = max(worst, time.perf_counter() - start)
    for task in papi_waiters:
        task.cancel()
    await asyncio.gather(*papi_waiters, return_exceptions=True)
    report.add(
        "acquire on a free pool while /papi is saturated (worst of 1,000)",
        f"{worst * 1e6:.0f} µs",
        "< 1 ms",
        worst < 0.001,
    )


async def cancellations(report: Report) -> None:
    """After 200 cancelled waiters the full capacity is still there."""
    governor = _governor(Limits(sapi_ip=200, time_scale=60))
    clock = governor.server_clock.clock
    for _ in range(200):
        permit = await governor.acquire(SAPI_ONE)
        # Answered at once: landed in this window. (Unanswered, each would stay
        # charged to every window it may still land in, the next one included.)
        now = clock.monotonic()
        governor.observe(permit, sent=now, received=now)
    waiters = [asyncio.ensure_future(governor.acquire(SAPI_ONE)) for _ in range(200)]
    await asyncio.sleep(0.01)
    for task in waiters:
        task.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    # Into the next one-second window, past the guard band after its boundary
    # (a request 10 ms after it may still land in the full window before).
    await asyncio.sleep(1.2 - time.time() % 1)
    got = 0
    for _ in range(200):
        try:
            await governor.acquire(SAPI_ONE, max_wait=0)
            got += 1
        except ThrottledError:
            break
    report.add(
        "capacity after 200 cancelled waiters",
        f"{got} of 200 admitted at once in the next window",
        "200 of 200",
        got == 200,
    )


async def run(report: Report) -> None:
    await idle_waiters(report)
    await flat_cost(report)
    await fairness(report)
    await cancellations(report)


if __name__ == "__main__":
    asyncio.run(run(Report()))
