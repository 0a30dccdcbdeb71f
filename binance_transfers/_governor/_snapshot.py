"""What the governor shows: every pool's state, and the margins it measured."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs

from .._clock import ServerClock
from .._endpoints import ENDPOINTS, Endpoint
from .._limits import Limits, PoolKind, PoolSpec, pools_for
from ._caps import CapPool
from ._fixed import FixedPool
from ._geometry import INF, Geometry, Trips
from ._pool import Pool
from ._queue import Plan

__all__ = ["GovernorStats", "Introspection", "PoolSnapshot"]


@attrs.frozen(kw_only=True)
class PoolSnapshot:
    """One pool as the governor sees it.

    ``key`` identifies the pool; ``kind``, ``endpoint`` and ``account`` say
    what it is, for people and metric labels: the ``/papi`` IP pool is
    ``kind=IP, endpoint=None, account=None``; a universal transfer's UID pool
    is ``kind=UID, endpoint="universal_transfer", account="key-..."``.
    """

    key: str
    kind: PoolKind
    endpoint: str | None = None
    """The endpoint this pool belongs to; None when several endpoints share it."""
    account: str | None = None
    """The account of a UID pool or rolling cap; None for a pool of the IP."""
    limit: int
    used: int
    """Weight (or calls, for a rolling cap) counted in the current window.

    The governor's reservation, not Binance's count: near a boundary a request
    in flight counts in both windows it may land in, so ``used`` may exceed
    ``limit`` without anything exceeding it at Binance (see ``landed``)."""
    landed: int = 0
    """What Binance counts in the current window so far: the highest usage it
    reported for the window, or (without such a header) our weight answered as
    landed there; for a rolling cap, the calls counted and not in flight."""
    in_flight: int = 0
    """Weight (or calls) written and not answered yet: it lands in this window
    or the next one, and is not in ``landed``."""
    others: int = 0
    """Weight of the current window counted as other processes' on this IP or
    account: what usage headers showed above our own count, or what is held
    for them because they were seen spending (the window opens with it).
    Room this governor leaves unused; 0 for a rolling cap."""
    resets_at: float
    """Binance epoch seconds when ``used`` next drops (window end, oldest call expiring)."""
    waiters: int
    frozen_until: float | None
    """Binance epoch seconds until which nothing is sent (429 or ban), if frozen."""


@attrs.frozen(kw_only=True)
class GovernorStats:
    """The governor's margins and the delay between permit and write, as measured."""

    write_delay_p50: float
    """Median seconds between admission and the write (:meth:`Governor.renew`)."""
    write_delay_p99: float
    write_delay_max: float
    writes: int
    """Writes measured (the last 4096 count for the percentiles)."""
    trip_bound: float
    """Seconds a request is assumed to take at most to land (p99 of trips + spread)."""
    guard: float
    """Seconds of the guard band after each window boundary (trip jitter, >= 2 ms)."""
    clock_uncertainty: float
    """Bound on the error of the estimate of Binance's clock that the margins use now
    (``eps``): half the sync's round trip + 1 ms, the drift since the sync, and the
    allowance for a step of Binance's clock (``CLOCK_STEP``, 10 ms)."""


