"""The demo, shortened: the README's first command must keep working and stay clean."""

from __future__ import annotations

import os
import subprocess
import sys

import anyio
import pytest

from binance_transfers import Client
from binance_transfers.demo import Options, run


async def test_a_short_demo_reconciles_with_zero_429s() -> None:
    """A few seconds of the job: no 429 or 418, every window within limits, books balanced."""
    outcome = await run(Options(concurrency=80, seconds=3, time_scale=60))
    assert outcome.tally.total_done > 100
    assert outcome.answered_429 == outcome.answered_418 == 0
    assert outcome.tally.too_many_requests == outcome.tally.banned == 0
    assert all(pool.over == 0 for pool in outcome.seen.pools)
    assert outcome.seen.conserved
    assert outcome.ok
    # The injected faults were all settled from the exchange's history.
    assert outcome.tally.unknown > 0
    assert len(outcome.settlements) == outcome.tally.unknown and outcome.unsettled == 0
    assert outcome.executed == outcome.client_done + outcome.settled_executed
    # The heavy pool really was contended (how close to its limit it gets is a
    # throughput figure: benchmarks/bench_sim.py measures it, not a unit test).
    # The plan for the state the walk left was read from the exchange, not sent.
    assert outcome.plan is not None and outcome.plan.weight
    papi = next(p for p in outcome.seen.pools if p.pool == "papi-ip")
    assert papi.peak >= 0.5 * papi.limit
    # What bench_demo_processes prints: the round trips and timestamp -> arrival.
    for seconds in (outcome.round_trip, outcome.one_way):
        assert 0 < seconds["p50"] <= seconds["p90"] <= seconds["p99"] < 3, seconds


def test_the_demo_command_exits_zero_with_a_summary() -> None:
    """`python -m binance_transfers.demo` runs end to end and reports success."""
    done = subprocess.run(
        [sys.executable, "-m", "binance_transfers.demo", "--seconds", "2", "--concurrency", "40",
         "--no-live"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "80"},  # laid out for 80 columns: nothing wraps
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # Not a terminal: the same 80-column layout, no stray log lines (the
    # injected faults' warnings are settled in the summary, shown by --verbose).
    assert [line for line in done.stdout.splitlines() if len(line) > 80] == []
    assert "…" not in done.stdout
    assert done.stderr == ""
    assert "429s received: 0   418s received: 0" in done.stdout
    assert "settled from Binance's history" in done.stdout
    assert "unsettled: 0" in done.stdout
    assert "result: ok" in done.stdout
    # It ends with the operator's next step: a plan for the state the walk left.
    assert "`binance-transfers plan`" in done.stdout


async def test_an_error_in_the_job_surfaces_instead_of_waiting_for_the_exchange(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The exchange process is stopped when the job fails: the error is raised, not a hang."""

    async def broken(self: Client) -> int:
        raise RuntimeError("the job failed")

    monkeypatch.setattr(Client, "server_time", broken)
    with anyio.fail_after(60), pytest.raises(RuntimeError, match="the job failed"):
        await run(Options(concurrency=2, seconds=1, time_scale=60))
