"""Our estimate of Binance's clock wrong by up to 0.3 s: zero overshoot, >= 90 % throughput.

A simulated Binance keeps its true clock 0.3 s ahead of (then behind) what the
governor believes, within the +-0.3 s uncertainty the governor was told. Each
request takes a random one-way trip of up to 50 ms. Requests are counted in
the window of the *true* clock in which they land, as Binance counts them.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter

from binance_transfers import ENDPOINTS, Governor, Limits

from ._report import Report

LIMIT, TRIP, WINDOWS, CROWD = 1_000, 0.05, 5, 300


async def _run(error: float) -> tuple[int, float]:
    governor = Governor(Limits(api_ip=LIMIT, time_scale=60), latency=TRIP, cold_start=False)
    clock = governor.server_clock
    now = clock.clock.monotonic()
    # A sync whose round trip took 0.6 s: the midpoint is the estimate, +-0.3 s.
    clock.update(sent=now - 0.299, received=now + 0.299, server_ms=round(time.time() * 1000))
    shift = time.time() - time.monotonic() + error  # Binance's true clock
    endpoint = ENDPOINTS["server_time"]
    rng = random.Random(error)
    landed: Counter[int] = Counter()
    start = time.monotonic() + shift
    first = math.floor(start) + 1  # count whole windows only
    end = first + WINDOWS

    async def caller() -> None:
        while time.monotonic() + shift < end:
            permit = await governor.acquire(endpoint)
            sent = time.monotonic()
            await asyncio.sleep(rng.uniform(0, TRIP))
            landed[math.floor(time.monotonic() + shift)] += 1
            await asyncio.sleep(rng.uniform(0, TRIP))
            governor.observe(permit, sent=sent, received=time.monotonic(), status=200)

    await asyncio.gather(*(caller() for _ in range(CROWD)))
    counted = [landed[w] for w in range(first, end)]
    return max(landed.values()), sum(counted) / (WINDOWS * LIMIT)


async def run(report: Report) -> None:
    for error in (0.3, -0.3):
        worst, throughput = await _run(error)
        report.add(
            f"clock estimate off by {error:+.1f} s (1 s windows, trips <= 50 ms)",
            f"worst window {worst} of {LIMIT}; throughput {throughput * 100:.1f} % of ideal",
            "0 over the limit; >= 90 %",
            worst <= LIMIT and throughput >= 0.9,
        )


if __name__ == "__main__":
    asyncio.run(run(Report()))
