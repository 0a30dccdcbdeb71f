"""The intent journal's cost per transfer, against a loopback call.

A client sends universal transfers to the simulated exchange over TCP on
127.0.0.1 (``python -m binance_transfers.sim`` in its own process, as
Binance is not in ours), with and without ``journal=PATH``, in pairs:
call by call (one at a time) or block by block (50 coroutines), the order
flipped every other pair, so that drift and the odd hiccup on a busy
machine hit both alike. The journal adds one committed SQLite write
(before sending) and one outcome update per transfer, in a worker thread.

Reported, for each mode: the median time per transfer without and with
the journal, and the journal's cost as the median of the paired
differences (one at a time) or of the paired ratios (blocks), against
the median loopback call (target < 10 %). Also how the event loop's
thread waited for the intents: blocked (a lone intent; at most
``_journal._BLOCK_SECONDS``) or in the loop, and the longest blocks.

One at a time, a third client runs in the same pairs: its journal hands
each intent to the writer thread and waits for it exactly as the real one
does, but the job writes nothing. Its cost is the floor of any journal
written by a thread of its own: the thread's wakeup once per transfer.

``python -m benchmarks.bench_journal``
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from binance_transfers import Client, Governor, Journal, Limits, TransferType, _journal
from binance_transfers.sim import DEMO_API_KEY, DEMO_API_SECRET

from ._report import Report

BLOCKS = 40
PER_BLOCK = 200
SINGLE_CALLS = 2000
CONCURRENCY = 50


class _Waits:
    """How each intent's commit was waited for (the bench wraps ``committed``)."""

    def __init__(self) -> None:
        self.blocked: list[float] = []  # seconds the loop's thread was held
        self.in_loop = 0

    def install(self) -> None:
        committed = _journal._Job.committed
        waits = self

        async def timed(self: _journal._Job) -> Any:
            if self.journal is None or self.is_done or isinstance(self.journal, _NothingWritten):
                return await committed(self)
            started = time.perf_counter()
            try:
                return await committed(self)
            finally:
                if self.wake is None:  # never handed to the loop: the thread blocked
                    waits.blocked.append(time.perf_counter() - started)
                else:
                    waits.in_loop += 1

        _journal._Job.committed = timed  # type: ignore[method-assign]

    def clear(self) -> None:
        self.blocked.clear()
        self.in_loop = 0

    def summary(self) -> str:
        total = len(self.blocked) + self.in_loop
        if not total:
            return "no intent waited"
        line = f"{self.in_loop / total:.0%} of {total} intents waited in the loop"
        if self.blocked:
            ranked = sorted(self.blocked)
            p99 = ranked[min(len(ranked) - 1, int(0.99 * len(ranked)))]
            line += (
                f"; blocked the loop's thread: median {statistics.median(ranked) * 1e6:.0f} us, "
                f"p99 {p99 * 1e6:.0f} us, max {ranked[-1] * 1e6:.0f} us"
            )
        return line


class _NothingWritten(Journal):
    """A journal whose intents are handed over and waited for, but write nothing."""

    def begin(
        self,
        endpoint: str,
        params: Sequence[tuple[str, str]],
        recv_window: int,
        created_ms: int,
    ) -> _journal.PendingIntent:
        json.dumps(list(params))  # as the real one does, on the loop's thread
        self._submitted += 1
        return self._submit(_written_nothing, intent=True)

    def outcome(self, intent: int | _journal.PendingIntent, state: str, **_: Any) -> None:
        return None


def _written_nothing(conn: object) -> int:
    return 0


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


async def measure(concurrency: int, waits: _Waits) -> tuple[list[float], list[float], list[float]]:
    """Seconds per transfer (plain, journaled, floor: one at a time only), pair by pair."""
    # A huge time scale: the benchmark measures the journal, not the rate limits.
    limits = Limits(time_scale=10_000)
    command = [sys.executable, "-m", "binance_transfers.sim", "--time-scale", "10000"]
    plain: list[float] = []
    journaled: list[float] = []
    floor: list[float] = []
    async with await anyio.open_process(command) as server:
        try:
            assert server.stdout is not None
            banner = (await server.stdout.receive()).decode()
            url = banner.split(" on ", 1)[1].split()[0]
            with tempfile.TemporaryDirectory() as tmp:

                def client(journal: Path | Journal | None) -> Client:
                    return Client(
                        DEMO_API_KEY,
                        DEMO_API_SECRET,
                        api_url=url,
                        papi_url=url,
                        governor=Governor(limits),
                        journal=journal,
                    )

                nothing = _NothingWritten(Path(tmp) / "floor.sqlite")
                async with (
                    client(None) as bare,
                    client(Path(tmp) / "j.sqlite") as kept,
                    client(nothing) as thread_only,
                ):
                    # Warm up: connections, clock sync, SQLite, the writer threads.
                    for each in (bare, kept, thread_only):
                        await _block(each, 20, 1)
                    waits.clear()
                    pairs, count = (SINGLE_CALLS, 1) if concurrency == 1 else (BLOCKS, PER_BLOCK)
                    for i in range(pairs):
                        # Flipped every other pair: whichever runs second in a pair
                        # runs on a slightly different machine state.
                        if i % 2:
                            journaled.append(await _block(kept, count, concurrency))
                            plain.append(await _block(bare, count, concurrency))
                        else:
                            plain.append(await _block(bare, count, concurrency))
                            journaled.append(await _block(kept, count, concurrency))
                        if concurrency == 1:  # its waits are not counted in ``waits``
                            floor.append(await _block(thread_only, count, concurrency))
        finally:
            server.terminate()  # the server we started, by its own handle
    return plain, journaled, floor


async def run(report: Report) -> None:
    waits = _Waits()
    waits.install()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    for concurrency in (1, CONCURRENCY):
        plain, journaled, floor = await measure(concurrency, waits)
        base = statistics.median(plain)
        if concurrency == 1:
            extra = statistics.median(j - p for p, j in zip(plain, journaled, strict=True))
            cost = extra / base
            wakeup = statistics.median(f - p for p, f in zip(plain, floor, strict=True))
            print(
                f"journal, one at a time: of which the writer thread's wakeup alone (a job "
                f"that writes nothing, waited for the same way): {wakeup * 1e6:+.0f} us = "
                f"{wakeup / base:+.1%}",
                flush=True,
            )
        else:
            cost = statistics.median(j / p - 1 for p, j in zip(plain, journaled, strict=True))
            extra = cost * base
        label = "one at a time" if concurrency == 1 else f"{concurrency} coroutines"
        print(
            f"journal, {label}: {base * 1e6:.0f} us per loopback transfer without, "
            f"{statistics.median(journaled) * 1e6:.0f} us with (medians); paired: "
            f"{extra * 1e6:+.0f} us = {cost:+.1%}; {waits.summary()}; "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        report.add(
            f"journal cost per transfer ({label})",
            f"{extra * 1e6:+.0f} us on {base * 1e6:.0f} us = {cost:+.1%}",
            "< 10 % of a loopback call",
            cost < 0.10,
        )


if __name__ == "__main__":
    result = Report()
    asyncio.run(run(result))
    print(result.markdown())
    sys.exit(1 if result.failed else 0)
