"""The governor: every request waits here for a permit.

Binance counts weight in fixed windows aligned to its clock (the minute resets
at :00). A token bucket sized to the limit admits a full burst and then a
minute of refill inside the same window (nearly twice the limit, a 429). The
governor instead charges each request to every server window it may *land*
in (``_geometry``), keeps it charged while it is in flight (``_pools``),
corrects the counts from the answers (``_feedback``), and queues the rest
(``_queue``). So no server window is ever sent more than its limit, and
steady demand still gets nearly all of it.
"""

from __future__ import annotations

import logging
import math
import threading
from asyncio import _get_running_loop
from collections import deque
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any

import attrs

from .._clock import Clock, ServerClock
from .._endpoints import ENDPOINTS, Endpoint
from .._exceptions import ConfigurationError, IPBannedError, ThrottledError
from .._limits import Limits, PoolKind, PoolSpec, pools_for
from .._storage import MemoryStorage, Storage, StorageLink
from ._feedback import Feedback
from ._geometry import GUARD_FLOOR, INF, Geometry, Trips
from ._pools import CapPool, FixedPool, Pool
from ._queue import Charge, Permit, Plan, Written

__all__ = ["Governor", "GovernorHooks", "GovernorStats", "Permit", "PoolSnapshot"]

log = logging.getLogger("binance_transfers.governor")

_UNBOUND: Any = object()

#: Seconds the call running in this context spent queued for permits, when a
#: caller counts them (the client's per-transfer log record sets ``[0.0]``).
#: Added to only when a call had to queue: the uncontended path stays untouched.
PERMIT_WAIT: ContextVar[list[float] | None] = ContextVar(
    "binance_transfers_permit_wait", default=None
)


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
    """Bound on the error of the estimate of Binance's clock now (grows since the sync)."""


class GovernorHooks:
    """Subclass and override what you want to measure; every method is a no-op.

    Hooks run synchronously inside the governor: keep them short. A hook left
    as the no-op costs nothing on the uncontended path. A hook that raises is
    logged (``binance_transfers.governor``, ERROR) and otherwise ignored: it
    never reaches the caller, loses a permit or changes how an answer is read.
    """

    def throttled(self, endpoint: str, wait: float) -> None:
        """A call has to wait an estimated ``wait`` seconds for a permit."""

    def admitted(self, endpoint: str, waited: float) -> None:
        """A call got its permit after waiting ``waited`` seconds (0: at once).

        Fires for every permit, immediate or queued."""

    def refused(self, endpoint: str, reason: str, retry_after: float) -> None:
        """A call got no permit: ``reason`` is ``"throttled"`` (no room within
        ``max_wait``) or ``"banned"``; ``retry_after`` seconds is the earliest retry."""

    def frozen(self, pool: str, until: float, reason: str) -> None:
        """A pool stops until Binance epoch ``until`` (a 429 or a ban)."""

    def usage(self, pool: str, used: int, limit: int) -> None:
        """Binance reported weight spent elsewhere; ``used`` is the new count."""

    def answered(self, endpoint: str, status: int | None, seconds: float | None) -> None:
        """A permitted request's answer came: HTTP ``status`` after ``seconds`` (None and
        None: no answer, a timeout or a dropped connection). Fires for every request
        written, 429s and 418s included."""

    def transferred(self, endpoint: str, outcome: str, seconds: float) -> None:
        """A client's mutating call ended after ``seconds``, however it ended.

        ``outcome`` is one word: ``done``, ``refused``, ``unknown``,
        ``not_executed``, ``throttled``, ``banned``, ``rate_limited``,
        ``invalid``, ``closed``, ``cancelled`` or ``error`` (as in the
        ``binance_transfers.transfers`` log record). Fired by the client."""


def overridden(hooks: GovernorHooks, name: str) -> Any:
    """The bound hook ``name`` if ``hooks`` overrides it, else None (a no-op costs nothing)."""
    method = getattr(type(hooks), name)
    return getattr(hooks, name) if method is not getattr(GovernorHooks, name) else None


