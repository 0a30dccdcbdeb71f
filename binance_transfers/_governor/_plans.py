"""Which pools a call draws on, per account, and forgetting the idle ones.

A plan is an endpoint's pools for one account, in the order a waiter goes
through them (``_queue``). Pools are made on first use, with a counter from
the storage (the plug point of a shared storage: ``window_counter`` and
``call_counter``, given the governor's ``StorageLink``); idle per-account
pools are swept away.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._endpoints import ENDPOINTS, Endpoint
from .._exceptions import ConfigurationError
from .._limits import Limits, PoolKind, PoolSpec, pools_for
from .._storage import MemoryStorage, Storage, StorageLink
from ._geometry import Geometry
from ._pools import CapPool, FixedPool, Pool
from ._queue import Plan

__all__ = ["Planning"]


class Planning:
    """Plans and pools (a mixin: the governor supplies the state)."""

    limits: Limits
    storage: Storage
    cold_start: bool
    _link: StorageLink
    _monotonic: Callable[[], float]
    _pools: dict[str, Pool]
    _plans: dict[str, dict[Endpoint, Plan]]
    _born: float | None
    _sweep_at: int
    _swept: float
    _banned_until: float
    _ip_frozen_until: float
    _waiters: dict[int, Any]
    _wake: dict[Pool, float]

    def _geometry(self, now: float) -> Geometry:
        raise NotImplementedError

    def _plan_of(self, endpoint: Endpoint, account: str) -> Plan:
        """The plan of ``endpoint`` for ``account``: the one made, else a new one
        (``acquire`` inlines this: its hot path)."""
        plans = self._plans.get(account)
        plan = plans.get(endpoint) if plans is not None else None
        return plan if plan is not None else self._plan(endpoint, account)

    def _plan(self, endpoint: Endpoint, account: str) -> Plan:
        plan = []
        for spec in pools_for(endpoint, self.limits, account):
            pool = self._pools.get(spec.key)
            if pool is None:
                count = len(self._pools)
                if count >= self._sweep_at or (count > 256 and self._monotonic() >= self._swept):
                    self._sweep()
                if spec.kind is PoolKind.CAP:
                    pool = CapPool(spec, self.storage.call_counter(spec, self._link))
                else:
                    pool = FixedPool(spec, self.storage.window_counter(spec, self._link))
                    pool.adapts = isinstance(self.storage, MemoryStorage)
                # A ban, or a 429 of unknown origin, covers every pool of the IP.
                pool.frozen_until = max(self._banned_until, self._ip_frozen_until)
                if self.cold_start:
                    if self._born is None:
                        self._born = self._monotonic()
                    if not _clock_only(spec.key, self.limits):
                        pool.born, pool.cold = self._born, 1
                self._pools[spec.key] = pool
            elif _shape(pool.spec) != _shape(spec):
                raise ConfigurationError(
                    f"{endpoint.name}: pool {spec.key!r} is already in use with limit "
                    f"{pool.limit} per {pool.period} s, not {spec.limit} per {spec.period} s: "
                    "endpoint tables that disagree on limits cannot share a Governor"
                )
            if spec.weight > pool.limit:
                raise ConfigurationError(
                    f"{endpoint.name} weighs {spec.weight} but pool {spec.key!r} "
                    f"only allows {pool.limit}: it could never be sent"
                )
            if isinstance(pool, FixedPool):
                pool.heaviest = max(pool.heaviest, spec.weight)
                pool.rival = max(pool.rival, spec.weight, _heaviest(spec.key, self.limits))
            plan.append((pool, spec.weight))
        result = tuple(plan)
        self._plans.setdefault(account, {})[endpoint] = result
        return result

    def _sweep(self) -> None:
        """Forget per-account pools (and the plans using them) that are idle.

        Amortised: runs when the pool count doubled since the last sweep, or
        two windows after it.
        """
        now = self._monotonic()
        self._swept = now + 2 * self.limits.window
        g = self._geometry(now)
        busy = {pool for waiter in self._waiters.values() for pool, _ in waiter.plan}
        gone = {
            key
            for key, pool in self._pools.items()
            if not pool.spec.per_ip
            and not pool.live
            and not pool.passed
            and not pool.queue
            and pool not in busy
            and pool not in self._wake
            and pool.frozen_until <= now
            and pool.idle(now, g)
        }
        if gone:
            for key in gone:
                del self._pools[key]
                self.storage.discard(key)
            for account in list(self._plans):
                plans = self._plans[account]
                for endpoint in [
                    e for e, plan in plans.items() if any(p.key in gone for p, _ in plan)
                ]:
                    del plans[endpoint]
                if not plans:
                    del self._plans[account]
        self._sweep_at = max(256, 2 * len(self._pools))


def _shape(spec: PoolSpec) -> tuple[object, ...]:
    """What two specs of one pool must agree on (the weight is per endpoint)."""
    return (spec.kind, spec.limit, spec.period, spec.header, spec.per_ip)


def _drawing(key: str, limits: Limits) -> list[tuple[Endpoint, PoolSpec]]:
    """The endpoints of the default table that draw from pool ``key``, with their spec."""
    return [(e, s) for e in ENDPOINTS.values() for s in pools_for(e, limits, "") if s.key == key]


def _heaviest(key: str, limits: Limits) -> int:
    """The heaviest request Binance's endpoints (the default table) send into pool ``key``."""
    return max((s.weight for _, s in _drawing(key, limits)), default=1)


def _clock_only(key: str, limits: Limits) -> bool:
    """Only unsigned reads of the default table draw from pool ``key`` (/api: the
    clock read, ``server_time``): it starts warm.

    A previous life sent there one read per clock sync, which cannot fill it,
    and every signed call waits for that read. Cold, a lost first read held
    every signed call back to the next minute (its place kept until the pool
    warms, for a window a previous life may have filled); and a first read
    sent in a minute's last second (the clock unsynced yet, known to a
    second) may have landed on either side of the boundary, so the next read
    (the sync after a public ``server_time()``) waited 4 s into the next minute.
    """
    endpoints = [e for e, _ in _drawing(key, limits)]
    return bool(endpoints) and not any(e.security.signed for e in endpoints)
