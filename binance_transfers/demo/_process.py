"""One process of the multi-process demo: ``python -m binance_transfers.demo._process``.

It runs the rebalancing job (or the saturating one) against the shared
simulated exchange, with a governor whose counts are leased from Redis
(:class:`~binance_transfers.RedisStorage`), and talks to the demo over its
standard streams:

* prints ``ready`` once connected to Redis, and starts on a ``go`` line (the
  demo starts every process at once, however slowly each one started);
* stops by itself when its standard input closes (the demo ended or died);
* ends with one line, ``result <JSON>``: what it did, how it settled its
  unknown outcomes, the weight it sent to each pool, when it got its first
  and last answers (:class:`ProcessResult`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import anyio
import attrs

from .._endpoints import ENDPOINTS
from .._exceptions import ConfigurationError
from .._governor import Governor
from .._limits import PoolKind, pools_for
from .._reconcile import SettleBy, Settlement
from ._job import JOBS, Draws, Tally, coroutine_job, worker
from ._lifeline import leave, lifeline
from ._run import Options, RoundTrips, demo_client, pool_label, settle_all

__all__ = ["ProcessResult", "main", "merged"]


@attrs.frozen(kw_only=True)
class ProcessResult:
    """What one process of the demo did, as it reports it to the demo."""

    index: int
    pid: int
    tally: Tally
    """Its coroutines' counts (``unknowns`` empty: settled in the process)."""
    settlements: tuple[Settlement, ...]
    weights: dict[str, int]
    """Weight (calls, for a rolling cap) of the requests it wrote, per pool label."""
    first: float | None
    """Epoch seconds of its first answer (None: it got none)."""
    end: float
    """Epoch seconds of its job's deadline (settling unknown outcomes comes after)."""
    elapsed: float
    trip_bound: tuple[float, float] = (0.0, 0.0)
    """The governor's bound on a request's trip (``GovernorStats.trip_bound``),
    median and highest of one sample per quarter second: how wide the windows
    a request may land in are (wider than a window: charged to two or three)."""
    stall: float = 0.0
    """The longest its event loop was late, seconds (a quarter-second timer's lateness)."""
    clock_uncertainty: float = 0.0
    """The governor's bound on its clock estimate's error (``GovernorStats.clock_uncertainty``),
    median of the same samples: it widens the landing interval twice (both ends)."""
    round_trip: dict[str, float] = attrs.Factory(dict)
    """Its answers' round trips, seconds: ``p50``, ``p90``, ``p99``."""

    def dumps(self) -> str:
        t = self.tally
        return json.dumps(
            {
                "index": self.index,
                "pid": self.pid,
                "tally": {
                    "done": t.done,
                    "refused": t.refused,
                    "errors": t.errors,
                    "deferred": t.deferred,
                    "too_many_requests": t.too_many_requests,
                    "banned": t.banned,
                    "unknown": t.unknown,
                },
                "settlements": [
                    {**attrs.asdict(s), "params": dict(s.params), "by": s.by.value}
                    for s in self.settlements
                ],
                "weights": self.weights,
                "first": self.first,
                "end": self.end,
                "elapsed": self.elapsed,
                "trip_bound": self.trip_bound,
                "stall": self.stall,
                "clock_uncertainty": self.clock_uncertainty,
                "round_trip": self.round_trip,
            }
        )

    @classmethod
    def loads(cls, text: str) -> ProcessResult:
        data: dict[str, Any] = json.loads(text)
        t = data["tally"]
        tally = Tally(
            done=Counter(t["done"]),
            refused=Counter(t["refused"]),
            errors=Counter(t["errors"]),
            deferred=t["deferred"],
            too_many_requests=t["too_many_requests"],
            banned=t["banned"],
            unknown=t["unknown"],
        )
        return cls(
            index=data["index"],
            pid=data["pid"],
            tally=tally,
            settlements=tuple(
                Settlement(**{**s, "by": SettleBy(s["by"])}) for s in data["settlements"]
            ),
            weights=data["weights"],
            first=data["first"],
            end=data["end"],
            elapsed=data["elapsed"],
            trip_bound=tuple(data["trip_bound"]),
            stall=data["stall"],
            clock_uncertainty=data.get("clock_uncertainty", 0.0),
            round_trip=data.get("round_trip", {}),
        )


def merged(tallies: Iterable[Tally]) -> Tally:
    """The processes' tallies as one (the summary's totals)."""
    total = Tally()
    for t in tallies:
        total.done.update(t.done)
        total.refused.update(t.refused)
        total.errors.update(t.errors)
        total.deferred += t.deferred
        total.too_many_requests += t.too_many_requests
        total.banned += t.banned
        total.unknown += t.unknown
    return total


