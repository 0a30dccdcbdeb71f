"""1,000 coroutines x 15 acquires of weight 1 against 5,000 per 1-second window.

Real time, real asyncio. Each limiter's admissions are counted per fixed,
clock-aligned one-second window (Binance's way): ours must never exceed 5,000
in one, and finish within 5 % of the ideal (all 15,000 admitted as soon as the
windows allow) using under 0.1 s of CPU. aiolimiter and pyrate-limiter run the
same load for comparison.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import aiolimiter
import pyrate_limiter

from binance_transfers import ENDPOINTS, Governor, Limits

from ._report import Report

COROUTINES, EACH, LIMIT = 1_000, 15, 5_000


async def _crowd(acquire: Callable[[], Awaitable[object]]) -> tuple[list[float], float, float]:
    """Run the crowd; return admission wall times, elapsed wall and CPU seconds."""
    admitted: list[float] = []

    async def worker() -> None:
        for _ in range(EACH):
            await acquire()
            admitted.append(time.time())

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(COROUTINES)))
    return admitted, time.perf_counter() - wall, time.process_time() - cpu


def _worst_window(admitted: list[float]) -> int:
    return max(Counter(math.floor(t) for t in admitted).values())


async def run(report: Report) -> None:
    # The governor believes Binance's clock is this machine's, +- 1 ms.
    governor = Governor(Limits(api_ip=LIMIT, time_scale=60), latency=0.0, cold_start=False)
    clock = governor.server_clock
    now = clock.clock.monotonic()
    clock.update(sent=now, received=now, server_ms=round(time.time() * 1000))
    endpoint = ENDPOINTS["server_time"]
    start = time.time()
    admitted, wall, cpu = await _crowd(lambda: governor.acquire(endpoint))
    # Ideal: 5,000 in the current window, then 5,000 at each of the next two starts.
    ideal = math.floor(start) + math.ceil(COROUTINES * EACH / LIMIT) - 1 - start
    worst = _worst_window(admitted)
    print(f"  ours: {wall:.3f} s wall (ideal {ideal:.3f} s), {cpu:.3f} s CPU, worst window {worst}")
    report.add(
        "contended 1,000 x 15 acquires, wall time vs ideal",
        f"{wall:.3f} s vs {ideal:.3f} s (+{(wall / ideal - 1) * 100:.1f} %)",
        "within 5 %",
        wall <= ideal * 1.05,
    )
    report.add("contended, CPU time", f"{cpu:.3f} s", "< 0.1 s", cpu < 0.1)
    report.add(
        "contended, most admitted in one fixed 1 s window",
        f"{worst} (limit {LIMIT})",
        f"<= {LIMIT}",
        worst <= LIMIT,
    )

    aio = aiolimiter.AsyncLimiter(LIMIT, 1)
    admitted, wall, cpu = await _crowd(aio.acquire)
    aio_worst = _worst_window(admitted)
    print(f"  aiolimiter: {wall:.3f} s wall, {cpu:.3f} s CPU, worst window {aio_worst}")
    pyrate = pyrate_limiter.Limiter(pyrate_limiter.Rate(LIMIT, pyrate_limiter.Duration.SECOND))
    admitted, pyrate_wall, pyrate_cpu = await _crowd(lambda: pyrate.try_acquire_async("x"))
    pyrate_worst = _worst_window(admitted)
    print(
        f"  pyrate-limiter: {pyrate_wall:.3f} s wall, {pyrate_cpu:.3f} s CPU, "
        f"worst window {pyrate_worst}"
    )
    report.add(
        "same load, others (worst fixed window / wall / CPU)",
        f"aiolimiter {aio_worst} / {wall:.2f} s / {cpu:.2f} s; pyrate-limiter {pyrate_worst} "
        f"/ {pyrate_wall:.2f} s / {pyrate_cpu:.2f} s",
        "for comparison",
        True,
    )


if __name__ == "__main__":
    asyncio.run(run(Report()))
