"""The demo's terminal view (rich): live pools while it runs, then the summary.

Both are laid out for 80 columns, and print the same lines to a wider
terminal or to a file: every line is at most :data:`WIDTH` characters, long
sentences are wrapped here (never by rich, never truncated with "…").
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterable

import anyio
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .._client import Client
from .._endpoints import ENDPOINTS
from .._governor import PoolSnapshot
from .._limits import PoolKind
from ..cli._show import CostedPlan, amount, how
from ._job import Tally
from ._run import Options, Outcome, pool_label

__all__ = ["WIDTH", "LiveView", "frame", "summary"]

REFRESH = 0.25  # seconds between redraws
WIDTH = 78
"""Widest line printed: fits an 80-column terminal with a column to spare."""

#: What the refusals the demo meets mean (Binance's error codes).
REFUSALS = {
    -5013: "insufficient balance",
    -3003: "margin account does not exist",
    -4115: "clientTranId duplicated",
    -5021: "not a sub-account of this master",
    -21001: "not a Portfolio Margin account",
    -9000: "unsupported operation",
}

_HISTORY = "transfer history"  # the demo's one read: it moves nothing


def _wrap(text: str, indent: str = "  ") -> str:
    return textwrap.fill(text, WIDTH, subsequent_indent=indent, break_on_hyphens=False)


def _say(console: Console, text: str, style: str | None = None, indent: str = "  ") -> None:
    """Print plain text (no markup: parameters may hold brackets), wrapped here."""
    console.print(Text(_wrap(text, indent), style=style or ""), soft_wrap=True)


def _plan(console: Console, costed: CostedPlan) -> None:
    """``binance-transfers plan``'s content, as lines that fit :data:`WIDTH` columns."""
    plan = costed.plan
    if plan.converged:
        _say(console, "  nothing to do: the state is reached.", indent="    ")
    for n, step in enumerate(plan.steps, 1):
        _say(
            console,
            f"  {n}. {amount(step.amount)} {step.asset} from {step.source} to {step.target}"
            f" ({how(step)})",
            indent="     ",
        )
    for pool, weight in sorted(costed.weight.items()):
        _say(console, f"  weight {weight} from {pool}", indent="    ")
    for line in plan.unmet:
        _say(console, f"  cannot reach: {line}", indent="    ")


