"""The demo as N processes on one account and one IP, sharing one budget through Redis.

``python -m binance_transfers.demo --processes 4 --redis URL``: the simulated
exchange runs in a process of its own on 127.0.0.1 (every process must meet
the same one, as they would meet the same Binance), and each of the N
processes runs the job with ``Governor(storage=RedisStorage(URL))``. Without
``--redis``, a throwaway ``redis-server`` is started on a free loopback port
(:mod:`._redis_host`) and stopped at the end.

Every process the demo starts holds a lifeline (:mod:`._lifeline`): it stops
by itself when the demo ends or dies.
"""

from __future__ import annotations

import re
import signal
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from .._exceptions import ConfigurationError
from .._governor import Governor
from ..sim import PoolUsage, Report
from ._job import JOBS
from ._process import ProcessResult, merged
from ._run import (
    Options,
    Outcome,
    demo_client,
    exchange_command,
    listening_url,
    plan_after,
    read_delays,
)

__all__ = ["common_windows", "median_use", "run_processes", "shares"]

READY_WITHIN = 60.0
"""Seconds a process may take to start (imports, Redis) on a loaded machine."""


async def _line(stream: BufferedByteReceiveStream, within: float) -> str:
    with anyio.fail_after(within):
        return (await stream.receive_until(b"\n", 1 << 20)).decode(errors="replace")


def _stdout(process: anyio.abc.Process) -> BufferedByteReceiveStream:
    if process.stdout is None:  # pragma: no cover - open_process always pipes stdout
        raise RuntimeError("no stdout from a process of the demo")
    return BufferedByteReceiveStream(process.stdout)


async def _start_redis(started: list[anyio.abc.Process], pids: dict[str, list[int]]) -> str:
    """A throwaway redis-server on loopback, held by :mod:`._redis_host`; its URL."""
    host = await anyio.open_process(
        [sys.executable, "-m", "binance_transfers.demo._redis_host"], stderr=None
    )
    started.append(host)
    line = await _line(_stdout(host), READY_WITHIN)
    match = re.fullmatch(r"redis at (redis://\S+) pid (\d+)", line.strip())
    if match is None:
        raise ConfigurationError(
            "--processes needs Redis: give --redis URL, or install redis-server "
            f"(`make redis`) for the demo to start its own ({line.strip()})"
        )
    pids["redis"] = [host.pid, int(match.group(2))]
    return match.group(1)


