"""The ledger: every request the simulated exchange received, as it saw it.

Tests read it to check what a client really did on the wire: how much weight
landed in each fixed window of each pool (and whether any window went over
its limit), and whether a transfer was executed twice, because the same signed
request was sent twice (:meth:`Ledger.resends`) or the same transfer was sent
again with a fresh timestamp (:meth:`Ledger.duplicates`)::

    entry = ledger.executions("sub_account_transfer", clientTranId="rebal-7")[0]
    entry.params["amount"], entry.timestamp, entry.executed_ms, entry.settlement
    assert ledger.duplicates() == []
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence

import anyio
import attrs

from .._limits import PoolKind

#: Parameters that do not say what a request asks, only when and how it was signed.
_NOT_THE_TRANSFER = frozenset({"timestamp", "recvWindow", "signature"})

__all__ = ["Charge", "Ledger", "LedgerEntry", "Overrun"]


@attrs.frozen(kw_only=True)
class Charge:
    """Weight one request drew from one fixed-window pool (rolling caps count calls instead)."""

    pool: str
    """The pool's key, as :func:`binance_transfers.pools_for` names it."""
    kind: PoolKind
    ip: str | None
    """The caller's IP for per-IP pools; None for account (UID) pools."""
    weight: int
    window: int
    """Index of the fixed window: server epoch seconds // window length."""
    limit: int


@attrs.frozen(kw_only=True)
class LedgerEntry:
    """One request as the exchange received it."""

    seq: int
    arrived: float
    """Server clock (epoch seconds, skew included) when the request arrived."""
    monotonic: float
    """The exchange clock's monotonic time at arrival."""
    ip: str
    method: str
    path: str
    endpoint: str | None
    """Name in the endpoint table; None for a path the exchange does not serve."""
    account: int | None
    """UID of the account the API key belongs to, once the key was recognised."""
    charges: tuple[Charge, ...]
    status: int | None
    """HTTP status answered; None when the connection was dropped instead."""
    code: int | None
    """Binance error code of the answer, if it was an error."""
    executed: bool
    """The request did what it asks (money moved, history served)."""
    signature: str | None
    fault: str | None
    """The injected fault that shaped the answer, if any."""
    result: object = None
    """Id of what was executed (``tranId``, ``txnId``), if any."""
    params: Mapping[str, str] = attrs.field(factory=dict)
    """The request's parameters as the exchange parsed them (query and body), no signature."""
    timestamp: int | None = None
    """The ``timestamp`` parameter sent (epoch ms), if any."""
    settlement: str | None = None
    """Final status of an executed transfer with a history (CONFIRMED / FAILED,
    SUCCESS / FAILURE); decided at execution, shown once ``settles_at`` passes."""
    settles_at: float | None = None
    """Server clock (epoch seconds) at which that transfer leaves PENDING."""
    latency: float = 0.0
    """Seconds the request travelled (``Fault.latency``): it arrived that long after leaving."""
    late_by: float = 0.0
    """Seconds the answer was held back after processing (``Fault.late``)."""
    reads: bool = False
    """A POST that only reads (``getUserAsset``...): like a GET, it changes nothing."""

    @property
    def executed_ms(self) -> int | None:
        """Server epoch milliseconds of execution (the history row's timestamp), if executed."""
        return int(self.arrived * 1000) if self.executed else None

    @property
    def moved(self) -> bool:
        """Executed and not FAILED: the request moves (or moved) money, if it moves any."""
        return self.executed and self.settlement not in ("FAILED", "FAILURE")

    @property
    def changes(self) -> bool:
        """A request that may change state: not a GET, nor a POST that only reads."""
        return self.method != "GET" and not self.reads

    def transfer_key(self) -> tuple[str | None, tuple[tuple[str, str], ...]]:
        """What the request asks, without ``timestamp``, ``recvWindow`` or ``signature``."""
        return self.endpoint, tuple(
            sorted((k, v) for k, v in self.params.items() if k not in _NOT_THE_TRANSFER)
        )

    def weight(self, pool: str) -> int:
        """Weight drawn from ``pool`` (0 if none)."""
        return sum(c.weight for c in self.charges if c.pool == pool)


@attrs.frozen(kw_only=True)
class Overrun:
    """A fixed window of a pool that received more weight than its limit."""

    pool: str
    ip: str | None
    window: int
    weight: int
    limit: int


