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
import threading
from asyncio import _get_running_loop
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from .._clock import Clock, ServerClock
from .._endpoints import Endpoint
from .._exceptions import ConfigurationError
from .._limits import Limits
from .._storage import MemoryStorage, Storage, StorageLink
from ._geometry import GUARD_FLOOR, INF, RETRY_FLOOR, SPAN, Geometry, Trips, step_band
from ._hooks import PERMIT_WAIT, GovernorHooks, Reporting, overridden
from ._linked import Linked
from ._plans import Planning
from ._pools import CapPool, FixedPool, Pool
from ._queue import Charge, Permit, Plan, Written
from ._snapshot import GovernorStats, Introspection, PoolSnapshot

__all__ = [
    "PERMIT_WAIT",
    "Governor",
    "GovernorHooks",
    "GovernorStats",
    "Permit",
    "PoolSnapshot",
    "overridden",
]

log = logging.getLogger("binance_transfers.governor")

_UNBOUND: Any = object()


class Governor(Reporting, Introspection, Planning, Linked):
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
        self._trips = Trips(latency, span=SPAN * window)  # windows, not answers
        # endpoint -> its recent round trip (a running mean): when a refusal's call
        # is expected to have news (``_retry_at``). One median over every endpoint
        # told a fast pool's caller to come back after another endpoint's slow trips.
        self._rtt: dict[Endpoint, float] = {}
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
        # a shared storage's counters learn of leases asynchronously.
        self._link = StorageLink(
            self._capacity_arrived,
            self._server_now,
            self._landing,
            self._storage_froze,
            self._demand,  # rolling caps lease for who waits
            self._inflight,  # a shared counter claims it in the next window
        )
        # a shared storage publishes this process's 429/418 freezes.
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
        plan = self._plan_of(endpoint, account)
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
        plan = self._plan_of(endpoint, account)
        return self._geometry(now).shift + self._estimate(plan, now)

    def _cold(self, endpoint: Endpoint, account: str) -> bool:
        """Whether a request to ``endpoint`` now goes to a cold pool: its answer's
        usage header alone tells whether a previous life filled the window, and
        a written request never answered holds the pool until it warms."""
        return any(pool.cold for pool, _ in self._plan_of(endpoint, account))

    def _retry_epoch(self, endpoint: Endpoint, account: str) -> float:
        """Binance epoch seconds a refused call to ``endpoint`` should come back at
        (``_retry_at``; the transport's refusals at its write-ahead gate)."""
        now = self._monotonic()
        plan = self._plan_of(endpoint, account)
        return self._geometry(now).shift + self._retry_at(endpoint, plan, now)

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
        if delay > self._delay_max:
            self._delay_max = delay
        if now < self._banned_until:
            self.refund(permit)  # a ban arrived while it waited to be sent
            return None
        g = self._geo_cache
        if g is None or now >= g.until:
            g = self._refresh_geometry()
        if len(charged) == 1:  # most requests: one pool, no list of the renewed to unwind
            pool, weight, record = charged[0]
            renewed = None if now < pool.frozen_until else pool.renew(record, weight, now, g)
            if renewed is None:  # a 429 arrived while it waited, or no room where it lands now
                self.refund(permit)
                return None
            return (endpoint, now, Written([(pool, weight, renewed)]))
        if any(now < pool.frozen_until for pool, _, _ in charged):
            # A 429 arrived while it waited to be sent: it must wait too.
            self.refund(permit)
            return None
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
        charged = permit[2]
        written = type(charged) is Written
        for pool, weight, record in charged:
            pool.refund(record, weight, written)
        self._pump([pool for pool, _, _ in charged], self._monotonic())

    @property
    def banned_until(self) -> float | None:
        """Binance epoch seconds when the current IP ban ends, or None."""
        now = self._monotonic()
        if now < self._banned_until:
            return self._banned_until + self._geometry(now).shift
        return None

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

    def _refresh_geometry(self) -> Geometry:
        sc = self.server_clock
        reader = getattr(sc.clock, "reader", None)
        if reader is not None:  # LoopClock: skip a Python call per acquire
            self._monotonic = reader()
        now = self._monotonic()
        until = now + self._horizon
        trips = self._trips
        # Half the trips' spread, but never more than 1 % of a window.
        guard = max(GUARD_FLOOR, min(trips.jitter / 2, self.limits.window / 100))
        step = step_band(self.limits.window)  # a step of Binance's clock
        geo = Geometry(
            sc.shift,
            sc.uncertainty_at(until) + step,
            guard,
            trips.bound,
            until if sc.drift else INF,
            lag=trips.p99 + 4 * guard,
            step=step,
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
            (pool.estimate(now, pool.queued + weight, g, weight) for pool, weight in plan),
            default=now,
        )

    def _retry_at(self, endpoint: Endpoint, plan: Plan, now: float) -> float:
        """When a refused call should come back: ``_estimate``, unless that says now.

        ``_estimate`` is a lower bound (``acquire`` refuses at once on it), and
        says now where an answer of ours still out may free the call any
        moment: a cold pool's first request, a shared window's report. Told
        now, a caller obeying it was refused again in the same instant, a busy
        loop until the answer. Told the answer's due time instead (the trip
        bound there was too late: 0.5 s where it came in 0.05 s): a typical
        round trip after the oldest of ours was written (or from now, before
        it is); overdue, a retry as long again, at most a trip bound away.
        """
        at = self._estimate(plan, now)
        if at > now:
            return at
        typical = self._typical_trip(endpoint)
        sent = min(
            (t for pool, _ in plan if isinstance(pool, FixedPool) for t, _ in pool.flying.values()),
            default=now,
        )
        due = sent + typical
        if due > now:
            return max(due, now + RETRY_FLOOR)
        # Overdue: as long again as it has taken so far (a few retries for an
        # answer slower than guessed: 85 for five callers at a 0.02-s guess where
        # it took 0.4), but no longer than the trip bound (told 10 s for an
        # answer 10 s late that came 0.1 s later).
        return now + max(typical, min(now - sent, self._geometry(now).trip))

    def _typical_trip(self, endpoint: Endpoint) -> float:
        """Seconds a request to ``endpoint`` is expected to take (a retry's pace).

        Its own recent round trips; before any, the shorter of the median of
        every endpoint's and the clock sync's (a caller told too early is
        refused once more; one told too late waits for nothing); before any
        of those, the assumed bound (``latency``). At least ``RETRY_FLOOR``.
        """
        trip = self._rtt.get(endpoint)
        if trip is None:
            known = [] if not self._trips.samples else [self._trips.typical()]
            if self.server_clock.round_trip is not None:
                known.append(self.server_clock.round_trip)
            trip = min(known) if known else self.latency
        return max(trip, RETRY_FLOOR)
