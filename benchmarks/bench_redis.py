"""RedisStorage: the amortized acquire, and fairness and utilization across OS processes.

* Acquire: one process takes permits of weight 1 on a 6000-a-minute pool (the
  real /api IP limit), with four processes registered (so leases are sized for
  four), against the in-process MemoryStorage and a naive limiter that makes
  one Lua round trip per acquire. Same run, same Redis (a throwaway
  redis-server on loopback).
* Fairness: four OS processes, 100 coroutines each, take permits of a
  600-a-window pool (1-s windows) for a few seconds; per window, the weight
  admitted (utilization) and each process's part of it.
* Faults: the same four processes; Redis is killed and restarted empty, later
  one process is SIGKILLed. Per window, the permits admitted (each process
  reports a window once it is over, so the killed one's count up to its death
  is known): no window above the limit, and how many windows the survivors
  take to be back at 95 % of it after each fault.

``python -m benchmarks.bench_redis`` (``child`` is the mode of the processes).
"""

from __future__ import annotations

import asyncio
import json
import math
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


async def _booted(url: str, *prefixes: str) -> None:
    """Give a throwaway Redis the boot tokens of ``prefixes``, as if processes had
    used it before: a fresh one stops new leases for a window or two (a fresh
    Redis cannot be told from one restarted empty: see RedisStorage), which
    with 60-s windows is minutes of nothing to measure."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        for prefix in prefixes:
            await client.hset(f"{{{prefix}}}:boot", "token", "bench")
    finally:
        await client.aclose()


async def run(report: Report) -> None:
    with RedisServer() as server:
        await _booted(server.url, "fair", "faults", *(f"bench{i}" for i in range(ROUNDS)))
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
        await _faults(report, server)


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


async def child(url: str, start: float, seconds: float = SECONDS, prefix: str = "fair") -> None:
    """One of the fairness processes: permits per window, as JSON on stdout.

    With ``seconds`` given (the faults scenario), each window's count is also
    printed as a line ``window count`` once the window is over."""
    taken: Counter[int] = Counter()
    stream = seconds != SECONDS
    async with await RedisStorage.connect(
        url, prefix=prefix, processes=PROCESSES, socket_timeout=0.2
    ) as storage:
        governor = synced(Governor(FAIR, storage=storage, latency=0.0, cold_start=False))
        await asyncio.sleep(start - time.time())
        end = start + seconds

        async def take() -> None:
            while time.time() < end:
                permit = await governor.acquire(API)
                # Count it where it was charged (the window it may land in).
                taken[permit[2][0][2][0]] += 1

        async def report() -> None:
            window = int(time.time() // FAIR.window)
            while time.time() < end + FAIR.window:
                # A window is over once the next has begun (plus a margin).
                await asyncio.sleep((window + 1) * FAIR.window + 0.05 - time.time())
                print(window, taken.get(window, 0), flush=True)
                window += 1

        tasks = [take() for _ in range(COROUTINES)]
        await asyncio.gather(*tasks, *([report()] if stream else []))
    if not stream:
        print(json.dumps(taken))


async def _faults(report: Report, server: RedisServer) -> None:
    """Redis killed 0.2 s into a window and restarted empty 0.5 s later (3.2 s in),
    one process SIGKILLed 0.5 s into a window (8.5 s in), in a 13-s run of four
    processes. (Killed early in a window, Redis costs the most: the next window
    is stopped for new leases after the restart, see RedisStorage.)"""
    start = float(math.ceil(time.time() + 4.0))  # a window boundary
    seconds = 13.0
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.bench_redis",
            "child",
            server.url,
            repr(start),
            repr(seconds),
            "faults",
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    counts: list[dict[int, int]] = [{} for _ in children]

    async def read(index: int) -> None:
        stream = children[index].stdout
        assert stream is not None
        async for line in stream:
            window, count = line.split()
            counts[index][int(window)] = int(count)

    readers = asyncio.gather(*(read(i) for i in range(PROCESSES)))
    await asyncio.sleep(start + 3.2 - time.time())
    killed_redis = int(time.time() // FAIR.window)
    server.kill()
    await asyncio.sleep(0.5)
    server.start()  # same port, no data
    await asyncio.sleep(start + 8.5 - time.time())
    killed_process = int(time.time() // FAIR.window)
    children[0].kill()
    await readers
    for child in children:
        await child.wait()
    first = int(start // FAIR.window) + 1
    last = int((start + seconds) // FAIR.window) - 2  # the last one: processes end
    per_window = {w: sum(c.get(w, 0) for c in counts) for w in range(first, last + 1)}
    survivors = {w: sum(c.get(w, 0) for c in counts[1:]) for w in per_window}

    def recovery(fault: int, until: int, use: dict[int, int]) -> int | None:
        """Windows after the fault's window until two in a row are at 95 % (before
        ``until``, the next fault or the end): a full window before a stopped one
        is not a recovery, one dip of a loaded machine later is not a relapse."""
        full = [w for w in range(fault + 1, until) if use.get(w, 0) >= 0.95 * FAIR.api_ip]
        back = next((w for w in full if w + 1 in full), None)
        return None if back is None else back - fault

    after_redis = recovery(killed_redis, killed_process, per_window)
    after_kill = recovery(killed_process, last + 1, survivors)
    line = " ".join(
        f"{'R' if w == killed_redis else 'K' if w == killed_process else ''}{per_window[w]}"
        for w in per_window
    )
    print(f"  per window (R: Redis killed, K: a process SIGKILLed): {line}")
    report.add(
        "faults: windows above the limit (Redis killed+restarted empty, a process SIGKILLed)",
        f"{sum(1 for v in per_window.values() if v > FAIR.api_ip)}, max {max(per_window.values())}",
        "0",
        max(per_window.values()) <= FAIR.api_ip,
    )
    report.add(
        "faults: windows until >= 95 % after Redis was killed and restarted empty",
        f"{after_redis} (Redis back 0.5 s after the kill)",
        "<= 2",
        after_redis is not None and after_redis <= 2,
    )
    report.add(
        "faults: windows until the survivors are >= 95 % after a process was SIGKILLed",
        f"{after_kill}",
        "<= 2",
        after_kill is not None and after_kill <= 2,
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"] and len(sys.argv) > 4:
        asyncio.run(child(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]))
    elif sys.argv[1:2] == ["child"]:
        asyncio.run(child(sys.argv[2], float(sys.argv[3])))
    elif sys.argv[1:2] == ["faults"]:  # the faults scenario alone
        report = Report()

        async def faults_only() -> None:
            with RedisServer() as server:
                await _booted(server.url, "faults")
                await _faults(report, server)

        asyncio.run(faults_only())
        sys.exit(1 if report.failed else 0)
    else:
        report = Report()
        asyncio.run(run(report))
        sys.exit(1 if report.failed else 0)