class Governor(Feedback):
    """Admits requests so that no Binance limit is ever exceeded.

    One governor stands for one outgoing IP: every :class:`~binance_transfers.Client`
    that leaves through the same IP should share it, whatever its account
    (UID pools and rolling caps are kept per account inside it)::

        governor = Governor()
        async with Client(key_a, secret_a, governor=governor) as a, \\
                   Client(key_b, secret_b, governor=governor) as b:
            ...

    ``latency`` is the shortest bound assumed on a round trip when deciding
    which window a request may land in; the governor uses the 99th percentile
    of measured trips plus their spread when longer. ``grace`` is how long
    after it was written a request without an answer (a timeout, a dropped
    connection) may still land: the transport's read timeout. ``limits`` gives
    the pool sizes and windows.

    ``cold_start`` (the default with the in-process storage) makes a new
    governor careful: it cannot know what was spent before it existed (a
    restarted process's previous life, in the same window or rolling period).
    Until an answer tells it, each pool admits one request at a time; a usage
    header in the answer gives the true count, and pools without one (rolling
    caps) slow-start: one more at once per answer. It costs one round trip per
    pool at the start. A restarted process can also hand over what its journal
    knows with :meth:`seed`. Pass ``cold_start=False`` only when no other
    process can have spent weight in the current windows (tests). A shared
    ``storage`` (Redis) starts warm by default: its counts include what every
    process on it spent.

    A governor belongs to the event loop (and thread) it is first used in;
    using it from another raises :class:`ConfigurationError` before anything
    is charged. (The check is
    skipped only on the cached one-pool fast path, which never waits and is
    re-derived at least every window or 5 s, to keep it at its speed.)

    Two tables whose specs for the same pool disagree (limit, window) cannot
    share a governor: :class:`ConfigurationError` (weights may differ).
    """

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        clock: Clock | None = None,
        server_clock: ServerClock | None = None,
        latency: float = 0.5,
        storage: Storage | None = None,
        hooks: GovernorHooks | None = None,
        grace: float = 30.0,
        cold_start: bool | None = None,
    ) -> None:
        if latency < 0:
            raise ValueError("latency must be >= 0")
        if not grace >= 0:
            raise ValueError("grace must be >= 0")
        self.limits = limits if limits is not None else Limits()
        self.server_clock = server_clock if server_clock is not None else ServerClock(clock)
        self.latency = latency
        self.grace = grace
        self._born: float | None = None  # monotonic, at the first use
        window = self.limits.window
        self._trips = Trips(latency, span=10 * window)
        self._horizon = min(max(window / 8, 0.05), 5.0)  # how long one geometry holds
        self.storage: Storage = storage if storage is not None else MemoryStorage()
        # A shared storage (Redis) holds what every process on it spent, a
        # restarted one's previous life included: only a process's own counts start blind.
        self.cold_start = (
            cold_start if cold_start is not None else isinstance(self.storage, MemoryStorage)
        )
        self.hooks = hooks if hooks is not None else GovernorHooks()
        self._on_admitted = overridden(self.hooks, "admitted")
        self._on_refused = overridden(self.hooks, "refused")
        self._on_answered = overridden(self.hooks, "answered")
        self._monotonic = self.server_clock.clock.monotonic
        self._pools: dict[str, Pool] = {}
        self._plans: dict[str, dict[Endpoint, Plan]] = {}  # account -> endpoint -> plan
        # Idle per-account pools are forgotten when their count doubled, or
        # two windows after the last look (amortised, on pool creation only).
        self._sweep_at = 256
        self._swept = -INF
        self._waiters = {}
        self._seq = 0
        self._wake = {}
        self._leader = None
        self._timer_at = INF
        self._banned_until = -INF
        self._ip_frozen_until = -INF
        self._loop: Any = _UNBOUND  # the event loop it belongs to, bound on first use
        self._thread = 0
        self._delays: deque[float] = deque(maxlen=4096)
        self._writes = 0
        self._delay_max = 0.0
        # Derived from the server clock lazily (it may need a running loop),
        # then again after every resync, trip change, or as eps grows.
        self._geo_cache: Geometry | None = None
        self.server_clock.subscribe(self._refresh_geometry)
        # redis10: a shared storage's counters learn of leases asynchronously.
        self._link = StorageLink(
            self._capacity_arrived,
            self._server_now,
            self._landing,
            self._storage_froze,
            self._demand,  # redis10c: rolling caps lease for who waits
        )
        # redis10b: a shared storage publishes this process's 429/418 freezes.
        self._publish_freeze: Callable[[str, float], None] | None = getattr(
            self.storage, "frozen", None
        )

    # -- public API -----------------------------------------------------------

    async def acquire(
        self,
        endpoint: Endpoint,
        *,
        account: str = "default",
        max_wait: float | None = None,
        wait_on_ban: bool = False,
    ) -> Permit:
        """Wait for, and take, a permit to send one request to ``endpoint``.

        ``max_wait`` bounds the wait in seconds: when the permit cannot be had
        in time, :class:`ThrottledError` is raised at once if that is already
        known, else when the time is up; either way no weight is spent. During
        an IP ban :class:`IPBannedError` is raised at once unless
        ``wait_on_ban``. Cancelling the call leaves no trace.
        """
        plans = self._plans.get(account)
        plan = plans.get(endpoint) if plans is not None else None
        if plan is None:
            plan = self._plan(endpoint, account)
        now = self._monotonic()
        if now < self._banned_until and not wait_on_ban:
            raise self._refuse(endpoint, self._ban_error(now))
        g = self._geo_cache
        if len(plan) == 1:  # most endpoints: one pool, no list juggling
            pool, weight = plan[0]
            # A frozen pool never has a cached window (see _freeze).
            if pool._geo is g and pool._from <= now < pool._until and not pool.live:
                # Inlined FixedPool.take for its cached window: the hottest path.
                own = pool._try_add(pool._window, weight, pool.limit)
                if own is not None:
                    if self._on_admitted is not None:
                        self._hook(self._on_admitted, endpoint.name, 0.0)
                    return (endpoint, now, ((pool, weight, (pool._window, own)),))
            # Off the cached fast path (at least once a window, or 5 s): check the loop.
            if _get_running_loop() is not self._loop:
                self._check_owner()
            g = self._geometry(now)
            record = None if pool.live else pool.take(now, weight, g)
            if record is not None:
                if self._on_admitted is not None:
                    self._hook(self._on_admitted, endpoint.name, 0.0)
                return (endpoint, now, ((pool, weight, record),))
            return await self._acquire_slow(plan, endpoint, now, max_wait, wait_on_ban)
        if _get_running_loop() is not self._loop:
            self._check_owner()
        if g is None or now >= g.until:
            g = self._geometry(now)
        charges: list[Charge] = []
        for pool, weight in plan:
            record = None if pool.live else pool.take(now, weight, g)
            if record is None:
                for taken, w, rec in charges:  # all or nothing
                    taken.refund(rec, w, False)
                return await self._acquire_slow(plan, endpoint, now, max_wait, wait_on_ban)
            charges.append((pool, weight, record))
        if self._on_admitted is not None:
            self._hook(self._on_admitted, endpoint.name, 0.0)
        return (endpoint, now, charges)

    def seed(self, endpoint: Endpoint, sent: Iterable[float], *, account: str = "default") -> None:
        """Count requests to ``endpoint`` sent before this governor existed.

        ``sent`` are Binance epoch seconds (a journal's request ``timestamp`` / 1000)
        of every call of ``account`` to ``endpoint`` within its longest rolling cap
        before now, e.g. by a process that was killed and restarted. They count
        in the endpoint's rolling caps from then (plus the trip bound) for a
        period, and in the fixed windows they may have landed in. Its rolling
        caps are then warm (a complete history: no probing); its fixed pools
        still read the first answer's usage header. Call it before the first
        request, once per endpoint with caps.
        """
        now = self._monotonic()
        plan = self._plans.get(account, {}).get(endpoint) or self._plan(endpoint, account)
        g = self._geometry(now)
        times = [t - g.shift for t in sent]  # our monotonic clock
        for pool, weight in plan:
            if isinstance(pool, CapPool):
                pool.seed(times, now, g)
            elif isinstance(pool, FixedPool):
                pool.seed(times, weight, now, g)
        self._pump([pool for pool, _ in plan if pool.queue], now)

    def estimate(self, endpoint: Endpoint, *, account: str = "default") -> float:
        """Binance epoch seconds before which a call to ``endpoint`` cannot be admitted.

        A lower bound that counts the calls already queued ahead.
        """
        now = self._monotonic()
        plan = self._plans.get(account, {}).get(endpoint) or self._plan(endpoint, account)
        return self._geometry(now).shift + self._estimate(plan, now)

    def renew(self, permit: Permit) -> Permit | None:
        """The request of ``permit`` is being written now: call this once, at that moment.

        Re-bases the permit on the real sending time (the windows it may land
        in move with it) and marks it in flight: it stays charged until
        :meth:`observe` however late its answer. Returns the permit to use
        (and to observe), or None, having given the permit back, when a 429 or
        a ban came meanwhile or the new windows have no room: acquire again.
        """
        now = self._monotonic()
        endpoint, admitted, charged = permit
        delay = now - admitted
        self._delays.append(delay)
        self._writes += 1
        self._delay_max = max(self._delay_max, delay)
        if now < self._banned_until or any(now < pool.frozen_until for pool, _, _ in charged):
            # A 429 or a ban arrived while it waited to be sent: it must wait too.
            self.refund(permit)
            return None
        g = self._geometry(now)
        written = Written()
        for pool, weight, record in charged:
            renewed = pool.renew(record, weight, now, g)
            if renewed is None:
                for done, w, rec in written:
                    done.refund(rec, w, True)
                self.refund((endpoint, now, charged[len(written) :]))
                return None
            written.append((pool, weight, renewed))
        return (endpoint, now, written)

    def refund(self, permit: Permit) -> None:
        """Give a permit back: its request was provably never sent."""
        written = type(permit[2]) is Written
        for pool, weight, record in permit[2]:
            pool.refund(record, weight, written)
        self._pump([pool for pool, _, _ in permit[2]], self._monotonic())

    @property
    def banned_until(self) -> float | None:
        """Binance epoch seconds when the current IP ban ends, or None."""
        now = self._monotonic()
        if now < self._banned_until:
            return self._banned_until + self._geometry(now).shift
        return None

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
            clock_uncertainty=self.server_clock.uncertainty_at(now),
        )

    def __repr__(self) -> str:
        busy = sum(1 for p in self._pools.values() if p.live)
        return (
            f"<Governor pools={len(self._pools)} waiters={len(self._waiters)} "
            f"blocked_pools={busy} trip={self._trips.bound:.3f}s>"
        )

    # -- planning -------------------------------------------------------------

    def _check_owner(self) -> None:
        """First use binds the governor to this loop and thread; another one is refused."""
        loop, thread = _get_running_loop(), threading.get_ident()
        if self._loop is _UNBOUND:
            self._loop, self._thread = loop, thread
            return
        if loop is not self._loop or thread != self._thread:
            raise ConfigurationError(
                "this Governor is used from another event loop or thread than the one it "
                "was first used in: give each event loop its own Governor (and Client)"
            )

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
            plan.append((pool, spec.weight))
        result = tuple(plan)
        self._plans.setdefault(account, {})[endpoint] = result
        return result

    # -- redis10: what a shared storage asks of the governor ----------------------

    def _capacity_arrived(self, key: str) -> None:
        """A lease for pool ``key`` came (or a window opened): admit who can use it."""
        pool = self._pools.get(key)
        if pool is not None and pool.queue:
            self._pump([pool], self._monotonic())

    def _server_now(self) -> float:
        now = self._monotonic()
        return now + self._geometry(now).shift

    def _landing(self, period: float) -> tuple[int, int]:
        now = self._monotonic()
        g = self._geometry(now)
        return int((now + g.lo) // period), int((now + g.hi) // period)

    def _storage_froze(self, key: str, server_until: float) -> None:
        """Another process met a 429 (pool ``key``) or a 418 (``"*"``): stop too."""
        now = self._monotonic()
        until = server_until - self._geometry(now).shift
        if key == "*":
            self.ban(until)
        elif (pool := self._pools.get(key)) is not None:
            self._freeze(pool, until, "429 Too Many Requests (another process, shared storage)")

    def _demand(self, key: str) -> int:
        """redis10c: the weight waiting in pool ``key`` (a shared cap leases that much)."""
        pool = self._pools.get(key)
        return pool.queued if pool is not None else 0

    # -- end redis10 -------------------------------------------------------------

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

    def _refresh_geometry(self) -> Geometry:
        sc = self.server_clock
        reader = getattr(sc.clock, "reader", None)
        if reader is not None:  # LoopClock: skip a Python call per acquire
            self._monotonic = reader()
        now = self._monotonic()
        until = now + self._horizon
        trips = self._trips
        geo = Geometry(
            sc.shift,
            sc.uncertainty_at(until),
            # Half the trips' spread, but never more than 1 % of a window.
            max(GUARD_FLOOR, min(trips.jitter / 2, self.limits.window / 100)),
            trips.bound,
            until if sc.drift else INF,
        )
        self._geo_cache = geo
        return geo

    def _geometry(self, now: float) -> Geometry:
        g = self._geo_cache
        if g is None or now >= g.until:
            g = self._refresh_geometry()
        return g

    def _estimate(self, plan: Plan, now: float) -> float:
        g = self._geometry(now)
        return max(
            (pool.estimate(now, pool.queued + weight, g) for pool, weight in plan), default=now
        )

    # -- hooks and errors -------------------------------------------------------

    @staticmethod
    def _hook(method: Any, *args: Any) -> None:
        """Call a hook; one that raises is logged, never allowed to change an outcome.

        Hooks run between charging a pool and returning its permit, and while
        an answer is being read: an exception there would leak weight, or turn
        a confirmed transfer into an unknown one.
        """
        try:
            method(*args)
        except Exception:
            log.exception("governor hook %s() failed (ignored)", method.__name__)

    def _waited(self, endpoint: Endpoint, wait: float) -> None:
        self._hook(self.hooks.throttled, endpoint.name, wait)
        log.debug("%s waits for a permit (about %.3f s)", endpoint.name, wait)

    def _admitted(self, endpoint: Endpoint, waited: float) -> None:
        self._hook(self.hooks.admitted, endpoint.name, waited)
        waits = PERMIT_WAIT.get()  # runs in the caller's context (after its wait)
        if waits is not None:
            waits[0] += waited

    def _frozen_hook(self, pool: str, until: float, reason: str) -> None:
        self._hook(self.hooks.frozen, pool, until, reason)
        if self._publish_freeze is not None:  # redis10b: tell the other processes
            self._publish_freeze(pool, until)

    def _usage_hook(self, pool: str, used: int, limit: int) -> None:
        self._hook(self.hooks.usage, pool, used, limit)

    def _refuse(
        self, endpoint: Endpoint, error: ThrottledError | IPBannedError
    ) -> ThrottledError | IPBannedError:
        if self._on_refused is not None:
            reason = "banned" if isinstance(error, IPBannedError) else "throttled"
            self._hook(self._on_refused, endpoint.name, reason, error.retry_after)
        return error

    def _ban_error(self, now: float) -> IPBannedError:
        return IPBannedError(
            "IP banned by Binance (HTTP 418)",
            retry_at=self._banned_until + self._geometry(now).shift,
            retry_after=self._banned_until - now,
        )

    def _throttled(
        self, endpoint: Endpoint, plan: Plan, now: float, max_wait: float | None
    ) -> ThrottledError:
        at = self._estimate(plan, now)
        error = ThrottledError(
            f"{endpoint.name}: no permit within max_wait={_rounded(max_wait)} s",
            retry_at=at + self._geometry(now).shift,
            retry_after=max(at - now, 0.0),
        )
        self._refuse(endpoint, error)
        return error


def _landed(pool: Pool, now: float, g: Geometry, used: int) -> tuple[int, int]:
    """(landed, in flight) of a pool's current window, for ``snapshot()``."""
    if isinstance(pool, FixedPool):
        window = int((now + g.shift) // pool.period)
        return max(pool.peak.get(window, 0), pool.landed.get(window, 0)), pool.inflight
    if isinstance(pool, CapPool):
        in_flight = sum(1 for until in pool.calls if until == INF)
        return used - in_flight, in_flight
    return used, 0


def _only(names: set[str] | None) -> str | None:
    """The one endpoint drawing on a pool, or None when several share it."""
    return next(iter(names)) if names is not None and len(names) == 1 else None


def _shape(spec: PoolSpec) -> tuple[object, ...]:
    """What two specs of one pool must agree on (the weight is per endpoint)."""
    return (spec.kind, spec.limit, spec.period, spec.header, spec.per_ip)


def _rounded(seconds: float | None) -> float | None:
    """Seconds fit to print (a deadline's remainder reads 0.19999846800010346)."""
    return None if seconds is None else round(seconds, 3)
