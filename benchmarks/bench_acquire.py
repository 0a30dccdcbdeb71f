"""Uncontended acquire: ours against aiolimiter and pyrate-limiter, in the same run."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import aiolimiter
import pyrate_limiter

from binance_transfers import ENDPOINTS, Governor, Limits

from ._report import Report

HUGE = 10**12
ROUNDS, N = 25, 20_000


async def _per_call(fn: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    for _ in range(N):
        await fn()
    return (time.perf_counter() - start) / N * 1e6


async def run(report: Report) -> None:
    aio = aiolimiter.AsyncLimiter(HUGE, 1)
    pyrate = pyrate_limiter.Limiter(pyrate_limiter.Rate(HUGE, pyrate_limiter.Duration.SECOND))
    limits = Limits(
        api_ip=HUGE, sapi_ip=HUGE, sapi_uid=HUGE, caps={"pmpro_auto_collect": ((HUGE, 3600.0),)}
    )
    heavy = ENDPOINTS.evolve("server_time", ip_weight=1500)["server_time"]
    light = ENDPOINTS["server_time"]
    multi = ENDPOINTS.evolve("sub_account_transfer", caps=ENDPOINTS["pmpro_auto_collect"].caps)[
        "sub_account_transfer"
    ]  # IP + UID + a rolling cap
    # Warm governors (cold_start=False): acquires without answers, a steady state.
    ours = Governor(limits, latency=0.0, cold_start=False)
    ours_heavy = Governor(limits, latency=0.0, cold_start=False)
    ours_multi = Governor(
        Limits(sapi_ip=HUGE, sapi_uid=HUGE, caps={"sub_account_transfer": ((HUGE, 3600.0),)}),
        latency=0.0,
        cold_start=False,
    )
    # pyrate's sliding log keeps every item: keep its run short enough for memory
    cases: dict[str, Callable[[], Awaitable[object]]] = {
        "aiolimiter": aio.acquire,
        "pyrate-limiter": lambda: pyrate.try_acquire_async("x"),
        "ours, one pool": lambda: ours.acquire(light),
        "ours, weight 1500": lambda: ours_heavy.acquire(heavy),
        "ours, IP + UID + cap": lambda: ours_multi.acquire(multi),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(ROUNDS):
        for name, fn in cases.items():
            if name == "pyrate-limiter" and round_ >= 5:
                continue
            samples[name].append(await _per_call(fn))
    med = {name: statistics.median(values) for name, values in samples.items()}
    ratios = [o / a for o, a in zip(samples["ours, one pool"], samples["aiolimiter"], strict=True)]
    ratio = statistics.median(ratios)
    print(
        "  per acquire (median µs): "
        + ", ".join(f"{name} {value:.3f}" for name, value in med.items()),
        flush=True,
    )
    report.add(
        "uncontended acquire, one pool, vs aiolimiter",
        f"{med['ours, one pool']:.2f} µs vs {med['aiolimiter']:.2f} µs (ratio {ratio:.2f}); "
        f"pyrate-limiter {med['pyrate-limiter']:.2f} µs",
        "ratio <= 1.00",
        ratio <= 1.0,
    )
    # An absolute time fails on a loaded machine that slows everything alike:
    # 5 µs on a quiet one is about 6 aiolimiter acquires; measured in the same
    # run, 3 of them is the (stricter) target that holds under load too.
    per_aio = [
        m / a for m, a in zip(samples["ours, IP + UID + cap"], samples["aiolimiter"], strict=True)
    ]
    multi_ratio = statistics.median(per_aio)
    report.add(
        "uncontended acquire, IP + UID + rolling cap",
        f"{med['ours, IP + UID + cap']:.2f} µs ({multi_ratio:.2f} aiolimiter acquires)",
        "< 5 µs on a quiet machine: <= 3 aiolimiter acquires in the same run",
        multi_ratio <= 3.0,
    )
    heavy_ratio = med["ours, weight 1500"] / med["ours, one pool"]
    report.add(
        "weight 1500 vs weight 1",
        f"{med['ours, weight 1500']:.2f} µs vs {med['ours, one pool']:.2f} µs "
        f"(ratio {heavy_ratio:.2f})",
        "same cost (ratio <= 1.10)",
        heavy_ratio <= 1.10,
    )


if __name__ == "__main__":
    asyncio.run(run(Report()))
