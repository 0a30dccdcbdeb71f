"""A neighbour seen only through usage headers, for the governor's tests.

Another process on the IP spends /papi at minute openings straight into the
simulated exchange's limiter (a script run every minute at :00); ours learns
of it only from the ``X-MBX-USED-WEIGHT-1M`` of its own answers. Windows are
counted from the minute our start falls in. Deterministic under looptime.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import anyio

from binance_transfers import ENDPOINTS, BinanceTransfersError, Client
from binance_transfers._clock import LoopClock
from binance_transfers.sim import Fault, SimulatedExchange

E0 = 1_767_225_600.0  # a minute's start on Binance's clock
LIMIT = 6000  # /papi's weight a minute
PROFILES = {"slow": (0.05, 0.3), "fast": (0.02, 0.01)}  # latency, jitter


class Neighbour:
    """An exchange started ``phase`` s into a minute, answering ``latency`` s plus up to
    ``jitter`` s late, beside a process spending ``spends(window)`` at each opening."""

    def __init__(
        self,
        spends: Callable[[int], int],
        latency: float,
        jitter: float,
        *,
        phase: float = 30.0,
        seed: int = 1,
    ) -> None:
        self.exchange = SimulatedExchange(seed=seed, clock=LoopClock(epoch=E0 + phase))
        self.exchange.add_demo_account()
        self.exchange.faults.add(Fault.latency(latency, jitter=jitter))
        self.papi = tuple(
            spec
            for spec in self.exchange.limiter.pools(ENDPOINTS["pm_auto_collect"], None)
            if spec.key == "papi-ip"
        )
        self.first = int((E0 + phase) // 60)
        self.spends = spends
        self.spent = Counter[int]()  # minute -> what the neighbour spent there
        self.over = 0  # the neighbour's requests that met a window over its limit

    def now(self) -> float:
        """Binance's clock."""
        return self.exchange.clock.time() + self.exchange.skew

    async def run(self) -> None:
        """Spend at every opening, for as long as the task runs."""
        while True:
            await anyio.sleep((int(self.now() // 60) + 1) * 60 - self.now())
            now = self.now()
            amount = self.spends(int(now // 60) - self.first)
            if amount:
                for _ in range(amount // self.papi[0].weight):
                    self.over += bool(self.exchange.limiter.charge(self.papi, "127.0.0.1", now)[1])
                self.spent[int(now // 60)] += amount

    def refused(self) -> Counter[tuple[int, int]]:
        """Our 429s and 418s by (window, status)."""
        return Counter(
            (int(e.arrived // 60) - self.first, e.status)
            for e in self.exchange.ledger
            if e.status in (418, 429)
        )

    def rows(self, windows: int) -> list[tuple[int, int, int]]:
        """(window, ours, the neighbour's) for the first ``windows`` windows."""
        ours = self.exchange.ledger.window_weights("papi-ip")
        return [
            (w - self.first, ours.get(w, 0), self.spent.get(w, 0))
            for w in range(self.first, self.first + windows)
        ]

    async def crowd(self, processes: int, windows: int, callers: int = 10) -> list[Client]:
        """``processes`` clients (separate governors, as separate processes would
        have) started together, each with ``callers`` callers of :meth:`calls`
        for ``windows`` windows, then closed; returns them."""
        clients = [self.exchange.client() for _ in range(processes)]
        async with anyio.create_task_group() as tasks:
            for client in clients:
                await client.__aenter__()
                for _ in range(callers):
                    tasks.start_soon(self.calls, client, (self.first + windows) * 60)
        for client in clients:
            await client.__aexit__(None, None, None)
        return clients

    async def calls(self, client: Client, until: float) -> None:
        """PM auto-collections one after another until ``until`` (Binance's clock)."""
        while self.now() < until:
            try:
                await client.pm_auto_collect()
            except BinanceTransfersError:
                await anyio.sleep(1)
