"""``python -m binance_transfers.demo [--concurrency N] [--seconds S] [--time-scale X]``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import anyio

from .._exceptions import ConfigurationError
from .._extras import extra, require
from ._run import Options, run


def _parser() -> argparse.ArgumentParser:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m binance_transfers.demo",
        description="Rebalance through the client on a simulated Binance, within every limit.",
    )
    parser.add_argument(
        "--concurrency", type=int, default=defaults.concurrency, help="coroutines (300)"
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
        "--verbose",
        action="store_true",
        help="show the SDK's log (a warning per injected fault, settled in the summary)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.concurrency < 1 or args.seconds <= 0 or args.time_scale <= 0:
        _parser().error("concurrency, seconds and time scale must be positive")
    options = Options(
        concurrency=args.concurrency,
        seconds=args.seconds,
        time_scale=args.time_scale,
        latency=args.latency,
        seed=args.seed,
        fault_rate=args.fault_rate,
    )
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
