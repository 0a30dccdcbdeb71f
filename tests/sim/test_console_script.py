"""The installed `binance-transfers` script, in a subprocess, against the simulator on loopback."""

from __future__ import annotations

import json
import os
import signal
import sys
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from binance_transfers.sim import (
    DEMO_API_KEY,
    DEMO_API_SECRET,
    Fault,
    SimulatedExchange,
    serve,
)

TARGETS = """
asset = "USDT"

[[target]]
wallet = "usdm"
at_least = "150000"

[[target]]
wallet = "margin"
at_least = "120000"

[[target]]
sub_account = "desk-1@sim.invalid"
wallet = "margin"
exactly = "4000"

[[target]]
sub_account = "desk-2@sim.invalid"
wallet = "margin"
exactly = "3000"
"""
_TRANSFERS = ("universal_transfer", "sub_account_transfer", "sub_account_margin_transfer")


def _script() -> str:
    path = Path(sys.executable).with_name("binance-transfers")
    if not path.exists():
        pytest.fail(f"the console script is not installed next to {sys.executable}")
    return str(path)


def _env() -> dict[str, str]:
    return {**os.environ, "BINANCE_API_KEY": DEMO_API_KEY, "BINANCE_API_SECRET": DEMO_API_SECRET}


async def test_balances_through_the_console_script() -> None:
    """`binance-transfers --base-url URL balances --json` reads the simulator over TCP."""
    exchange = SimulatedExchange()
    demo = exchange.add_demo_account()
    with anyio.fail_after(60):
        async with serve(exchange) as server:
            done = await anyio.run_process(
                [_script(), "--base-url", server.url, "balances", "--asset", "USDT", "--json"],
                env=_env(),
                check=False,
            )
    assert done.returncode == 0, done.stderr.decode()
    rows = {(r["account"], r["wallet"]): r["amount"] for r in json.loads(done.stdout)}
    assert Decimal(rows[("master", "UMFUTURE")]) == demo.balance("USDT", "UMFUTURE")
    assert DEMO_API_SECRET.encode() not in done.stdout + done.stderr


async def test_apply_interrupted_then_resumed(tmp_path: Path) -> None:
    """apply is stopped by Ctrl-C (SIGINT) after its first transfer; run again, it settles
    what was left, sends only what is still missing and converges; a third run sends nothing."""
    exchange = SimulatedExchange()
    demo = exchange.add_demo_account()
    for name in _TRANSFERS:  # transfers travel slowly: time to interrupt between them
        exchange.faults.add(Fault.latency(0.4), endpoint=name)
    targets = tmp_path / "targets.toml"
    targets.write_text(TARGETS)
    journal = tmp_path / "apply.journal"

    def moved() -> int:
        return sum(1 for e in exchange.ledger if e.executed and e.changes)

    with anyio.fail_after(120):
        async with serve(exchange) as server:
            args = [
                _script(),
                "--base-url",
                server.url,
                "--recv-window",
                "1000",
                "--settle-margin",
                "0.2",
                "apply",
                str(targets),
                "--journal",
                str(journal),
                "--json",
            ]
            process = await anyio.open_process(args, env=_env())
            try:
                await exchange.ledger.wait_for(lambda e: e.executed and e.changes)
                process.send_signal(signal.SIGINT)
                interrupted = await process.wait()
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            assert interrupted != 0
            first_run = moved()
            assert first_run >= 1

            resumed = await anyio.run_process(args, env=_env(), check=False)
            assert resumed.returncode == 0, resumed.stderr.decode()
            report = json.loads(resumed.stdout)
            assert report["converged"]
            assert report["sent"], "the first run was cut off before it finished"
            again = await anyio.run_process(args, env=_env(), check=False)
    assert again.returncode == 0, again.stderr.decode()
    assert json.loads(again.stdout)["sent"] == []
    assert exchange.ledger.duplicates() == []
    assert demo.balance("USDT", "UMFUTURE") == Decimal(150000)
    assert demo.balance("USDT", "MARGIN") >= Decimal(120000)
    assert demo.sub_accounts["desk-1@sim.invalid"].balance("USDT", "MARGIN") == Decimal(4000)
    assert demo.sub_accounts["desk-2@sim.invalid"].balance("USDT", "MARGIN") == Decimal(3000)
