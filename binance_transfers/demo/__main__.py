"""``python -m binance_transfers.demo [--concurrency N] [--seconds S] [--time-scale X]``.

``--processes N [--redis URL]``: the job as N processes on one account and one
IP, sharing one budget through Redis (see :mod:`._processes`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import anyio

from .._exceptions import ConfigurationError
from .._extras import extra, require
from ._job import JOBS
from ._processes import run_processes
from ._run import Options, run

PER_PROCESS = 100
"""Coroutines per process with ``--processes`` (issue 10's target: 4 x 100)."""


def _parser() -> argparse.ArgumentParser:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m binance_transfers.demo",
        description="Rebalance through the client on a simulated Binance, within every limit.",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="coroutines (300); with --processes, per process (100)",
    )
    parser.add_argument(
        "--seconds", type=float, default=defaults.seconds, help="how long to run (25)"
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=defaults.time_scale,
        help="Binance minutes per second of real time (60)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=defaults.latency,
        help="server delay per request, seconds, plus as much jitter (0.004)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed (7)")
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=defaults.fault_rate,
        help="share of transfers hit by each injected fault, settled at the end (0.005)",
    )
    parser.add_argument("--no-live", action="store_true", help="no live view, only the summary")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="run the job as N processes on one account and one IP, one budget in Redis (1)",
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=None,
        help="the Redis the processes share (default: start a throwaway redis-server)",
    )
    parser.add_argument(
        "--job",
        choices=sorted(JOBS),
        default="rebalance",
        help="rebalance (the demo's mix), or saturate (only /papi, PM Pro "
        "auto-collection and universal transfer)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show the SDK's log (a warning per injected fault, settled in the summary)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    many = args.processes > 1 or args.redis is not None
    if args.concurrency is None:
        args.concurrency = PER_PROCESS if many else Options().concurrency
    if args.concurrency < 1 or args.seconds <= 0 or args.time_scale <= 0 or args.processes < 1:
        _parser().error("concurrency, processes, seconds and time scale must be positive")
    options = Options.from_args(args)
    with extra("sim", "the demo"):  # its view is rich's
        from rich.console import Console
        from rich.logging import RichHandler

        from ._view import LiveView, summary
    # The exchange runs in a process of its own: check now, not after it failed.
    require("sim", "the demo's exchange", "starlette", "uvicorn")
    console = Console()
    sdk_log = logging.getLogger("binance_transfers")
    if args.verbose:
        sdk_log.addHandler(RichHandler(console=console, show_path=False))
    else:
        # The injected faults log a warning each (outcome unknown); the summary
        # reports every one and how it was settled. Without a handler, Python's
        # last resort would print them across the live view, 130 columns wide.
        sdk_log.addHandler(logging.NullHandler())
    if many:
        require("redis", "the multi-process demo", "redis")
        console.print(
            f"binance_transfers demo: {args.processes} processes x {options.concurrency} "
            f"coroutines on one account and one IP for {options.seconds:g} s at time "
            f"x{options.time_scale:g}, one budget through Redis..."
        )

        def started(pids: dict[str, list[int]]) -> None:
            # Each stops by itself if this process dies (its stdin closes).
            console.print(
                "started: "
                + "; ".join(f"{what} pid {' '.join(map(str, p))}" for what, p in pids.items()),
                style="dim",
            )

        outcome = anyio.run(run_processes, options, args.processes, args.redis, started)
        summary(console, outcome)
        return 0 if outcome.ok else 1
    live = not args.no_live and console.is_terminal
    view = LiveView(console, options) if live else None
    if view is None:
        console.print(
            f"binance_transfers demo: {options.concurrency} coroutines for {options.seconds:g} s "
            f"at time x{options.time_scale:g}..."
        )
    outcome = anyio.run(run, options, view)
    summary(console, outcome)
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConfigurationError as missing:  # an extra not installed: say the pip command
        sys.exit(f"error: {missing}")
