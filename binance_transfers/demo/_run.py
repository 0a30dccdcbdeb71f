"""Run the demo: the simulated exchange on loopback, the job through a real client."""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import attrs
from anyio.streams.buffered import BufferedByteReceiveStream

from .._client import Client
from .._endpoints import ENDPOINTS
from .._exceptions import BinanceTransfersError, OutcomeUnknownError
from .._governor import Governor, GovernorHooks
from .._limits import Limits
from .._reconcile import SettleBy, Settlement, through_limits
from ..cli._plan import load_targets
from ..cli._show import DEMO_TARGETS, CostedPlan, costed_plan
from ..sim import DEMO_API_KEY, DEMO_API_SECRET, Report
from ._job import Draws, Tally, coroutine_job, worker

if TYPE_CHECKING:
    from ._process import ProcessResult

__all__ = [
    "Options",
    "Outcome",
    "RoundTrips",
    "demo_client",
    "exchange_command",
    "listening_url",
    "percentiles",
    "plan_after",
    "read_delays",
    "run",
    "settle_all",
]


@attrs.frozen(kw_only=True)
class Options:
    """What the command line can change."""

    concurrency: int = 300
    seconds: float = 25.0
    time_scale: float = 60.0
    """60: a Binance minute lasts one second, an hour one minute."""
    latency: float = 0.004
    """Server-side delay added to every request, seconds (plus up to as much jitter)."""
    seed: int = 7
    fault_rate: float = 0.005
    """Share of universal and sub-account transfers hit by each fault (executed
    then 502, executed then dropped, 503 without executing); 0 for none."""
    job: str = "rebalance"
    """The operations the coroutines send: a name in :data:`~._job.JOBS`."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Options:
        """The options named on a command line (``--time-scale`` is ``time_scale``)."""
        return cls(**{field.name: getattr(args, field.name) for field in attrs.fields(cls)})

    def limits(self) -> Limits:
        """Binance's limits at this time scale."""
        return Limits(time_scale=self.time_scale)


@attrs.frozen(kw_only=True)
class Outcome:
    """Everything the summary shows; ``ok`` decides the exit code."""

    options: Options
    url: str
    elapsed: float
    tally: Tally
    seen: Report
    """What the exchange saw, from its own ledger."""
    settlements: tuple[Settlement, ...] = ()
    """How every unknown outcome was settled (``Client.reconcile``)."""
    plan: CostedPlan | None = None
    """What ``binance-transfers plan`` says about the state the job left (nothing sent)."""
    processes: tuple[ProcessResult, ...] = ()
    """With ``--processes N``: what each process did (empty: one process, this one)."""
    redis: str | None = None
    """Where the processes shared their budget: Redis's host:port."""
    first: float | None = None
    """Epoch seconds when every process had its first answer (None: one had none)."""
    end: float | None = None
    """Epoch seconds of the first deadline: windows between ``first`` and ``end``
    saw every process at work."""
    one_way: dict[str, float] = attrs.Factory(dict)
    """The exchange's arrival time less each signed request's ``timestamp``,
    seconds: ``p50``, ``p90``, ``p99`` (see :func:`._exchange.delays`)."""
    round_trip: dict[str, float] = attrs.Factory(dict)
    """One process: its answers' round trips, seconds, ``p50``, ``p90``, ``p99``
    (with ``--processes``, each :class:`ProcessResult` has its own)."""

    @property
    def settled_executed(self) -> int:
        return sum(1 for s in self.settlements if s.executed)

    @property
    def unsettled(self) -> int:
        return sum(1 for s in self.settlements if s.executed is None)

    @property
    def answered_429(self) -> int:
        return self.seen.statuses.get(429, 0)

    @property
    def answered_418(self) -> int:
        return self.seen.statuses.get(418, 0)

    @property
    def executed(self) -> int:
        """Transfers and collections the exchange executed (queries excluded)."""
        return sum(n for name, n in self.seen.executed.items() if ENDPOINTS[name].mutating)

    @property
    def client_done(self) -> int:
        """... and those the client was told succeeded."""
        return sum(n for label, n in self.tally.done.items() if label != "transfer history")

    @property
    def reconciled(self) -> bool:
        """Each transfer executed once, and known to the client (confirmed by its
        answer or settled as executed); no money lost."""
        return (
            self.seen.conserved
            and self.executed == self.client_done + self.settled_executed
            and len(self.settlements) == self.tally.unknown
        )

    @property
    def ok(self) -> bool:
        t = self.tally
        return (
            self.reconciled
            and self.answered_429 == self.answered_418 == 0
            and t.too_many_requests == t.banned == self.unsettled == 0
            and not t.errors
            and all(p.over == 0 for p in self.seen.pools)
            and all(c.peak <= c.calls for c in self.seen.caps)
            and t.total_done > 0
            and all(p.tally.total_done > 0 for p in self.processes)
        )