class WeightSent(RoundTrips):
    """Counts the weight of every request written, per pool, when the first
    answer came (the exchange's ledger cannot tell the processes apart: one
    account, one IP) and every round trip."""

    def __init__(self, options: Options) -> None:
        super().__init__()
        self.limits = options.limits()
        self.weights: Counter[str] = Counter()
        self.first: float | None = None

    def answered(self, endpoint: str, status: int | None, seconds: float | None) -> None:
        super().answered(endpoint, status, seconds)
        if self.first is None:
            self.first = time.time()  # the simulated exchange's clock is the wall clock
        for spec in pools_for(ENDPOINTS[endpoint], self.limits, "demo"):
            self.weights[pool_label(spec.key)] += 1 if spec.kind is PoolKind.CAP else spec.weight


async def run_process(
    options: Options, index: int, processes: int, redis_url: str, url: str
) -> ProcessResult:
    """Connect, say ``ready``, wait for ``go``, run the job, settle what is unknown."""
    from .._redis import RedisStorage

    loop = asyncio.get_running_loop()
    go = asyncio.Event()

    def on_line(line: bytes) -> None:
        if line.strip() == b"go":
            loop.call_soon_threadsafe(go.set)

    # The demo holds our stdin: end-of-file means it is gone, and so are we.
    lifeline(leave, on_line)
    hooks = WeightSent(options)
    tally = Tally()
    watched = _Watched()
    # Every pool, rolling caps included, is shared through Redis.
    async with await RedisStorage.connect(redis_url, processes=processes) as storage:
        governor = Governor(
            options.limits(), latency=2 * options.latency + 0.05, storage=storage, hooks=hooks
        )
        async with demo_client(url, governor, options.concurrency) as client:
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            await go.wait()
            await client.server_time()
            now = time.monotonic
            start = now()
            deadline = start + options.seconds
            end = time.time() + options.seconds
            async with anyio.create_task_group() as crowd:
                for i in range(options.concurrency):
                    seed = options.seed * 1_000_003 + index * 10_007 + i
                    ops = coroutine_job(options.job, i)
                    rng = Draws(seed, index, processes)  # amounts of its own
                    crowd.start_soon(worker, client, tally, rng, deadline, now, ops)
                crowd.start_soon(_watch, governor, deadline, watched)
            elapsed = now() - start
            settlements = await settle_all(client, tally.unknowns)
    tally.unknowns.clear()  # settled here; the demo gets the settlements
    return ProcessResult(
        index=index,
        pid=os.getpid(),
        tally=tally,
        settlements=tuple(settlements),
        weights=dict(hooks.weights),
        first=hooks.first,
        end=end,
        elapsed=elapsed,
        trip_bound=watched.trip_bound(),
        stall=watched.stall,
        clock_uncertainty=watched.clock_uncertainty(),
        round_trip=hooks.percentiles(),
    )


class _Watched:
    """What :func:`_watch` saw: trip bounds sampled, the longest stall."""

    def __init__(self) -> None:
        self.bounds: list[float] = []
        self.eps: list[float] = []
        self.stall = 0.0

    def trip_bound(self) -> tuple[float, float]:
        bounds = sorted(self.bounds)
        return (bounds[len(bounds) // 2], bounds[-1]) if bounds else (0.0, 0.0)

    def clock_uncertainty(self) -> float:
        return sorted(self.eps)[len(self.eps) // 2] if self.eps else 0.0


async def _watch(governor: Governor, deadline: float, watched: _Watched) -> None:
    """Until ``deadline``: the governor's trip bound every quarter second, and how
    late the event loop ran that timer (a loaded machine stalls it)."""
    while (left := deadline - time.monotonic()) > 0:
        step = min(0.25, left)
        before = time.monotonic()
        await anyio.sleep(step)
        watched.stall = max(watched.stall, time.monotonic() - before - step)
        stats = governor.stats()
        watched.bounds.append(stats.trip_bound)
        watched.eps.append(stats.clock_uncertainty)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m binance_transfers.demo._process")
    parser.add_argument("--redis", required=True)
    parser.add_argument("--url", required=True, help="the simulated exchange")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--job", choices=sorted(JOBS), default="rebalance")  # see _job.JOBS
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--time-scale", type=float, required=True)
    parser.add_argument("--latency", type=float, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--fault-rate", type=float, required=True)  # the exchange's, for Options
    args = parser.parse_args(argv)
    options = Options.from_args(args)
    # The injected faults log a warning each; the demo's summary settles them.
    logging.getLogger("binance_transfers").addHandler(logging.NullHandler())
    try:
        result = anyio.run(run_process, options, args.index, args.processes, args.redis, args.url)
    except ConfigurationError as error:  # Redis unreachable: say so, plainly
        sys.stdout.write(f"error: {error}\n")
        return 1
    except KeyboardInterrupt:  # Ctrl-C reaches every process of the group: stop quietly
        return 130
    sys.stdout.write(f"result {result.dumps()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
