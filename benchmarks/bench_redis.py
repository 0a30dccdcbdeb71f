"""RedisStorage: the amortized acquire, and fairness and utilization across OS processes.

* Acquire: one process takes permits of weight 1 on a 6000-a-minute pool (the
  real /api IP limit), with four processes registered (so leases are sized for
  four), against the in-process MemoryStorage and a naive limiter that makes
  one Lua round trip per acquire. Same run, same Redis (a throwaway
  redis-server on loopback).
* Fairness: four OS processes, 100 coroutines each, take permits of a
  600-a-window pool (1-s windows) for a few seconds; per window, the weight
  admitted (utilization) and each process's part of it.

``python -m benchmarks.bench_redis`` (``child`` is the mode of the four processes).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections import Counter

from binance_transfers import ENDPOINTS, Governor, Limits, MemoryStorage, RedisStorage, Storage
from binance_transfers._redis_server import RedisServer

from ._report import Report

API = ENDPOINTS["server_time"]  # /api, weight 1
ROUNDS, N, NAIVE_N = 5, 5_000, 2_000
PROCESSES, COROUTINES, SECONDS = 4, 100, 6.0
FAIR = Limits(api_ip=600, time_scale=60)  # 600 per 1-s window

# The limiter a Redis user writes first: a fixed-window counter, one script per acquire.
NAIVE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return 0 end
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


def synced(governor: Governor) -> Governor:
    """Binance's clock taken as the wall clock (no exchange here)."""
    clock = governor.server_clock
    mono = clock.clock.monotonic()
    clock.update(sent=mono - 0.001, received=mono + 0.001, server_ms=round(time.time() * 1000))
    return governor


async def _ours(storage: Storage, limits: Limits) -> float:
    governor = synced(Governor(limits, storage=storage, latency=0.0, cold_start=False))
    start = time.perf_counter()
    for _ in range(N):
        await governor.acquire(API)
    return (time.perf_counter() - start) / N * 1e6


async def _naive(url: str, prefix: str) -> float:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    script = client.register_script(NAIVE)
    try:
        start = time.perf_counter()
        for _ in range(NAIVE_N):
            window = int(time.time() // 60)
            if not await script(keys=[f"{prefix}:{window}"], args=[1, 10**9, 120_000]):
                raise RuntimeError("the naive limiter refused")
        return (time.perf_counter() - start) / NAIVE_N * 1e6
    finally:
        await client.aclose()


async def run(report: Report) -> None:
    with RedisServer() as server:
        memory, redis, naive, trips = [], [], [], []
        for i in range(ROUNDS):
            # A fresh budget per round: a pool of 6000 per minute, four processes seen.
            limits = Limits(api_ip=6000)
            prefix = f"bench{i}"
            for _ in range(3):
                # Three more processes take one permit each and give the rest
                # back: leases are sized for four live processes.
                async with await RedisStorage.connect(server.url, prefix=prefix) as other:
                    await synced(
                        Governor(limits, storage=other, latency=0.0, cold_start=False)
                    ).acquire(API)
            async with await RedisStorage.connect(server.url, prefix=prefix) as storage:
                redis.append(await _ours(storage, limits))
                trips.append(storage.round_trips)
            memory.append(await _ours(MemoryStorage(), limits))
            naive.append(await _naive(server.url, f"naive{i}"))
        m, r, n = statistics.median(memory), statistics.median(redis), statistics.median(naive)
        print(
            f"  per acquire (median µs of {ROUNDS}): memory {m:.2f}, redis leased {r:.2f} "
            f"({statistics.median(trips):.0f} round trips per {N}), naive Lua {n:.1f}"
        )
        report.add(
            "amortized acquire, RedisStorage (6000/min, 4 processes)",
            f"{r:.2f} µs vs {n:.1f} µs naive (one Lua call per acquire), {m:.2f} µs in-process",
            "<= 20 µs",
            r <= 20,
        )
        await _fairness(report, server.url)


async def _fairness(report: Report, url: str) -> None:
    start = time.time() + 4.0  # every process starts taking permits then (imports take time)
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.bench_redis",
            "child",
            url,
            repr(start),
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    outputs = [json.loads((await child.communicate())[0]) for child in children]
    windows = sorted(set.intersection(*(set(map(int, out)) for out in outputs)))[1:-1]
    if not windows:
        report.add("fairness", f"no window all {PROCESSES} processes ran through", "", False)
        return
    per_window = [sum(out[str(w)] for out in outputs) for w in windows]
    shares = [sum(out[str(w)] for w in windows) for out in outputs]
    utilization = statistics.median(per_window) / FAIR.api_ip
    least = min(shares) / sum(shares)
    print(f"  per window {per_window} of {FAIR.api_ip}; per process {shares}")
    report.add(
        f"{PROCESSES} processes x {COROUTINES} coroutines on one Redis budget: utilization",
        f"{utilization:.1%} median of {len(windows)} windows, max {max(per_window)}",
        ">= 95 %, never above the limit",
        utilization >= 0.95 and max(per_window) <= FAIR.api_ip,
    )
    report.add(
        f"{PROCESSES} processes: the least served process's part",
        f"{least:.1%} (fair: {1 / PROCESSES:.0%})",
        ">= 15 %",
        least >= 0.15,
    )


async def child(url: str, start: float) -> None:
    """One of the fairness processes: permits per window, as JSON on stdout."""
    taken: Counter[int] = Counter()
    async with await RedisStorage.connect(url, prefix="fair") as storage:
        governor = synced(Governor(FAIR, storage=storage, latency=0.0, cold_start=False))
        await asyncio.sleep(start - time.time())
        end = start + SECONDS

        async def take() -> None:
            while time.time() < end:
                permit = await governor.acquire(API)
                # Count it where it was charged (the window it may land in).
                taken[permit[2][0][2][0]] += 1

        await asyncio.gather(*(take() for _ in range(COROUTINES)))
    print(json.dumps(taken))


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        asyncio.run(child(sys.argv[2], float(sys.argv[3])))
    else:
        report = Report()
        asyncio.run(run(report))
        sys.exit(1 if report.failed else 0)