def pool_label(key: str) -> str:
    """A short name for a pool key, whatever the account's name in it."""
    kind, _, rest = key.partition(" ")
    if kind == "papi-ip":
        return "/papi (all Portfolio Margin)"
    if kind in ("api-ip", "fapi-ip", "dapi-ip"):  # one pool per host
        return f"/{kind.removesuffix('-ip')}"
    if kind.startswith("cap"):
        return f"{rest.rpartition(' ')[2]} (rolling cap)"
    route = rest if kind == "sapi-ip" else rest.partition(" ")[2]
    method, _, path = route.partition(" ")
    names = [e.name for e in ENDPOINTS.values() if e.method == method and e.path == path]
    return f"{names[0] if names else route} ({'IP' if kind == 'sapi-ip' else 'UID'})"


def exchange_command(options: Options, report_path: Path) -> list[str]:
    """The demo's exchange (:mod:`._exchange`): it writes its report to ``report_path``."""
    return [
        sys.executable, "-m", "binance_transfers.demo._exchange",
        "--time-scale", f"{options.time_scale}", "--seed", f"{options.seed}",
        "--latency", f"{options.latency}", "--jitter", f"{options.latency}",
        "--fault-rate", f"{options.fault_rate}", "--report", str(report_path),
    ]  # fmt: skip


class RoundTrips(GovernorHooks):
    """Every answer's round trip, seconds (what ``Outcome.round_trip`` sums up)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def answered(self, endpoint: str, status: int | None, seconds: float | None) -> None:
        if seconds is not None:
            self.seconds.append(seconds)

    def percentiles(self) -> dict[str, float]:
        return percentiles(self.seconds)


def percentiles(values: list[float]) -> dict[str, float]:
    """``p50``, ``p90`` and ``p99`` of ``values`` (empty: none)."""
    ordered = sorted(values)
    if not ordered:
        return {}
    return {f"p{q}": ordered[min(len(ordered) * q // 100, len(ordered) - 1)] for q in (50, 90, 99)}


def read_delays(report_path: Path) -> dict[str, float]:
    """What the exchange wrote beside its report (see :func:`._exchange.delays`)."""
    path = Path(f"{report_path}.delays.json")
    if not path.exists():
        return {}
    return {str(k): float(v) for k, v in json.loads(path.read_text()).items()}


def demo_client(url: str, governor: Governor, concurrency: int) -> Client:
    """A client of the simulated exchange at ``url``, as the demo's job uses it."""
    return Client(
        DEMO_API_KEY,
        DEMO_API_SECRET,
        api_url=url,
        papi_url=url,
        fapi_url=url,
        dapi_url=url,
        governor=governor,
        # httpcore scans its whole pool per request: a few dozen
        # connections to loopback are plenty and keep that cheap.
        max_in_flight=min(concurrency, 32),
        # Loopback answers in milliseconds: a short window settles faults sooner.
        recv_window=2000,
        settle_margin=1.0,
    )


