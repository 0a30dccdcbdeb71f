"""``python -m binance_transfers.sim``: the simulated exchange on a TCP port.

::

    python -m binance_transfers.sim --port 8765 --time-scale 60

prints one line with the URL and the demo account's API key and secret, and
serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

import anyio

from .._exceptions import ConfigurationError
from .._limits import Limits
from ._exchange import DEMO_API_KEY, DEMO_API_SECRET, SimulatedExchange
from ._faults import Fault
from ._report import report, totals
from ._server import SimServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m binance_transfers.sim",
        description="A simulated Binance (wallet, sub-account, Portfolio Margin) on a TCP port.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="divide every window, cap and ban by this (60: a minute lasts a second)",
    )
    parser.add_argument("--skew", type=float, default=0.0, help="server clock offset, seconds")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random faults")
    parser.add_argument("--latency", type=float, default=0.0, help="request travel time, seconds")
    parser.add_argument("--jitter", type=float, default=0.0, help="random extra latency, seconds")
    parser.add_argument(
        "--error-rate", type=float, default=0.0, help="share of requests answered 500 (executed)"
    )
    parser.add_argument(
        "--drop-rate", type=float, default=0.0, help="share of requests whose connection drops"
    )
    parser.add_argument(
        "--reset-rate",
        type=float,
        default=0.0,
        help="share of requests executed whose connection closes mid-answer",
    )
    parser.add_argument(
        "--late-rate",
        type=float,
        default=0.0,
        help="share of requests executed whose answer leaves --late-by seconds late",
    )
    parser.add_argument("--late-by", type=float, default=30.0, help="delay of late answers (30)")
    parser.add_argument(
        "--unavailable-rate",
        type=float,
        default=0.0,
        help='share of requests refused with 503 "Service Unavailable." (not executed)',
    )
    parser.add_argument(
        "--pending-rate",
        type=float,
        default=0.0,
        help="share of transfers that stay PENDING for --settle-after seconds",
    )
    parser.add_argument(
        "--failed-rate",
        type=float,
        default=0.0,
        help="share of transfers that end FAILED after --settle-after seconds (nothing moves)",
    )
    parser.add_argument(
        "--settle-after", type=float, default=5.0, help="how long PENDING lasts, seconds (5)"
    )
    parser.add_argument(
        "--history-lag",
        type=float,
        default=0.0,
        help="seconds before an executed transfer shows in its history (0)",
    )
    parser.add_argument(
        "--report",
        metavar="FILE",
        default=None,
        help="on exit, write what the exchange saw (windows, caps, answers, money) as JSON",
    )
    return parser


def build(args: argparse.Namespace) -> SimulatedExchange:
    """The exchange the command line describes, with the demo account."""
    exchange = SimulatedExchange(
        limits=Limits(time_scale=args.time_scale),
        skew=args.skew,
        seed=args.seed,
        history_lag=args.history_lag,
    )
    exchange.add_demo_account()
    if args.latency or args.jitter:
        exchange.faults.add(Fault.latency(args.latency, jitter=args.jitter))
    if args.error_rate:
        exchange.faults.add(Fault.server_error(), probability=args.error_rate)
    if args.drop_rate:
        exchange.faults.add(Fault.drop(), probability=args.drop_rate)
    if args.reset_rate:
        exchange.faults.add(Fault.reset(), probability=args.reset_rate)
    if args.late_rate:
        exchange.faults.add(Fault.late(args.late_by), probability=args.late_rate)
    if args.unavailable_rate:
        exchange.faults.add(Fault.unavailable(), probability=args.unavailable_rate)
    if args.pending_rate:
        exchange.faults.add(Fault.pending(args.settle_after), probability=args.pending_rate)
    if args.failed_rate:
        exchange.faults.add(Fault.failed(args.settle_after), probability=args.failed_rate)
    return exchange


async def _serve(args: argparse.Namespace, exchange: SimulatedExchange) -> None:
    server = SimServer(exchange, host=args.host, port=args.port)
    sys.stdout.write(
        f"Simulated Binance listening on {server.url} (api_url, papi_url, fapi_url, dapi_url) | "
        f"API key {DEMO_API_KEY} | secret {DEMO_API_SECRET} | "
        f"time scale {args.time_scale:g} | Ctrl-C to stop\n"
    )
    sys.stdout.flush()
    await server.run()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    exchange = build(args)
    started_with = totals(exchange)
    # uvicorn shuts down gracefully on Ctrl-C (or SIGTERM), then re-raises it for us.
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(_serve, args, exchange)
    if args.report:
        report(exchange, started_with).write(args.report)
    sys.stdout.write("Simulated Binance stopped.\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConfigurationError as missing:  # an extra not installed: say the pip command
        sys.exit(f"error: {missing}")
