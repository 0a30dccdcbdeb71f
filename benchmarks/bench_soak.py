"""The money-safety soak at full size, then a process killed mid-run and recovered.

1. 600 transfers (user universal and sub-account universal) from 50
   coroutines against the simulated exchange, with every fault on ~5 % of
   them each (executed then 500/502/503/504, executed then the connection
   dropped, executed then answered past the read timeout, 503 without
   executing) and 50 callers cancelled while their transfer is on the wire;
   then every unknown outcome settled with ``Client.reconcile``.
2. A journaled client process sending transfers (under faults) over TCP,
   SIGKILLed three times mid-run; after each kill a fresh client runs
   ``recover()`` on the journal.

Reported: transfers executed twice, plain exceptions reaching callers,
executed transfers nobody accounts for, and outcomes left unknown after
settlement (targets: 0 each).

``python -m benchmarks.bench_soak``
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import tempfile
from pathlib import Path

import anyio
import httpx

from binance_transfers import Client, Limits
from binance_transfers.demo._soak import SETTLED_ENDPOINTS, add_faults, soak
from binance_transfers.sim import (
    DEMO_API_KEY,
    DEMO_API_SECRET,
    Fault,
    LedgerEntry,
    SimulatedExchange,
    serve,
)

from ._report import Report

TRANSFERS, COROUTINES, CANCELLATIONS = 600, 50, 50
KILLS = (40, 120, 200)  # executed transfers (in all) at which the client process is killed


async def in_process(report: Report) -> None:
    exchange = SimulatedExchange(limits=Limits(time_scale=60), seed=11)
    exchange.add_demo_account()
    add_faults(exchange, late=3.0)
    result = await soak(
        exchange,
        transfers=TRANSFERS,
        coroutines=COROUTINES,
        cancellations=CANCELLATIONS,
        seed=11,
        timeout=httpx.Timeout(2.0),
        settle_margin=1.0,
    )
    print(result.summary(), flush=True)
    doubled = len(result.accounted) - len(set(result.accounted))
    unaccounted = len(set(result.executed_by_exchange) - set(result.accounted))
    report.add(
        f"soak: {TRANSFERS} transfers, {COROUTINES} coroutines, all faults, "
        f"{result.cancelled} cancelled on the wire",
        f"{doubled} executed twice, {len(result.plain_exceptions)} plain exceptions, "
        f"{unaccounted} executed but unaccounted, {len(result.unsettled)} unknown after "
        f"reconcile ({len(result.unknown)} unknown, {len(result.detached)} detached)",
        "0, 0, 0, 0",
        not result.problems,
    )


async def killed_and_recovered(report: Report) -> None:
    exchange = SimulatedExchange(limits=Limits(time_scale=60), seed=12)
    exchange.add_demo_account()
    for endpoint in SETTLED_ENDPOINTS:
        exchange.faults.add(Fault.drop(), endpoint=endpoint, probability=0.05)
        exchange.faults.add(Fault.server_error(status=502), endpoint=endpoint, probability=0.05)
        exchange.faults.add(Fault.unavailable(), endpoint=endpoint, probability=0.05)
    executed = 0
    enough = anyio.Event()
    kill_at = [0]
    record = exchange.ledger.record

    def counting(entry: LedgerEntry) -> None:
        nonlocal executed
        record(entry)
        executed += entry.executed
        if executed >= kill_at[0]:
            enough.set()

    exchange.ledger.record = counting  # type: ignore[method-assign]
    unsettled = recovered = 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with tempfile.TemporaryDirectory() as tmp:
        journal = Path(tmp) / "journal.sqlite"
        async with serve(exchange) as server:
            for kill_at[0] in KILLS:
                enough = anyio.Event()
                command = [sys.executable, "-m", "binance_transfers.demo._soak", server.url]
                child = await anyio.open_process(
                    [*command, str(journal), DEMO_API_KEY, DEMO_API_SECRET], env=env
                )
                try:
                    with anyio.fail_after(120):
                        await enough.wait()
                finally:
                    child.send_signal(signal.SIGKILL)  # the process we started, by its handle
                    await child.wait()
                async with Client(
                    DEMO_API_KEY,
                    DEMO_API_SECRET,
                    api_url=server.url,
                    papi_url=server.url,
                    journal=journal,
                    settle_margin=1.0,
                ) as fresh:
                    found = await fresh.recover()
                recovered += len(found)
                unsettled += sum(1 for s in found if s.executed is None)
        with sqlite3.connect(journal) as conn:
            rows = conn.execute("SELECT endpoint, state, tran_id FROM intents").fetchall()
    left_open = sum(1 for _, state, _ in rows if state in ("open", "unknown"))
    mismatched = 0
    for endpoint in SETTLED_ENDPOINTS:
        by_exchange = sorted(int(str(e.result)) for e in exchange.ledger.executed(endpoint))
        by_journal = sorted(
            tran_id
            for name, state, tran_id in rows
            if name == endpoint and state in ("done", "executed")
        )
        mismatched += len(set(by_exchange) ^ set(by_journal)) + (
            len(by_journal) - len(set(by_journal))
        )
    print(
        f"killed {len(KILLS)} times: {len(rows)} journaled calls, {recovered} settled by "
        f"recover(), {unsettled} unsettled, {left_open} left open, {mismatched} mismatched",
        flush=True,
    )
    report.add(
        f"soak: client process SIGKILLed {len(KILLS)} times, then recover()",
        f"{recovered} settled, {unsettled + left_open} still unknown, "
        f"{mismatched} ledger/journal mismatches",
        "0 unknown, 0 mismatches",
        unsettled == left_open == mismatched == 0,
    )


async def run(report: Report) -> None:
    await in_process(report)
    await killed_and_recovered(report)


if __name__ == "__main__":
    result = Report()
    asyncio.run(run(result))
    print(result.markdown())
    sys.exit(1 if result.failed else 0)
