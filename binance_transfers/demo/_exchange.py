"""The demo's exchange: ``python -m binance_transfers.sim`` plus faults on transfers.

The simulator's command line injects faults on every request; the demo wants
them only where Binance's records can settle them (user universal and
sub-account universal transfers), so that its summary can show each one
settled. Run as ``python -m binance_transfers.demo._exchange``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio

from .._limits import Limits
from ..sim import DEMO_API_KEY, Fault, SimServer, SimulatedExchange, report, totals
from ._lifeline import lifeline

__all__ = ["SETTLEABLE", "add_transfer_faults", "delays", "main"]

#: The endpoints whose unknown outcomes Binance's records settle.
SETTLEABLE = ("universal_transfer", "sub_account_transfer")


def add_transfer_faults(exchange: SimulatedExchange, rate: float) -> None:
    """On ``rate`` of the settleable transfers each: executed then 5xx, executed then
    the connection dropped, and 503 without executing."""
    for endpoint in SETTLEABLE:
        exchange.faults.add(Fault.server_error(status=502), endpoint=endpoint, probability=rate)
        exchange.faults.add(Fault.drop(), endpoint=endpoint, probability=rate)
        exchange.faults.add(Fault.unavailable(), endpoint=endpoint, probability=rate)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m binance_transfers.demo._exchange")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--jitter", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--report", default=None)
    args = parser.parse_args(argv)
    exchange = SimulatedExchange(limits=Limits(time_scale=args.time_scale), seed=args.seed)
    exchange.add_demo_account()
    if args.latency or args.jitter:
        exchange.faults.add(Fault.latency(args.latency, jitter=args.jitter))
    if args.fault_rate:
        add_transfer_faults(exchange, args.fault_rate)
    started_with = totals(exchange)
    server = SimServer(exchange, host="127.0.0.1", port=0)
    sys.stdout.write(f"Simulated Binance listening on {server.url} | API key {DEMO_API_KEY}\n")
    sys.stdout.flush()
    # The demo holds our stdin: if it dies, end-of-file stops us at once.
    lifeline()
    with contextlib.suppress(KeyboardInterrupt):  # the demo stops it with SIGINT
        anyio.run(server.run)
    if args.report:
        report(exchange, started_with).write(args.report)
        Path(args.report + ".delays.json").write_text(json.dumps(delays(exchange)))
    return 0


def delays(exchange: SimulatedExchange) -> dict[str, float]:
    """How long after their ``timestamp`` the signed requests arrived: p50, p90, p99
    seconds (the write->arrival delay, plus the client's signing->write delay and
    its clock estimate's error): the interval a governor's landing window must cover."""
    late = sorted(
        e.arrived - e.timestamp / 1000 for e in exchange.ledger if e.timestamp is not None
    )
    if not late:
        return {}
    return {f"p{q}": late[min(len(late) * q // 100, len(late) - 1)] for q in (50, 90, 99)}


if __name__ == "__main__":
    sys.exit(main())
