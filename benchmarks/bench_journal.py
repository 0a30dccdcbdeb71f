"""The intent journal's cost per transfer, against a loopback call.

A client sends universal transfers to the simulated exchange over TCP on
127.0.0.1 (``python -m binance_transfers.sim`` in its own process, as
Binance is not in ours), with and without ``journal=PATH``,
alternating call by call (one at a time) or block by block (50 coroutines),
so that drift on a busy machine hits both alike. The
journal adds one committed SQLite write (before sending, awaited) and one
outcome update per transfer, both in a worker thread. Reported: the median
per-transfer time of each, one after another and with 50 coroutines at once,
and the journal's share of a loopback call (target < 10 %).

``python -m benchmarks.bench_journal``
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

from binance_transfers import Client, Governor, Limits, TransferType
from binance_transfers.sim import DEMO_API_KEY, DEMO_API_SECRET

from ._report import Report

BLOCKS = 12
PER_BLOCK = 100
SINGLE_CALLS = 1500
CONCURRENCY = 50


async def _block(client: Client, count: int, concurrency: int) -> float:
    """Seconds per transfer for ``count`` transfers from ``concurrency`` coroutines."""

    async def worker(share: int) -> None:
        for _ in range(share):
            await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="0.01")

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i in range(concurrency):
            tg.start_soon(worker, count // concurrency + (i < count % concurrency))
    return (time.perf_counter() - started) / count


async def measure(concurrency: int) -> tuple[float, float]:
    """Median seconds per transfer (plain, journaled) over alternating blocks."""
    # A huge time scale: the benchmark measures the journal, not the rate limits.
    limits = Limits(time_scale=10_000)
    command = [sys.executable, "-m", "binance_transfers.sim", "--time-scale", "10000"]
    plain: list[float] = []
    journaled: list[float] = []
    async with await anyio.open_process(command) as server:
        try:
            assert server.stdout is not None
            banner = (await server.stdout.receive()).decode()
            url = banner.split(" on ", 1)[1].split()[0]
            with tempfile.TemporaryDirectory() as tmp:

                def client(journal: Path | None) -> Client:
                    return Client(
                        DEMO_API_KEY,
                        DEMO_API_SECRET,
                        api_url=url,
                        papi_url=url,
                        governor=Governor(limits),
                        journal=journal,
                    )

                async with client(None) as bare, client(Path(tmp) / "j.sqlite") as kept:
                    await _block(bare, 20, 1)  # warm up both: connections, clock sync, SQLite
                    await _block(kept, 20, 1)
                    if concurrency == 1:
                        # One call each in turn: drift and noise hit both alike, and the
                        # median of single calls ignores the odd scheduling hiccup.
                        for _ in range(SINGLE_CALLS):
                            plain.append(await _block(bare, 1, 1))
                            journaled.append(await _block(kept, 1, 1))
                    else:
                        for _ in range(BLOCKS):
                            plain.append(await _block(bare, PER_BLOCK, concurrency))
                            journaled.append(await _block(kept, PER_BLOCK, concurrency))
        finally:
            server.terminate()  # the server we started, by its own handle
    return statistics.median(plain), statistics.median(journaled)


async def run(report: Report) -> None:
    for concurrency in (1, CONCURRENCY):
        plain, journaled = await measure(concurrency)
        cost = (journaled - plain) / plain
        label = "one at a time" if concurrency == 1 else f"{concurrency} coroutines"
        print(
            f"journal, {label}: {plain * 1e6:.0f} us per loopback transfer without, "
            f"{journaled * 1e6:.0f} us with: +{cost:.1%}",
            flush=True,
        )
        report.add(
            f"journal cost per transfer ({label})",
            f"+{(journaled - plain) * 1e6:.0f} us on {plain * 1e6:.0f} us = +{cost:.1%}",
            "< 10 % of a loopback call",
            cost < 0.10,
        )


if __name__ == "__main__":
    result = Report()
    asyncio.run(run(result))
    print(result.markdown())
    sys.exit(1 if result.failed else 0)