async def run_processes(
    options: Options,
    processes: int,
    redis_url: str | None = None,
    started_hook: Callable[[dict[str, list[int]]], None] | None = None,
    *,
    fresh: bool = False,
) -> Outcome:
    """Run the job as ``processes`` OS processes sharing one budget through Redis.

    ``options.concurrency`` is per process. ``started_hook``, if given, gets the
    PIDs of every process started (``redis``: its holder and redis-server,
    ``exchange``, ``processes``) once the job is running. ``fresh``: the Redis at
    ``redis_url`` was just started for this run (see ``RedisStorage.connect``;
    a Redis the demo starts is). Raises
    :class:`ConfigurationError` if Redis does not answer (or none can be started).
    """
    if processes < 1:
        raise ValueError("processes must be >= 1")
    if options.job not in JOBS:
        raise ValueError(f"unknown job {options.job!r}: one of {sorted(JOBS)}")
    from .._redis import RedisStorage

    started: list[anyio.abc.Process] = []
    pids: dict[str, list[int]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            report_path = Path(tmp) / "report.json"
            fresh = fresh or redis_url is None  # just started: it knows all there is
            if redis_url is None:
                redis_url = await _start_redis(started, pids)
            async with await RedisStorage.connect(
                redis_url, processes=processes, fresh=fresh
            ) as storage:
                exchange = await anyio.open_process(
                    exchange_command(options, report_path), stderr=None
                )
                started.append(exchange)
                url = await listening_url(exchange)
                pids["exchange"] = [exchange.pid]

                def running(children: list[int]) -> None:
                    if started_hook is not None:
                        started_hook({**pids, "processes": children})

                results = await _run_all(options, processes, redis_url, url, started, running)
                # The operator's next step, from this process, on the same budget.
                governor = Governor(
                    options.limits(), latency=2 * options.latency + 0.05, storage=storage
                )
                async with demo_client(url, governor, 4) as client:
                    plan = await plan_after(client)
            exchange.send_signal(signal.SIGINT)  # graceful: it writes its report
            with anyio.fail_after(30):
                await exchange.wait()
            seen = Report.loads(report_path.read_text())
            one_way = read_delays(report_path)
    except BaseException:
        holder = pids.get("redis", [None])[0]
        for process in started:  # stop what is left at once; their lifelines would too
            if process.returncode is None:
                # The Redis holder stops its server on SIGTERM; SIGKILL would leak it.
                (process.terminate if process.pid == holder else process.kill)()
        raise
    finally:
        with anyio.CancelScope(shield=True):
            for process in reversed(started):  # the Redis host last
                await process.aclose()  # closes its stdin (the lifeline) and waits
    firsts = [r.first for r in results]
    return Outcome(
        options=options,
        url=url,
        elapsed=max(r.elapsed for r in results),
        tally=merged(r.tally for r in results),
        seen=seen,
        settlements=tuple(s for r in results for s in r.settlements),
        plan=plan,
        processes=tuple(results),
        redis=_where(redis_url),
        first=None if None in firsts else max(f for f in firsts if f is not None),
        end=min(r.end for r in results),
        one_way=one_way,
    )


async def _run_all(
    options: Options,
    processes: int,
    redis_url: str,
    url: str,
    started: list[anyio.abc.Process],
    running: Callable[[list[int]], None],
) -> list[ProcessResult]:
    """Start the processes, wait for every ``ready``, say ``go`` to all, collect results."""
    o = options
    children = []
    for index in range(processes):
        command = [
            sys.executable, "-m", "binance_transfers.demo._process",
            "--redis", redis_url, "--url", url, "--index", str(index),
            "--processes", str(processes), "--job", o.job,
            "--concurrency", str(o.concurrency), "--seconds", str(o.seconds),
            "--time-scale", str(o.time_scale), "--latency", str(o.latency),
            "--seed", str(o.seed), "--fault-rate", str(o.fault_rate),
        ]  # fmt: skip
        child = await anyio.open_process(command, stderr=None)
        started.append(child)
        children.append(child)
    readers = [_stdout(child) for child in children]
    for index, reader in enumerate(readers):
        line = (await _line(reader, READY_WITHIN)).strip()
        if line != "ready":
            raise RuntimeError(f"process {index + 1} did not start: {line}")
    for child in children:  # all at once, however long each took to start
        if child.stdin is None:  # pragma: no cover - open_process always pipes stdin
            raise RuntimeError("no stdin to a process of the demo")
        await child.stdin.send(b"go\n")
    running([child.pid for child in children])
    results: list[ProcessResult | None] = [None] * processes

    async def collect(index: int) -> None:
        line = await _line(readers[index], o.seconds + 120)
        if not line.startswith("result "):
            raise RuntimeError(f"process {index + 1} failed: {line}")
        results[index] = ProcessResult.loads(line.removeprefix("result "))
        if await children[index].wait() != 0:
            raise RuntimeError(f"process {index + 1} exited with {children[index].returncode}")

    async with anyio.create_task_group() as tg:
        for index in range(processes):
            tg.start_soon(collect, index)
    return [r for r in results if r is not None]


def _where(url: str) -> str:
    """host:port only: a URL may carry a password."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}"


def common_windows(outcome: Outcome) -> range:
    """The windows every process ran through whole: after the latest first
    answer, before the earliest deadline."""
    if outcome.first is None or outcome.end is None:
        return range(0)
    window = outcome.options.limits().window
    return range(int(outcome.first // window) + 1, int(outcome.end // window))


def median_use(pool: PoolUsage, windows: Sequence[int]) -> float | None:
    """The median of the pool's weight / limit over ``windows`` (None: no windows)."""
    if not windows:
        return None
    return statistics.median(pool.windows.get(w, 0) / pool.limit for w in windows)


def shares(outcome: Outcome, label: str) -> list[float]:
    """Each process's part of the weight sent to the pool ``label`` (pool_label's)."""
    sent = [p.weights.get(label, 0) for p in outcome.processes]
    total = sum(sent)
    return [s / total for s in sent] if total else []
