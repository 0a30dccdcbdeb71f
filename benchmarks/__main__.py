"""Run every benchmark and print the README's table: ``python -m benchmarks``."""

from __future__ import annotations

import asyncio
import platform
import sys

from . import (
    bench_acquire,
    bench_behaviour,
    bench_clock_error,
    bench_contended,
    bench_demo_processes,
    bench_import,
    bench_peers,
    bench_redis,
    bench_settle,
    bench_sim,
    bench_stress,
)
from ._report import Report

SUITES = {
    "acquire": bench_acquire.run,
    # An answer's CPU with 1, 100 and 500 requests in flight (gov7d, issue 9).
    "settle": bench_settle.run,
    "contended": bench_contended.run,
    "behaviour": bench_behaviour.run,
    "clock": bench_clock_error.run,
    "sim": bench_sim.run_bench,
    # Client against client in their own processes (the bench extra's peers).
    "peers": bench_peers.run,
    # `from binance_transfers import Client` as pip installs it (import9, issue 9).
    "import": bench_import.run,
    "stress": bench_stress.run,
    # Several processes on one Redis budget (a throwaway redis-server).
    "redis": bench_redis.run,
    # Issue 10's first target: the demo as 4 processes x 100 coroutines (demo10).
    "processes": bench_demo_processes.run_bench,
}


async def main(names: list[str]) -> Report:
    report = Report()
    for name in names:
        print(f"== {name}", flush=True)
        await SUITES[name](report)
    return report


if __name__ == "__main__":
    chosen = sys.argv[1:] or list(SUITES)
    result = asyncio.run(main(chosen))
    print(f"\nPython {platform.python_version()} on {platform.machine()}, {platform.system()}")
    print(result.markdown())
    sys.exit(1 if result.failed else 0)