class Ledger(Sequence[LedgerEntry]):
    """Every request received, oldest first, with queries for tests::

    assert exchange.ledger.over_limit() == []  # no window of any pool went over
    assert exchange.ledger.resends() == []  # no signed request executed twice
    """

    def __init__(self) -> None:
        self._entries: list[LedgerEntry] = []
        self._waiters: list[tuple[Callable[[LedgerEntry], bool], anyio.Event]] = []

    def record(self, entry: LedgerEntry) -> None:
        self._entries.append(entry)
        for predicate, event in self._waiters:
            if predicate(entry):
                event.set()

    async def wait_for(self, predicate: Callable[[LedgerEntry], bool]) -> LedgerEntry:
        """The first entry matching ``predicate``, waiting for it to be recorded if need be.

        ``await ledger.wait_for(lambda e: e.endpoint == "universal_transfer")``:
        tells a test when the exchange has handled a request its caller gave up on.
        """
        while True:
            for entry in self._entries:
                if predicate(entry):
                    return entry
            waiter = (predicate, anyio.Event())
            self._waiters.append(waiter)
            try:
                await waiter[1].wait()
            finally:
                self._waiters.remove(waiter)

    def __getitem__(self, index: int) -> LedgerEntry:  # type: ignore[override]
        return self._entries[index]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[LedgerEntry]:
        return iter(self._entries)

    def entries(
        self,
        endpoint: str | None = None,
        *,
        executed: bool | None = None,
        status: int | None = None,
    ) -> list[LedgerEntry]:
        """Entries for ``endpoint`` (any if None), optionally filtered."""
        return [
            e
            for e in self._entries
            if (endpoint is None or e.endpoint == endpoint)
            and (executed is None or e.executed == executed)
            and (status is None or e.status == status)
        ]

    def executed(self, endpoint: str | None = None) -> list[LedgerEntry]:
        """Requests that were executed, for ``endpoint`` (any if None)."""
        return self.entries(endpoint, executed=True)

    def executions(self, endpoint: str | None = None, **params: str) -> list[LedgerEntry]:
        """Executed requests for ``endpoint`` whose parameters include every ``params`` value.

        ``ledger.executions("universal_transfer", type="MAIN_UMFUTURE", amount="1.5")``
        """
        return [
            e
            for e in self._entries
            if e.executed
            and (endpoint is None or e.endpoint == endpoint)
            and all(e.params.get(name) == value for name, value in params.items())
        ]

    def times_executed(self, endpoint: str | None = None, **params: str) -> int:
        """How many times a request for ``endpoint`` with these parameters executed."""
        return len(self.executions(endpoint, **params))

    def duplicates(self, endpoint: str | None = None) -> list[tuple[LedgerEntry, ...]]:
        """Groups of requests that moved money asking for the very same transfer.

        Requests compare by endpoint and parameters, ``timestamp``,
        ``recvWindow`` and ``signature`` left out, so a transfer resent with a
        fresh timestamp is caught (:meth:`resends` catches only identical
        bytes). A FAILED transfer moved nothing and is not counted. Give every
        intended transfer distinct parameters (an amount, a ``clientTranId``)
        in a test that uses this.
        """
        groups: dict[object, list[LedgerEntry]] = defaultdict(list)
        for entry in self._entries:
            if (
                entry.moved
                and entry.changes  # reads change nothing, however often repeated
                and entry.endpoint is not None
                and endpoint in (None, entry.endpoint)
            ):
                groups[entry.transfer_key()].append(entry)
        return [tuple(group) for group in groups.values() if len(group) > 1]

    def window_weights(self, pool: str, *, ip: str | None = None) -> dict[int, int]:
        """Weight received per fixed window of ``pool`` (from ``ip`` only, if given)."""
        totals: dict[int, int] = defaultdict(int)
        for entry in self._entries:
            for charge in entry.charges:
                if charge.pool == pool and (ip is None or charge.ip == ip):
                    totals[charge.window] += charge.weight
        return dict(sorted(totals.items()))

    def peak(self, pool: str, *, ip: str | None = None) -> int:
        """The most weight any single fixed window of ``pool`` received (0 if none)."""
        return max(self.window_weights(pool, ip=ip).values(), default=0)

    def pools(self) -> set[str]:
        """Keys of every pool any request drew from."""
        return {c.pool for e in self._entries for c in e.charges}

    def over_limit(self) -> list[Overrun]:
        """Every (pool, IP, window) that received more weight than the pool's limit."""
        totals: dict[tuple[str, str | None, int], int] = defaultdict(int)
        limits: dict[str, int] = {}
        for entry in self._entries:
            for c in entry.charges:
                totals[(c.pool, c.ip, c.window)] += c.weight
                limits[c.pool] = c.limit
        return [
            Overrun(pool=pool, ip=ip, window=window, weight=weight, limit=limits[pool])
            for (pool, ip, window), weight in sorted(totals.items(), key=lambda kv: kv[0][2])
            if weight > limits[pool]
        ]

    def resends(self) -> list[tuple[LedgerEntry, ...]]:
        """Groups of executed mutating requests that carried the same signature (a resend).

        Two *different* calls with identical parameters signed in the same
        millisecond carry the same signature too (Binance cannot tell them
        apart either): give such calls distinct parameters in a test, or
        compare counts of executed and confirmed calls instead.
        """
        by_signature: dict[str, list[LedgerEntry]] = defaultdict(list)
        for entry in self._entries:
            # A read repeated in the same millisecond changes nothing: not a resend.
            if entry.executed and entry.signature is not None and entry.changes:
                by_signature[entry.signature].append(entry)
        return [tuple(group) for group in by_signature.values() if len(group) > 1]

    def clear(self) -> None:
        """Forget every entry (the exchange's state is untouched)."""
        self._entries.clear()

    def __repr__(self) -> str:
        executed = sum(1 for e in self._entries if e.executed)
        return f"<Ledger {len(self._entries)} requests, {executed} executed>"
