"""The multi-process demo (issue 10): N processes, one account, one IP, one budget in Redis.

Each test runs real OS processes against the simulated exchange over TCP on
127.0.0.1 and a real ``redis-server`` (its own, on a free loopback port,
stopped by its PID); windows are one second (``time_scale=60``).
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import signal
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest

from binance_transfers import ConfigurationError
from binance_transfers._redis_server import RedisServer, free_port
from binance_transfers.demo import Options
from binance_transfers.demo._processes import run_processes
from binance_transfers.demo._run import pool_label


async def test_two_processes_share_one_budget_with_zero_429s(redis_server: RedisServer) -> None:
    """Two processes of the demo's saturating job on one account and one IP,
    through Redis: the exchange's ledger shows no 429 or 418 and no window or
    rolling cap over its limit, both processes did work, the injected faults
    were settled and the books reconcile.

    The load is more than PM Pro auto-collection's IP pool holds (8 calls a
    window): without a shared budget (each process counting alone) the same
    run earns 429s and bans."""
    options = Options(concurrency=30, seconds=5, time_scale=60, job="saturate", fault_rate=0.02)
    # The test started this Redis: nothing it does not know of counts.
    outcome = await run_processes(options, 2, redis_server.url, fresh=True)
    assert outcome.answered_429 == outcome.answered_418 == 0, outcome.seen.statuses
    assert [p.pool for p in outcome.seen.pools if p.over] == []
    assert all(c.peak <= c.calls for c in outcome.seen.caps), outcome.seen.caps
    assert len(outcome.processes) == 2
    assert len({p.pid for p in outcome.processes}) == 2  # two OS processes
    # Both did work, and neither was starved.
    done = [p.tally.total_done for p in outcome.processes]
    assert min(done) >= 0.15 * sum(done), done
    # The pool was contended: some window got all it holds (how full the
    # windows are on average is a throughput figure: bench_demo_processes).
    auto = next(p for p in outcome.seen.pools if p.pool.endswith("/portfolio/auto-collection"))
    assert auto.peak == auto.limit, auto.windows
    assert all(p.weights[pool_label(auto.pool)] > 0 for p in outcome.processes)
    # Every unknown outcome was settled, in the process that met it.
    assert outcome.tally.unknown > 0
    assert outcome.reconciled and outcome.unsettled == 0
    assert outcome.redis == f"127.0.0.1:{redis_server.port}"
    assert outcome.ok
    # What the benchmark prints to tell a loaded machine (long trips) from the
    # budget: each process's trip bound, sampled while it ran, and its loop's stall.
    for process in outcome.processes:
        assert 0 < process.trip_bound[0] <= process.trip_bound[1], process.trip_bound
        assert process.stall >= 0
        trips = process.round_trip
        assert 0 < trips["p50"] <= trips["p90"] <= trips["p99"], trips
    # ... and what a landing interval must cover: signed timestamp -> the exchange's arrival.
    late = outcome.one_way
    assert 0 < late["p50"] <= late["p90"] <= late["p99"] < options.seconds, late


async def test_redis_unreachable_is_a_configuration_error_before_anything_starts() -> None:
    url = f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0"
    with pytest.raises(ConfigurationError, match="unreachable") as caught:
        await run_processes(Options(concurrency=1, seconds=1, time_scale=60), 2, url)
    assert "s3cret" not in str(caught.value)


def _exited(pid: int, within: float) -> bool:
    """Whether process ``pid`` exits within ``within`` seconds (a pidfd: no polling)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], within)
        return bool(readable)
    finally:
        os.close(fd)


async def test_a_failure_stops_the_redis_it_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exchange does not start: the error surfaces, and the redis-server the
    demo started is stopped with its holder (SIGKILLing the holder leaked it)."""
    from binance_transfers.demo import _processes

    seen: dict[str, list[int]] = {}
    start_redis = _processes._start_redis

    async def spy(started: list[Any], pids: dict[str, list[int]]) -> str:
        url = await start_redis(started, pids)
        seen.update(pids)
        return url

    monkeypatch.setattr(_processes, "_start_redis", spy)
    monkeypatch.setattr(
        _processes, "exchange_command", lambda *_: [sys.executable, "-c", "print('no exchange')"]
    )
    with pytest.raises(RuntimeError, match="did not start"):
        await run_processes(Options(concurrency=1, seconds=1, time_scale=60), 2)
    holder, server = seen["redis"]
    try:
        assert _exited(server, 10) and _exited(holder, 10)
    finally:
        for pid in (holder, server):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_everything_the_demo_started_stops_when_it_is_killed() -> None:
    """SIGKILL the demo mid-run (no cleanup of its own): its processes, the
    exchange, the Redis holder and redis-server stop by themselves."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "binance_transfers.demo", "--processes", "2",
         "--concurrency", "5", "--seconds", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the children's tracebacks, once it is gone
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    pids: list[int] = []
    try:
        assert demo.stdout is not None
        for line in demo.stdout:  # "started: redis pid A B; exchange pid C; processes pid D E"
            if line.startswith("started:"):
                pids = [int(word.strip(";")) for word in line.split() if word.strip(";").isdigit()]
                break
        assert len(pids) == 5, pids  # redis holder + server, exchange, 2 processes
        demo.send_signal(signal.SIGKILL)
        demo.wait()
        left = [pid for pid in pids if not _exited(pid, 20)]
        assert left == [], f"still running after the demo died: {left}"
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        if demo.stdout is not None:
            demo.stdout.close()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_processes_of_one_account_never_send_the_same_amount() -> None:
    """Binance's history names a universal transfer by type, asset, amount and
    time only: an unknown outcome of one process could be settled against
    another's identical transfer. Each process's amounts are its own."""
    from binance_transfers.demo._job import Draws, _usdt

    lanes = 4
    amounts = [{_usdt(Draws(seed, lane, lanes)) for seed in range(2000)} for lane in range(lanes)]
    for lane, mine in enumerate(amounts):
        assert all(0 < a <= 50 for a in mine)
        others = set().union(*(a for other, a in enumerate(amounts) if other != lane))
        assert mine.isdisjoint(others)
    # One process: the single-process demo's amounts, as they always were.
    for seed in range(50):
        assert _usdt(Draws(seed)) == Decimal(random.Random(seed).randint(1, 5000)) / 100
