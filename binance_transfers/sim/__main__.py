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
        "--report",
        metavar="FILE",
        default=None,
        help="on exit, write what the exchange saw (windows, caps, answers, money) as JSON",
    )
    return parser


def build(args: argparse.Namespace) -> SimulatedExchange:
    """The exchange the command line describes, with the demo account."""
    exchange = SimulatedExchange(
        limits=Limits(time_scale=args.time_scale), skew=args.skew, seed=args.seed
    )
    exchange.add_demo_account()
    if args.latency or args.jitter:
        exchange.faults.add(Fault.latency(args.latency, jitter=args.jitter))
    if args.error_rate:
        exchange.faults.add(Fault.server_error(), probability=args.error_rate)
    if args.drop_rate:
        exchange.faults.add(Fault.drop(), probability=args.drop_rate)
    return exchange


async def _serve(args: argparse.Namespace, exchange: SimulatedExchange) -> None:
    server = SimServer(exchange, host=args.host, port=args.port)
    sys.stdout.write(
        f"Simulated Binance listening on {server.url} (api_url and papi_url) | "
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
    sys.exit(main())
