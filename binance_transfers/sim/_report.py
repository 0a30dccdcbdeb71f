"""A summary of what the exchange saw, for people and for other processes.

``python -m binance_transfers.sim --report FILE`` writes it as JSON when it
stops, so a load generator in another process (the demo) can check every
window of every pool, every rolling cap, every status answered and that no
money appeared or vanished.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import attrs

from .._limits import PoolKind, pools_for
from .._models import converter
from ._exchange import SimulatedExchange

__all__ = ["CapUsage", "Execution", "PoolUsage", "Report", "report", "totals"]


@attrs.frozen(kw_only=True)
class PoolUsage:
    """Weight one fixed-window pool received, window by window."""

    pool: str
    limit: int
    windows: dict[int, int]
    """Weight per window index (server epoch seconds // window length)."""

    @property
    def peak(self) -> int:
        return max(self.windows.values(), default=0)

    @property
    def over(self) -> int:
        """Windows that received more than the limit."""
        return sum(1 for weight in self.windows.values() if weight > self.limit)


@attrs.frozen(kw_only=True)
class CapUsage:
    """The most executed calls of one endpoint in any rolling window of its cap."""

    endpoint: str
    calls: int
    period: float
    peak: int


@attrs.frozen(kw_only=True)
class Execution:
    """One executed mutating request, for checks made in another process."""

    endpoint: str
    params: dict[str, str]
    """Parameters as received, no signature."""
    timestamp: int | None
    """The ``timestamp`` parameter sent (epoch ms)."""
    executed_ms: int
    """Server epoch milliseconds of execution."""
    result: str | None
    """``tranId`` / ``txnId``, as text."""
    settlement: str | None
    """Final status of a transfer with a history (FAILED / FAILURE: nothing moved)."""


@attrs.frozen(kw_only=True)
class Report:
    """What the exchange saw: windows, caps, answers, executions, money."""

    pools: tuple[PoolUsage, ...]
    caps: tuple[CapUsage, ...]
    statuses: dict[int, int]
    """HTTP status answered -> how many times (0: connection dropped)."""
    executed: dict[str, int]
    """Endpoint name -> requests executed."""
    totals: dict[str, Decimal]
    """Each asset summed over every wallet of every account."""
    started_with: dict[str, Decimal]
    executions: tuple[Execution, ...] = ()
    """Every executed mutating request (transfers, collections), oldest first."""
    duplicates: int = 0
    """Transfers that moved money more than once (see ``Ledger.duplicates``)."""

    @property
    def conserved(self) -> bool:
        """Transfers only move money: no asset's total changed."""
        return self.totals == self.started_with

    def dumps(self) -> str:
        import json

        return json.dumps(converter.unstructure(self), indent=1)

    @classmethod
    def loads(cls, text: str) -> Report:
        import json

        return converter.structure(json.loads(text), cls)

    def write(self, path: str | Path) -> None:
        Path(path).write_text(self.dumps())


def totals(exchange: SimulatedExchange) -> dict[str, Decimal]:
    """Each asset summed over every wallet of every account (masters and subs).

    Amounts held by pending transfers (in no wallet until they settle) count too.
    """
    sums: dict[str, Decimal] = defaultdict(Decimal, exchange.bank.in_flight())
    for account in exchange.bank:
        for assets in account.balances().values():
            for asset, amount in assets.items():
                sums[asset] += amount
    return dict(sums)


def report(exchange: SimulatedExchange, started_with: dict[str, Decimal]) -> Report:
    """Summarise the ledger and the balances of ``exchange``."""
    ledger = exchange.ledger
    windows: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    limits: dict[str, int] = {}
    for entry in ledger:
        for charge in entry.charges:
            windows[charge.pool][charge.window] += charge.weight
            limits[charge.pool] = charge.limit
    pools = tuple(
        PoolUsage(pool=pool, limit=limits[pool], windows=dict(sorted(per.items())))
        for pool, per in sorted(windows.items())
    )
    caps = []
    accounts = {entry.account for entry in ledger if entry.account is not None}
    for endpoint in exchange.endpoints.values():
        for uid in sorted(accounts):
            for spec in pools_for(endpoint, exchange.limits, str(uid)):
                if spec.kind is not PoolKind.CAP:
                    continue
                times = sorted(
                    e.arrived for e in ledger.executed(endpoint.name) if e.account == uid
                )
                peak = first = 0
                for last, at in enumerate(times):
                    while times[first] <= at - spec.period:
                        first += 1
                    peak = max(peak, last - first + 1)
                caps.append(
                    CapUsage(
                        endpoint=endpoint.name, calls=spec.limit, period=spec.period, peak=peak
                    )
                )
    return Report(
        pools=pools,
        caps=tuple(caps),
        statuses=dict(Counter(entry.status or 0 for entry in ledger)),
        executed=dict(Counter(e.endpoint for e in ledger.executed() if e.endpoint is not None)),
        totals=totals(exchange),
        started_with=dict(started_with),
        executions=tuple(
            Execution(
                endpoint=e.endpoint,
                params=dict(e.params),
                timestamp=e.timestamp,
                executed_ms=int(e.arrived * 1000),
                result=None if e.result is None else str(e.result),
                settlement=e.settlement,
            )
            for e in ledger.executed()
            if e.endpoint is not None and e.changes
        ),
        duplicates=sum(len(group) - 1 for group in ledger.duplicates()),
    )


# Resolve annotations here: the package re-homes these classes to its own name.
for _cls in (PoolUsage, CapUsage, Execution, Report):
    attrs.resolve_types(_cls)
