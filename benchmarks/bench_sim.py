"""Against the simulated exchange over loopback: weight per window vs the limit, and 429s.

The demo's job (300 coroutines, Binance's minute scaled to a second) runs for
15 s against the exchange in its own process, with a jittered delay on every
request. The exchange's own ledger says how much weight each window of each
pool received; for the pools the job saturates, the median and the lowest
share of the limit over the full windows are reported, with the 429s and
418s the exchange answered.
"""

from __future__ import annotations

import asyncio
import statistics

from binance_transfers.demo import Options, run
from binance_transfers.demo._run import pool_label

from ._report import Report

SATURATED = ("papi-ip", "sapi-ip POST /sapi/v1/portfolio/auto-collection")


async def run_bench(report: Report) -> None:
    outcome = await run(Options(concurrency=300, seconds=15, time_scale=60, latency=0.01))
    for pool in outcome.seen.pools:
        if pool.pool not in SATURATED:
            continue
        shares = [weight / pool.limit for weight in list(pool.windows.values())[1:-1]]
        report.add(
            f"sim, jittered latency: {pool_label(pool.pool)} weight per window",
            f"median {statistics.median(shares):.1%}, lowest {min(shares):.1%}, "
            f"highest {max(shares):.1%} of {pool.limit} over {len(shares)} full windows",
            "<= 100 %, median >= 90 %",
            max(shares) <= 1 and statistics.median(shares) >= 0.9,
        )
    report.add(
        "sim, 429s and 418s answered",
        f"{outcome.answered_429} and {outcome.answered_418} "
        f"({outcome.tally.total_done} calls done)",
        "0 and 0",
        outcome.answered_429 == outcome.answered_418 == 0,
    )


if __name__ == "__main__":
    asyncio.run(run_bench(Report()))