def _span(seconds: float) -> str:
    """3600 -> "hour", 600 -> "10 minutes": Binance's period, in its own words."""
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length and seconds % length == 0:
            n = int(seconds // length)
            return unit if n == 1 else f"{n} {unit}s"
    return f"{seconds:g} s"


def cap_notes(names: Iterable[str], time_scale: float) -> list[str]:
    """One line per rolling cap of the endpoints ``names``, scaled as the demo runs it."""
    endpoints = [ENDPOINTS[name] for name in sorted(set(names)) if name in ENDPOINTS]
    return [
        f"{e.name}: {cap.calls} calls per rolling {_span(cap.seconds)}, "
        f"here {cap.seconds / time_scale:g} s"
        for e in endpoints
        for cap in e.caps
    ]


def refusal(key: str) -> str:
    """'PM BNB transfer: -5013' -> 'PM BNB transfer: -5013 insufficient balance'."""
    label, _, code = key.rpartition(": ")
    try:
        meaning = REFUSALS.get(int(code))
    except ValueError:
        meaning = None
    return f"{label}: {code} {meaning}" if meaning else key


def _table(*columns: str) -> Table:
    # One space between columns (rich's default is two): 80 columns hold the longest names.
    table = Table(
        box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False, expand=False
    )
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right", no_wrap=True)
    return table


def frame(
    snapshots: Iterable[PoolSnapshot], tally: Tally, elapsed: float, url: str, options: Options
) -> Group:
    """One redraw of the live view: each pool's landed weight against its limit.

    ``landed`` is what Binance counts in the window; weight in flight (sent,
    not answered) is shown apart: the governor reserves it in every window it
    may land in, so adding it to the count would read like a breach.
    """
    o = options
    head = Text.assemble(
        ("binance_transfers demo", "bold"),
        f"  {o.concurrency} coroutines\nsimulated Binance at {url}\n",
        f"time x{o.time_scale:g}: a Binance minute lasts {60 / o.time_scale:.2f} s   ",
        (f"{min(elapsed, o.seconds):5.1f} / {o.seconds:g} s", "cyan"),
    )
    table = _table("pool (this window)", "landed / limit", "", "in flight", "waiting")
    caps = []
    # Pools nothing has touched yet (the whole endpoint table's) would bury the busy ones.
    busy = [s for s in snapshots if s.used or s.landed or s.in_flight or s.waiters]
    for snap in sorted(busy, key=lambda s: pool_label(s.key)):
        if snap.kind is PoolKind.CAP and snap.endpoint is not None:
            caps.append(snap.endpoint)
        table.add_row(
            pool_label(snap.key),
            f"{snap.landed} / {snap.limit}",
            ProgressBar(total=snap.limit, completed=min(snap.landed, snap.limit), width=8),
            str(snap.in_flight) if snap.in_flight else "",
            str(snap.waiters) if snap.waiters else "",
        )
    notes = [
        "landed: what Binance counts in this window; in flight: sent, no answer",
        "yet (lands in this window or the next; the governor reserves it in both).",
        *(f"cap {note}" for note in cap_notes(caps, o.time_scale)),
    ]
    counts = Text.assemble(
        ("done ", "bold"),
        (f"{tally.total_done}", "green"),
        f"   refused {sum(tally.refused.values())}   deferred {tally.deferred}   ",
        ("429s ", "bold"),
        (f"{tally.too_many_requests}", "red" if tally.too_many_requests else "green"),
        ("   418s ", "bold"),
        (f"{tally.banned}", "red" if tally.banned else "green"),
    )
    return Group(head, table, Text("\n".join(_wrap(n) for n in notes), style="dim"), counts)


class LiveView:
    """Redraws each pool's usage against its limit, as the governor sees it."""

    def __init__(self, console: Console, options: Options) -> None:
        self.console = console
        self.options = options

    async def follow(self, client: Client, tally: Tally, start: float, url: str) -> None:
        with Live(console=self.console, refresh_per_second=1 / REFRESH, transient=False) as live:
            while True:
                elapsed = time.monotonic() - start
                snaps = client.governor.snapshot()
                live.update(frame(snaps, tally, elapsed, url, self.options))
                await anyio.sleep(REFRESH)


def summary(console: Console, outcome: Outcome) -> None:
    """Print the end-of-run report, at most :data:`WIDTH` columns wide."""
    o, t = outcome.options, outcome.tally
    console.print()
    console.print(Text(" summary ".center(WIDTH, "─"), style="bold"))
    _say(console, f"transfers done in {outcome.elapsed:.1f} s")
    done = _table("operation", "done")
    for label, count in sorted(t.done.items(), key=lambda kv: -kv[1]):
        done.add_row(label, str(count))
    done.add_row(Text("total", style="bold"), Text(str(t.total_done), style="bold"))
    console.print(done)
    reads = t.done.get(_HISTORY, 0)
    if reads:
        _say(
            console,
            f"The total counts {reads} reads of the transfer history, which move "
            f"nothing: {t.total_done - reads} transfers and collections.",
        )
    if t.refused:
        _say(console, "refused by Binance (nothing moved):")
        for key, count in sorted(t.refused.items()):
            _say(console, f"  {refusal(key)} x{count}", indent="    ")
    _say(console, f"deferred at the deadline (no permit in time, nothing sent): {t.deferred}")

    console.print()
    _say(
        console,
        f"weight per window, as the exchange counted it (time x{o.time_scale:g}: "
        f"a window of a Binance minute lasts {60 / o.time_scale:.2f} s)",
    )
    pools = _table("pool", "limit", "windows", "busiest", ">= 90%", "over")
    for p in outcome.seen.pools:
        saturated = sum(1 for weight in p.windows.values() if weight >= 0.9 * p.limit)
        pools.add_row(
            pool_label(p.pool),
            str(p.limit),
            str(len(p.windows)),
            f"{p.peak} ({p.peak / p.limit:.0%})",
            str(saturated),
            Text(str(p.over), style="red" if p.over else "green"),
        )
    console.print(pools)
    if outcome.seen.caps:
        _say(console, f"rolling caps (Binance's periods divided by {o.time_scale:g}):")
    for cap in outcome.seen.caps:
        note = cap_notes([cap.endpoint], o.time_scale)
        scaled = note[0] if note else f"{cap.endpoint}: {cap.calls} calls per {cap.period:g} s"
        _say(
            console,
            f"  {scaled}; busiest: {cap.peak} calls in {cap.period:g} s",
            indent="    ",
        )

    if outcome.processes:
        _processes(console, outcome)
    console.print()
    _say(console, f"429s received: {outcome.answered_429}   418s received: {outcome.answered_418}")
    _say(console, f"outcomes unknown: {t.unknown}   other errors: {sum(t.errors.values())}")
    settled = [s for s in outcome.settlements if s.executed is not None]
    _say(
        console,
        f"faults injected on transfers: {o.fault_rate:.1%} each of executed-then-502, "
        "executed-then-dropped and 503-not-executed.",
    )
    _say(
        console,
        f"settled from Binance's history: {len(settled)} "
        f"({outcome.settled_executed} executed, {len(settled) - outcome.settled_executed} not), "
        f"unsettled: {outcome.unsettled}",
    )
    # Every unsettled one (each is a transfer to look into), then a few settled.
    unsettled = [s for s in outcome.settlements if s.executed is None]
    for s in unsettled + settled[: max(5 - len(unsettled), 0)]:
        state = {True: "executed", False: "not executed", None: "UNSETTLED"}[s.executed]
        _say(console, f"  {s.endpoint} {dict(s.params)}: {state} ({s.reason})", indent="    ")
    _say(
        console,
        f"reconciliation with the exchange's ledger: {outcome.executed} transfers executed "
        f"there, {outcome.client_done} confirmed to the client + {outcome.settled_executed} "
        f"settled as executed; every asset's total "
        f"{'unchanged' if outcome.seen.conserved else 'CHANGED'}",
    )
    if outcome.plan is not None:
        console.print()
        _say(
            console,
            "What the operator would do next: `binance-transfers plan` for the demo's "
            "target state, from the balances the walk left (nothing is sent):",
        )
        _plan(console, outcome.plan)
    console.print(_verdict("reconciled", outcome.reconciled))
    console.print(_verdict("result", outcome.ok))


def _processes(console: Console, outcome: Outcome) -> None:
    """Each process's part, and each saturated pool's use while they all ran."""
    from ._processes import common_windows, median_use, shares

    console.print()
    n = len(outcome.processes)
    _say(
        console,
        f"{n} processes on one account and one IP, one budget through Redis at "
        f"{outcome.redis}; each process's part of the transfers done:",
    )
    table = _table("process", "pid", "done", "part", "deferred", "unknown", "429s", "418s")
    total = outcome.tally.total_done or 1
    for p in outcome.processes:
        t = p.tally
        table.add_row(
            str(p.index + 1),
            str(p.pid),
            str(t.total_done),
            f"{t.total_done / total:.1%}",
            str(t.deferred),
            str(t.unknown),
            str(t.too_many_requests),
            str(t.banned),
        )
    console.print(table)
    windows = common_windows(outcome)
    saturated = [p for p in outcome.seen.pools if p.peak >= 0.9 * p.limit]
    if not saturated:
        return
    _say(
        console,
        f"saturated pools: median use of the {len(windows)} windows every process ran "
        "through whole (the exchange's ledger), and the least and most any process "
        "sent of the weight (its own count):",
    )
    pools = _table("pool", "median use", "least part", "most part")
    for pool in saturated:
        use = median_use(pool, windows)
        parts = shares(outcome, pool_label(pool.pool))
        pools.add_row(
            pool_label(pool.pool),
            "-" if use is None else f"{use:.1%}",
            f"{min(parts):.1%}" if parts else "-",
            f"{max(parts):.1%}" if parts else "-",
        )
    console.print(pools)


def _verdict(what: str, good: bool) -> Text:
    return Text.assemble((f"{what}: ", "bold"), ("ok", "green") if good else ("FAILED", "red"))
