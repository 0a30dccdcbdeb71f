"""Rolling caps on calls (2 PM Pro BNB transfers per 10 minutes...), per account."""

from __future__ import annotations

import math
from collections.abc import Mapping

from .._limits import PoolSpec
from .._storage import CallCounter
from ._geometry import INF, NUDGE, Geometry
from ._pool import Pool

__all__ = ["CapPool"]

#: How much slower Binance's clock may run than ours (twice the 50 ppm assumed).
_DRIFT = 100e-6


class CapPool(Pool):
    """Calls in a rolling window, as the times they stop counting (see ``CallCounter``).

    Admitted, a call counts until ``admission + period + margin`` (it lands
    within the trip bound); written, until its answer (``inf``); answered, until
    ``answer + period`` (plus the guard band, a clock step and 100 ppm of drift): it reached
    Binance before we heard back, and both times are on our one monotonic
    clock, so the clock's offset does not enter, only its rate.
    """

    __slots__ = ("calls",)

    def __init__(self, spec: PoolSpec, calls: CallCounter) -> None:
        super().__init__(spec)
        self.calls = calls

    def warm_at(self, g: Geometry) -> float:
        return self.born + self.period * (1 + _DRIFT) + g.margin

    def ready_at(self, now: float, weight: int, g: Geometry) -> float:
        if weight > self.limit:
            return INF  # until some of what is held back is charged
        t = max(now, self.frozen_until)
        if self.cold:
            t = max(t, self.cold_ready(now, g))
        calls = self.calls
        calls.prune(now)
        excess = len(calls) + weight - self.limit
        if excess <= 0:
            return t
        return max(t, calls[excess - 1] + NUDGE)

    def charge(self, now: float, weight: int, g: Geometry) -> float:
        if self.cold:
            self.out += 1
        until = now + self.period + g.margin + NUDGE
        self.calls.add(until)
        return until

    def take(self, now: float, weight: int, g: Geometry) -> float | None:
        if now < self.frozen_until:
            return None
        if self.cold and self.cold_ready(now, g) > now:
            return None
        calls = self.calls
        calls.prune(now)
        if len(calls) + weight > self.limit:
            return None
        if self.cold:
            self.out += 1
        until = now + self.period + g.margin + NUDGE
        calls.add(until)
        return until

    def refund(self, record: float, weight: int, written: bool) -> None:
        self._cold_done(False)
        self.calls.remove(record)  # a record pruned meanwhile is simply gone

    def renew(self, record: float, weight: int, now: float, g: Geometry) -> float | None:
        if now < self.frozen_until:
            return None
        calls = self.calls
        calls.prune(now)
        if not calls.remove(record) and len(calls) + weight > self.limit:
            return None  # it had expired unsent, and its slot was taken meanwhile
        calls.add(INF)
        return INF

    def settle(
        self,
        record: float,
        weight: int,
        sent: float,
        landed_by: float,
        headers: Mapping[str, str],
        g: Geometry,
        answered: bool,
        written: bool,
    ) -> tuple[bool, int]:
        calls = self.calls
        calls.remove(record)
        # Binance's clock may run slower than ours (drift): its period is a
        # little longer on our clock; the guard band covers trip jitter, and
        # `step` a step of Binance's clock since the sync (part of eps).
        calls.add(landed_by + self.period * (1 + _DRIFT) + g.guard + g.step)
        self._cold_done(answered)
        return True, 0

    def seed(self, sent: list[float], now: float, g: Geometry) -> None:
        """Count calls written at monotonic ``sent`` by an earlier process; then warm."""
        for t in sent:
            # As an answered call: it may have landed up to a trip after it was sent.
            until = t + g.margin + self.period * (1 + _DRIFT) + g.guard + g.step
            if until > now:
                self.calls.add(until)
        self.cold = self.out = 0

    def estimate(self, now: float, total: int, g: Geometry, weight: int) -> float:
        calls = self.calls
        calls.prune(now)
        t = max(now, self.frozen_until)
        # In flight: it cannot stop counting before a period from now.
        ends = [c if c != INF else now + self.period for c in calls]
        ends.sort()
        excess = len(ends) + total - self.limit
        if excess <= 0:
            return t
        if excess <= len(ends):
            return max(t, ends[excess - 1] + NUDGE)
        rounds = math.ceil((excess - len(ends)) / self.limit)
        return max(t, (ends[-1] if ends else now) + rounds * self.period + NUDGE)

    def freeze_default(self, now: float, g: Geometry) -> float:
        calls = self.calls
        calls.prune(now)
        if not len(calls):
            return now
        return calls[0] + NUDGE if calls[0] != INF else now + self.period

    def usage(self, now: float, g: Geometry) -> tuple[int, float]:
        calls = self.calls
        calls.prune(now)
        n = len(calls)
        first = calls[0] if n else now
        return n, g.shift + (first if first != INF else now + self.period)

    def idle(self, now: float, g: Geometry) -> bool:
        self.calls.prune(now)
        return not len(self.calls)
