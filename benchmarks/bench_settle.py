"""The governor's CPU per answer (``Governor.observe``) with 1, 100 and 500 requests in flight.

``python -m benchmarks.bench_settle [--rounds N]``

A lone process on ``/papi`` (weight 20) with room for everything, in batches:
``n`` requests are admitted and written, then answered one by one, oldest first,
each with the usage header Binance would send (the count so far: ours only);
2000 answers timed per sample. Two patterns:

* *spread*: written 2 µs apart, answered 50 ms later, in order (a real loop);
* *burst*: written at the same instant (a backlog released at a window's start
  on a fake clock), answered in order.

Printed: the median CPU µs per answer (process time) over the rounds, and each ``n``'s cost over the
cost with 1 in flight (batches of one), measured in the same run (a busy machine
slows all alike).
Target: answering is flat in the number in flight (ratio <= 2 at 500).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from binance_transfers import ENDPOINTS, Governor, Limits

from ._report import Report

HUGE = 10**12
SIZES = (1, 100, 500)
WINDOW = 60.0


class _Clock:
    """A clock the benchmark moves by hand (the governor reads only this)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now


ANSWERS = 2000  # answers timed per sample


async def _per_answer(n: int, burst: bool, clock: _Clock, g: Governor) -> float:
    """µs per answer over ``ANSWERS`` answers, ``n`` written before the first of each batch."""
    endpoint = ENDPOINTS["pm_collect_asset"]
    header = "x-mbx-used-weight-1m"
    weight = endpoint.ip_weight
    used: dict[int, int] = {}
    spent = 0.0
    for _ in range(ANSWERS // n):
        written = []
        for _ in range(n):
            permit = await g.acquire(endpoint)
            renewed = g.renew(permit)
            assert renewed is not None
            written.append((renewed, clock.now))
            if not burst:
                clock.now += 2e-6
        clock.now += 0.05
        start = time.process_time()
        for permit, sent in written:
            window = int(clock.now // WINDOW)
            used[window] = used.get(window, 0) + weight
            g.observe(
                permit,
                sent=sent,
                received=clock.now,
                status=200,
                headers={header: str(used[window])},
            )
            if not burst:
                clock.now += 2e-6
        spent += time.process_time() - start
    return spent / (ANSWERS // n * n) * 1e6


async def measure(rounds: int) -> dict[tuple[str, int], list[float]]:
    """Per-answer µs for each (pattern, n), one sample per round, cases interleaved."""
    samples: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for pattern in ("spread", "burst"):
            for n in SIZES:
                clock = _Clock()
                g = Governor(Limits(papi_ip=HUGE), clock=clock, latency=0.05, cold_start=False)
                g.server_clock.update(
                    sent=clock.now, received=clock.now, server_ms=1_767_225_600_000
                )
                samples.setdefault((pattern, n), []).append(
                    await _per_answer(n, pattern == "burst", clock, g)
                )
    return samples


async def run(report: Report, rounds: int = 15) -> None:
    samples = await measure(rounds)
    for pattern in ("spread", "burst"):
        med = {n: statistics.median(samples[(pattern, n)]) for n in SIZES}
        ratios = {
            n: statistics.median(
                a / b for a, b in zip(samples[(pattern, n)], samples[(pattern, 1)], strict=True)
            )
            for n in SIZES
        }
        print(
            f"  {pattern}: per answer (median µs) "
            + ", ".join(f"{n} in flight {med[n]:.2f} (x{ratios[n]:.2f})" for n in SIZES),
            flush=True,
        )
        report.add(
            f"answer cost, {pattern}: 500 in flight vs 1",
            f"{med[500]:.2f} µs vs {med[1]:.2f} µs (ratio {ratios[500]:.2f})",
            "ratio <= 2.00",
            ratios[500] <= 2.0,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    report = Report()
    asyncio.run(run(report, args.rounds))
    raise SystemExit(1 if report.failed else 0)


if __name__ == "__main__":
    main()