class Introspection:
    """``snapshot()``, ``stats()`` and the repr (a mixin: the governor supplies the state)."""

    limits: Limits
    server_clock: ServerClock
    _monotonic: Callable[[], float]
    _pools: dict[str, Pool]
    _plans: dict[str, dict[Endpoint, Plan]]
    _waiters: dict[int, Any]
    _trips: Trips
    _banned_until: float
    _ip_frozen_until: float
    _delays: deque[float]
    _writes: int
    _delay_max: float

    def _geometry(self, now: float) -> Geometry:
        raise NotImplementedError

    def snapshot(self) -> tuple[PoolSnapshot, ...]:
        """Every pool: what it is, usage, limit, next reset, waiters, freeze.

        Pools of the IP that no call has used yet are listed too, idle, for
        every endpoint of the package's table and of the tables in use; pools
        of an account (UID, rolling caps) appear once that account calls.
        """
        now = self._monotonic()
        g = self._geometry(now)
        # Which endpoints draw on each pool (to name its endpoint), and whose it is.
        users: dict[str, set[str]] = {}
        idle: dict[str, PoolSpec] = {}
        owners: dict[str, str] = {}
        tables = {endpoint.name: endpoint for endpoint in ENDPOINTS.values()}
        for account, plans in self._plans.items():
            for endpoint, plan in plans.items():
                tables[endpoint.name] = endpoint
                for pool, _ in plan:
                    users.setdefault(pool.key, set()).add(endpoint.name)
                    if not pool.spec.per_ip:
                        owners[pool.key] = account
        for endpoint in tables.values():
            for spec in pools_for(endpoint, self.limits, ""):
                if spec.per_ip:
                    users.setdefault(spec.key, set()).add(endpoint.name)
                    if spec.key not in self._pools:
                        idle.setdefault(spec.key, spec)
        frozen = max(self._banned_until, self._ip_frozen_until)
        out = []
        for key, pool in self._pools.items():
            used, resets = pool.usage(now, g)
            landed, in_flight = _landed(pool, now, g, used)
            others = _others(pool, now, g)
            out.append(
                PoolSnapshot(
                    key=key,
                    kind=pool.spec.kind,
                    endpoint=_only(users.get(key)),
                    account=owners.get(key),
                    limit=pool.limit,
                    used=used,
                    landed=landed,
                    in_flight=in_flight,
                    others=others,
                    resets_at=resets,
                    waiters=pool.live,
                    frozen_until=pool.frozen_until + g.shift if pool.frozen_until > now else None,
                )
            )
        for key, spec in idle.items():
            out.append(
                PoolSnapshot(
                    key=key,
                    kind=spec.kind,
                    endpoint=_only(users.get(key)),
                    limit=spec.limit,
                    used=0,
                    resets_at=(math.floor((now + g.shift) / spec.period) + 1) * spec.period,
                    waiters=0,
                    frozen_until=frozen + g.shift if frozen > now else None,
                )
            )
        return tuple(out)

    def stats(self) -> GovernorStats:
        """The margins in use and the delay between permit and write, measured."""
        import statistics  # import9 (issue 9): 2.5 ms at import, for this method only

        now = self._monotonic()
        g = self._geometry(now)
        delays = sorted(self._delays)
        n = len(delays)
        return GovernorStats(
            write_delay_p50=statistics.median(delays) if n else 0.0,
            write_delay_p99=delays[int(0.99 * (n - 1))] if n else 0.0,
            write_delay_max=self._delay_max,
            writes=self._writes,
            trip_bound=g.trip,
            guard=g.guard,
            clock_uncertainty=g.eps,  # what the landing interval uses
        )

    def __repr__(self) -> str:
        busy = sum(1 for p in self._pools.values() if p.live)
        return (
            f"<Governor pools={len(self._pools)} waiters={len(self._waiters)} "
            f"blocked_pools={busy} trip={self._trips.bound:.3f}s>"
        )


def _landed(pool: Pool, now: float, g: Geometry, used: int) -> tuple[int, int]:
    """(landed, in flight) of a pool's current window, for ``snapshot()``."""
    if isinstance(pool, FixedPool):
        window = int((now + g.shift) // pool.period)
        return max(pool.peak.get(window, 0), pool.landed.get(window, 0)), pool.inflight
    if isinstance(pool, CapPool):
        in_flight = sum(1 for until in pool.calls if until == INF)
        return used - in_flight, in_flight
    return used, 0


def _others(pool: Pool, now: float, g: Geometry) -> int:
    """Weight of the pool's current window counted as others', for ``snapshot()``."""
    if not isinstance(pool, FixedPool):
        return 0
    window = int((now + g.shift) // pool.period)
    held = pool.counter.foreign(window)
    if window > pool.top:  # not opened yet: it opens with what others are expected to spend
        held = max(held, pool._expected())
    return held


def _only(names: set[str] | None) -> str | None:
    """The one endpoint drawing on a pool, or None when several share it."""
    return next(iter(names)) if names is not None and len(names) == 1 else None