async def run(options: Options, view: object | None = None) -> Outcome:
    """Start the exchange in its own process on loopback, run the job, reconcile.

    The exchange gets a process (and a core) of its own, as Binance would:
    sharing this event loop, its work would lengthen every round trip. When
    it stops it reports what it saw, from its ledger, as JSON.
    ``view``, if given, is a :class:`~binance_transfers.demo._view.LiveView`
    refreshed while the job runs.
    """
    tally = Tally()
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "report.json"
        command = exchange_command(options, report_path)
        async with await anyio.open_process(command, stderr=None) as process:
            try:
                url = await listening_url(process)
                # A floor for the trip to the exchange and back; the governor
                # lengthens it as soon as answers take longer (bursts, a busy loop).
                trips = RoundTrips()
                governor = Governor(
                    options.limits(), latency=2 * options.latency + 0.05, hooks=trips
                )
                async with demo_client(url, governor, options.concurrency) as client:
                    await client.server_time()
                    now = time.monotonic
                    start = now()
                    deadline = start + options.seconds
                    first = time.time()  # the simulated exchange's clock is the wall clock
                    async with anyio.create_task_group() as outer:
                        if view is not None:
                            outer.start_soon(view.follow, client, tally, start, url)  # type: ignore[attr-defined]
                        async with anyio.create_task_group() as crowd:
                            for i in range(options.concurrency):
                                rng = Draws(options.seed * 1_000_003 + i)
                                ops = coroutine_job(options.job, i)
                                crowd.start_soon(worker, client, tally, rng, deadline, now, ops)
                        outer.cancel_scope.cancel()
                    elapsed = now() - start
                    # Every unknown outcome, settled from the exchange's history at once.
                    settlements = await settle_all(client, tally.unknowns)
                    # The operator's next step: a plan for the state the walk left.
                    plan = await plan_after(client)
            except BaseException:
                # Leaving the block waits for the exchange to exit: stop it, or an
                # error (or Ctrl-C) in the demo would hang there instead of surfacing.
                process.kill()
                raise
            process.send_signal(signal.SIGINT)  # graceful: it writes its report
            with anyio.fail_after(30):
                await process.wait()
        seen = Report.loads(report_path.read_text())
        one_way = read_delays(report_path)
    return Outcome(
        options=options,
        url=url,
        elapsed=elapsed,
        tally=tally,
        seen=seen,
        settlements=tuple(settlements),
        plan=plan,
        first=first,
        end=first + options.seconds,
        one_way=one_way,
        round_trip=trips.percentiles(),
    )


async def settle_all(client: Client, unknowns: list[OutcomeUnknownError]) -> list[Settlement]:
    """Every unknown outcome settled at once (``Client.reconcile``), one settlement each.

    ``reconcile`` waits out a ban or a 429 met meanwhile; any other failure
    (the exchange unreachable...) becomes an *unsettled* settlement saying
    why, which the summary shows: a transfer is never dropped from the count,
    and the demo never ends on a traceback.
    """
    settlements: list[Settlement] = []

    async def settle(unknown: OutcomeUnknownError) -> None:
        try:
            settlement = await client.reconcile(unknown)
        except BinanceTransfersError as exc:
            params = {
                k: v for k, v in unknown.params.items() if k not in ("timestamp", "recvWindow")
            }
            settlement = Settlement(
                endpoint=unknown.endpoint,
                params=params,
                executed=None,
                by=SettleBy.NONE,
                reason=f"settling failed: {type(exc).__name__}: {exc!s:.200}",
            )
        settlements.append(settlement)

    async with anyio.create_task_group() as settling:
        for unknown in unknowns:
            settling.start_soon(settle, unknown)
    return settlements


async def plan_after(client: Client) -> CostedPlan:
    """``binance-transfers plan`` for the state the job left (reads only: a ban
    still running, or a 429, is waited out as a settlement would)."""
    return await through_limits(
        lambda: costed_plan(client, load_targets(DEMO_TARGETS)), "the plan's balance reads", 1.0
    )


async def listening_url(process: anyio.abc.Process) -> str:
    """Read the exchange's first line: 'Simulated Binance listening on http://...'."""
    if process.stdout is None:  # pragma: no cover - open_process always pipes stdout
        raise RuntimeError("no stdout from the simulated exchange")
    with anyio.fail_after(30):
        line = await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 1 << 16)
    match = re.search(rb"listening on (http://\S+)", line)
    if match is None:
        raise RuntimeError(f"the simulated exchange did not start: {line!r}")
    return match.group(1).decode()
