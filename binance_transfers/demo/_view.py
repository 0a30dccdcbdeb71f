"""The demo's terminal view (rich): live pools while it runs, then the summary."""

from __future__ import annotations

import time

import anyio
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .._client import Client
from ._job import Tally
from ._run import Options, Outcome, pool_label

__all__ = ["LiveView", "summary"]

REFRESH = 0.25  # seconds between redraws


class LiveView:
    """Redraws each pool's usage against its limit, as the governor sees it."""

    def __init__(self, console: Console, options: Options) -> None:
        self.console = console
        self.options = options

    async def follow(self, client: Client, tally: Tally, start: float, url: str) -> None:
        with Live(console=self.console, refresh_per_second=1 / REFRESH, transient=False) as live:
            while True:
                live.update(self._frame(client, tally, start, url))
                await anyio.sleep(REFRESH)

    def _frame(self, client: Client, tally: Tally, start: float, url: str) -> Group:
        o = self.options
        elapsed = time.monotonic() - start
        head = Text.assemble(
            ("binance_transfers demo", "bold"),
            f"  {o.concurrency} coroutines rebalancing through the simulated Binance at {url}\n",
            f"time x{o.time_scale:g} (a Binance minute lasts {60 / o.time_scale:.2f} s)   ",
            (f"{min(elapsed, o.seconds):5.1f} / {o.seconds:g} s", "cyan"),
        )
        table = Table(
            expand=False,
            title="rate-limit pools, as the governor counts them (this window)",
            caption="near a boundary a request counts in both windows it may land in",
        )
        table.add_column("pool", no_wrap=True)
        table.add_column("used / limit", justify="right", no_wrap=True)
        table.add_column("")
        table.add_column("waiting", justify="right")
        for snap in sorted(client.governor.snapshot(), key=lambda s: pool_label(s.key)):
            table.add_row(
                pool_label(snap.key),
                f"{snap.used} / {snap.limit}",
                ProgressBar(total=snap.limit, completed=min(snap.used, snap.limit), width=20),
                str(snap.waiters) if snap.waiters else "",
            )
        counts = Text.assemble(
            ("done ", "bold"),
            (f"{tally.total_done}", "green"),
            f"   refused by Binance {sum(tally.refused.values())}   deferred {tally.deferred}   ",
            ("429s ", "bold"),
            (f"{tally.too_many_requests}", "red" if tally.too_many_requests else "green"),
            ("   418s ", "bold"),
            (f"{tally.banned}", "red" if tally.banned else "green"),
        )
        return Group(head, table, counts)


def summary(console: Console, outcome: Outcome) -> None:
    """Print the end-of-run report."""
    o, t = outcome.options, outcome.tally
    console.print()
    console.rule("[bold]summary")
    done = Table(title=f"transfers done in {outcome.elapsed:.1f} s", show_edge=False)
    done.add_column("operation")
    done.add_column("done", justify="right")
    for label, count in sorted(t.done.items(), key=lambda kv: -kv[1]):
        done.add_row(label, str(count))
    done.add_row("[bold]total", f"[bold]{t.total_done}")
    console.print(done)
    if t.refused:
        console.print(
            "refused by Binance (nothing moved): "
            + ", ".join(f"{k} x{v}" for k, v in sorted(t.refused.items()))
        )
    console.print(f"deferred at the deadline (no permit in time, nothing sent): {t.deferred}")

    pools = Table(
        title="weight per window as the exchange counted it "
        f"(a window lasts {60 / o.time_scale:.2f} s)",
        show_edge=False,
    )
    for column in ("pool", "limit", "windows", "busiest", "windows >= 90 %", "over limit"):
        pools.add_column(column, justify="left" if column == "pool" else "right", no_wrap=True)
    for p in outcome.seen.pools:
        saturated = sum(1 for weight in p.windows.values() if weight >= 0.9 * p.limit)
        pools.add_row(
            pool_label(p.pool),
            str(p.limit),
            str(len(p.windows)),
            f"{p.peak} ({p.peak / p.limit:.0%})",
            str(saturated),
            f"[{'red' if p.over else 'green'}]{p.over}",
        )
    console.print(pools)
    for cap in outcome.seen.caps:
        console.print(
            f"rolling cap {cap.endpoint}: at most {cap.peak} calls in any {cap.period:g} s "
            f"(cap {cap.calls})"
        )

    def verdict(good: bool) -> str:
        return "[green]ok[/]" if good else "[red]FAILED[/]"

    console.print(
        f"429s received: {outcome.answered_429}   418s received: {outcome.answered_418}   "
        f"outcomes unknown: {t.unknown}   other errors: {sum(t.errors.values())}"
    )
    settled = [s for s in outcome.settlements if s.executed is not None]
    console.print(
        f"faults injected on transfers: {o.fault_rate:.1%} each of executed-then-502, "
        f"executed-then-dropped, 503-not-executed; outcomes unknown: {t.unknown}, "
        f"settled from Binance's history: {len(settled)} "
        f"({outcome.settled_executed} executed, {len(settled) - outcome.settled_executed} not), "
        f"unsettled: {outcome.unsettled}"
    )
    for s in outcome.settlements[:5]:
        state = {True: "executed", False: "not executed", None: "UNSETTLED"}[s.executed]
        console.print(f"  {s.endpoint} {dict(s.params)}: {state} ({s.reason})")
    console.print(
        f"reconciliation with the exchange's ledger: {outcome.executed} transfers executed "
        f"there, {outcome.client_done} confirmed to the client + {outcome.settled_executed} "
        f"settled as executed; every asset's total "
        f"{'unchanged' if outcome.seen.conserved else 'CHANGED'} -> {verdict(outcome.reconciled)}"
    )
    console.print(f"[bold]result: {verdict(outcome.ok)}")
