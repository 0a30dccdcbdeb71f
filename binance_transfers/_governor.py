"""The rate-limit governor: every request waits here for a permit.

Binance counts weight in fixed windows aligned to its clock (the minute resets
at :00). A token bucket sized to the limit admits a full burst and then a
minute of refill inside the same window (nearly twice the limit, a 429). The
governor instead charges each request to every server window it may *land*
in: sent at our time ``t``, it arrives somewhere in ``[t - eps, t + latency +
eps]`` on Binance's clock (``eps`` being the uncertainty of our estimate of
that clock). Near a boundary that is two windows; once the answer comes back
the window it could not have landed in is given back. So no server window is
ever sent more than its limit, and steady demand still gets ~all of it.

Rolling caps (500 auto-collections an hour) are true sliding windows over
admission times, widened by the same arrival uncertainty.

Waiting:

* Each pool has a FIFO queue; a call waits in the queue of its most exclusive
  pool first (rolling cap, then UID, then the endpoint's /sapi bucket, then the
  shared /api or /papi pool) and moves on when that pool could take it, so a
  call stuck behind an exhausted hourly cap never holds up the shared pool.
* Admission is atomic over all of a call's pools: all or nothing, nothing
  held while waiting.
* No polling: one waiter at a time (the leader) sleeps until the earliest
  moment any blocked pool could admit its head; everybody else sleeps on an
  event. Cancelled waiters leave at once and cost nothing.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import attrs

from ._clock import Clock, ServerClock
from ._endpoints import Endpoint
from ._exceptions import ConfigurationError, IPBannedError, ThrottledError
from ._exceptions import _iso as _fmt
from ._limits import Limits, PoolKind, PoolSpec, pools_for
from ._storage import CallCounter, MemoryStorage, Storage, WindowCounter

__all__ = ["Governor", "GovernorHooks", "Permit", "PoolSnapshot"]

log = logging.getLogger("binance_transfers.governor")

_INF = math.inf
_TRIP_MEMORY = 60.0  # seconds of round trips that bound how late a request may land
# Float epoch seconds have ~0.24 us resolution; step past a boundary by more.
_NUDGE = 1e-6


class _Geometry:
    """Where a request sent now may land on Binance's clock."""

    __slots__ = ("eps", "hi", "lo", "margin", "shift")

    def __init__(self, shift: float, eps: float, latency: float) -> None:
        self.shift = shift  # server epoch = monotonic + shift
        self.eps = eps  # uncertainty of shift
        self.lo = shift - eps  # earliest landing = now + lo
        self.hi = shift + latency + eps  # latest landing = now + hi
        self.margin = latency + 2 * eps  # width of the landing interval


class _Pool:
    """A pool's queue and freeze state; subclasses count."""

    __slots__ = (
        "_from",
        "_geo",
        "_try_add",
        "_until",
        "_window",
        "frozen_until",
        "key",
        "limit",
        "live",
        "passed",
        "period",
        "queue",
        "queued",
        "spec",
    )

    def __init__(self, spec: PoolSpec) -> None:
        # Fixed pools cache the one window a request sent in [_from, _until)
        # under geometry _geo can land in, so the hot path does no arithmetic.
        self._geo: _Geometry | None = None
        self._from = self._until = 0.0
        self._window = 0
        self._try_add: Any = None
        self.spec = spec
        self.key = spec.key
        self.limit = spec.limit
        self.period = spec.period
        self.queue: deque[_Waiter] = deque()
        self.live = 0  # waiters in the queue that are still waiting
        self.queued = 0  # their total weight
        # Weight of waiters that got past this pool's queue and now wait in a
        # later one: held back from the next waiters, not charged yet.
        self.passed = 0
        self.frozen_until = -_INF

    def ready_at(self, now: float, weight: int, g: _Geometry) -> float:
        """Earliest time >= now at which this pool could take ``weight``."""
        raise NotImplementedError

    def take(self, now: float, weight: int, g: _Geometry) -> Any | None:
        """Charge ``weight`` now if ``ready_at(now) == now``, else None: the hot path."""
        raise NotImplementedError

    def charge(self, now: float, weight: int, g: _Geometry) -> Any:
        """Charge ``weight`` now, known to fit."""
        raise NotImplementedError

    def refund(self, record: Any, weight: int) -> None:
        raise NotImplementedError

    def renew(self, record: Any, weight: int, now: float, g: _Geometry) -> Any | None:
        """Re-charge for a send at ``now`` rather than at admission; None if no room."""
        raise NotImplementedError

    def settle(
        self,
        record: Any,
        weight: int,
        sent: float,
        received: float,
        headers: Any,
        g: _Geometry,
        answered: bool,
    ) -> tuple[bool, int]:
        """Correct the count once the answer is in: (capacity came back, weight
        Binance reports as spent elsewhere)."""
        return False, 0

    def estimate(self, now: float, total: int, g: _Geometry) -> float:
        """A lower bound on when ``total`` more weight could have been admitted."""
        raise NotImplementedError

    def freeze_default(self, now: float, g: _Geometry) -> float:
        """Until when to stop after a 429 that came without ``Retry-After``."""
        raise NotImplementedError

    def usage(self, now: float, g: _Geometry) -> tuple[int, float]:
        """(used now, server epoch when that count next drops)."""
        raise NotImplementedError


class _FixedPool(_Pool):
    """Weight per fixed window, windows aligned to Binance's clock."""

    __slots__ = ("counter",)

    def __init__(self, spec: PoolSpec, counter: WindowCounter) -> None:
        super().__init__(spec)
        self.counter = counter
        self._try_add = counter.try_add

    def ready_at(self, now: float, weight: int, g: _Geometry) -> float:
        if weight > self.limit:
            return _INF  # until some of what is held back is charged
        p, cap, used = self.period, self.limit - weight, self.counter.used
        t = max(now, self.frozen_until)
        lo_shift, hi_shift = g.lo, g.hi
        while True:
            lo, hi = int((t + lo_shift) // p), int((t + hi_shift) // p)
            full = next((i for i in range(hi, lo - 1, -1) if used(i) > cap), None)
            if full is None:
                return t
            # Wait until the earliest possible landing time is past window `full`.
            t = (full + 1) * p - lo_shift + _NUDGE

    def take(self, now: float, weight: int, g: _Geometry) -> tuple[int, ...] | None:
        if now < self.frozen_until:
            return None
        if self._geo is g and self._from <= now < self._until:
            window = self._window
            own = self.counter.try_add(window, weight, self.limit)
            return None if own is None else (window, own)
        p = self.period
        lo, hi = int((now + g.lo) // p), int((now + g.hi) // p)
        if lo == hi:
            self._geo, self._window = g, lo
            self._from = lo * p - g.lo + _NUDGE
            self._until = (lo + 1) * p - g.hi - _NUDGE
        if self.ready_at(now, weight, g) > now:
            return None
        return self.charge(now, weight, g)

    def charge(self, now: float, weight: int, g: _Geometry) -> tuple[int, ...]:
        p, add = self.period, self.counter.add
        lo, hi = int((now + g.lo) // p), int((now + g.hi) // p)
        if lo == hi:
            return (lo, add(lo, weight))
        return tuple(x for i in range(lo, hi + 1) for x in (i, add(i, weight)))

    def refund(self, record: tuple[int, ...], weight: int) -> None:
        for window in record[::2]:
            self.counter.remove(window, weight)

    def renew(
        self, record: tuple[int, ...], weight: int, now: float, g: _Geometry
    ) -> tuple[int, ...] | None:
        p, counter = self.period, self.counter
        lo, hi = int((now + g.lo) // p), int((now + g.hi) // p)
        have = set(record[::2])
        extra = [i for i in range(lo, hi + 1) if i not in have]
        if extra:
            if now < self.frozen_until:
                return None
            cap = self.limit - weight
            if any(counter.used(i) > cap for i in extra):
                return None
        kept: list[int] = []
        for window, own in _pairs(record):
            if window < lo:  # sent too late to land there any more
                counter.remove(window, weight)
            else:
                kept += (window, own)
        for i in extra:
            kept += (i, counter.add(i, weight))
        return tuple(kept)

    def settle(
        self,
        record: tuple[int, ...],
        weight: int,
        sent: float,
        received: float,
        headers: Any,
        g: _Geometry,
        answered: bool,
    ) -> tuple[bool, int]:
        p = self.period
        # It reached Binance after we sent it and before we heard back.
        first = int((sent + g.lo) // p)
        last = int((received + g.shift + g.eps) // p)
        charged = list(_pairs(record))
        have = {window for window, _ in charged}
        # Slower than the trip assumed at admission (a busy loop, a slow
        # network): it may have landed in a window never charged. Count it
        # there now, so our count of that window is never below Binance's.
        charged += [
            (window, self.counter.add(window, weight))
            for window in range(first, last + 1)
            if window not in have
        ]
        possible = [(w, own) for w, own in charged if first <= w <= last]
        freed = False
        for window, _ in charged:
            # Not before it was sent; not after its answer (without one, it may still land).
            if window < first or (answered and window > last):
                self.counter.remove(window, weight)
                freed = True
        header = self.spec.header
        reported = headers.get(header) if header is not None else None
        if reported is None:
            return freed, 0
        try:
            value = int(reported)
        except ValueError:
            log.warning("ignoring unreadable %s header: %r", header, reported)
            return freed, 0
        if len(possible) == 1:
            window, own = possible[0]
        else:
            middle = int(((sent + received) / 2 + g.shift) // p)
            window, own = next(((w, o) for w, o in possible if w == middle), possible[-1])
        rose = self.counter.report(window, value, own)
        if rose:
            log.debug("%s: Binance reports %d used; %d spent elsewhere", self.key, value, rose)
        return freed, rose

    def estimate(self, now: float, total: int, g: _Geometry) -> float:
        p = self.period
        t = max(now, self.frozen_until)
        lo, hi = int((t + g.lo) // p), int((t + g.hi) // p)
        room = self.limit - max(self.counter.used(i) for i in range(lo, hi + 1))
        if total <= room:
            return t
        windows = math.ceil((total - max(room, 0)) / self.limit)
        return (hi + windows) * p - g.lo + _NUDGE

    def freeze_default(self, now: float, g: _Geometry) -> float:
        p = self.period
        return (int((now + g.hi) // p) + 1) * p - g.lo + _NUDGE

    def usage(self, now: float, g: _Geometry) -> tuple[int, float]:
        p = self.period
        window = int((now + g.shift) // p)
        return self.counter.used(window), (window + 1) * p


def _pairs(record: tuple[int, ...]) -> zip[tuple[int, int]]:
    return zip(record[::2], record[1::2], strict=True)


def _had_room(pool: _Pool, weight: int, headers: Mapping[str, str] | None) -> bool:
    """A 429's usage header shows this pool could still have taken the request."""
    header = pool.spec.header
    if header is None or not headers:
        return False
    try:
        return int(headers.get(header, "")) + weight <= pool.limit
    except ValueError:
        return False


class _CapPool(_Pool):
    """Calls in a rolling window: admission times, oldest first."""

    __slots__ = ("calls",)

    def __init__(self, spec: PoolSpec, calls: CallCounter) -> None:
        super().__init__(spec)
        self.calls = calls

    def ready_at(self, now: float, weight: int, g: _Geometry) -> float:
        if weight > self.limit:
            return _INF  # until some of what is held back is charged
        t = max(now, self.frozen_until)
        horizon = self.period + g.margin
        calls = self.calls
        calls.prune(now - horizon)
        excess = len(calls) + weight - self.limit
        if excess <= 0:
            return t
        return max(t, calls[excess - 1] + horizon + _NUDGE)

    def charge(self, now: float, weight: int, g: _Geometry) -> float:
        self.calls.add(now)
        return now

    def take(self, now: float, weight: int, g: _Geometry) -> float | None:
        if now < self.frozen_until:
            return None
        calls = self.calls
        calls.prune(now - self.period - g.margin)
        if len(calls) + weight > self.limit:
            return None
        calls.add(now)
        return now

    def refund(self, record: float, weight: int) -> None:
        self.calls.remove(record)

    def renew(self, record: float, weight: int, now: float, g: _Geometry) -> float | None:
        if record == now:
            return record
        if now < self.frozen_until:
            return None
        # Moving our own call later never lets more calls into any rolling window.
        self.calls.remove(record)
        self.calls.add(now)
        return now

    def estimate(self, now: float, total: int, g: _Geometry) -> float:
        horizon = self.period + g.margin
        calls = self.calls
        calls.prune(now - horizon)
        t = max(now, self.frozen_until)
        excess = len(calls) + total - self.limit
        if excess <= 0:
            return t
        if excess <= len(calls):
            return max(t, calls[excess - 1] + horizon + _NUDGE)
        rounds = math.ceil((excess - len(calls)) / self.limit)
        return max(t, (calls[-1] if calls else now) + rounds * horizon + _NUDGE)

    def freeze_default(self, now: float, g: _Geometry) -> float:
        horizon = self.period + g.margin
        return (self.calls[0] + horizon + _NUDGE) if len(self.calls) else now

    def usage(self, now: float, g: _Geometry) -> tuple[int, float]:
        horizon = self.period + g.margin
        self.calls.prune(now - horizon)
        n = len(self.calls)
        return n, g.shift + (self.calls[0] + horizon if n else now)


_Plan = tuple[tuple[_Pool, int], ...]


#: What one call took from one pool: (pool, weight, record). A fixed pool's
#: record is flat (window, our units there after it, window, ...); a cap's is
#: the admission time.
_Charge = tuple["_Pool", int, Any]

Permit = tuple[Endpoint, float, Sequence[_Charge]]
"""Proof that one request may be sent now: hand it back to :meth:`Governor.observe`.

Opaque: (endpoint, monotonic admission time, what was charged where). A bare
tuple because the uncontended acquire builds one per call, and nothing in
Python is cheaper to build.
"""


class _Waiter:
    __slots__ = (
        "done",
        "endpoint",
        "error",
        "event",
        "permit",
        "plan",
        "seq",
        "since",
        "stage",
        "wait_on_ban",
    )

    def __init__(self, seq: int, plan: _Plan, endpoint: Endpoint, since: float, wait_on_ban: bool):
        self.seq = seq
        self.plan = plan
        self.endpoint = endpoint
        self.since = since
        self.wait_on_ban = wait_on_ban
        self.stage = 0
        self.event = anyio.Event()
        self.permit: Permit | None = None
        self.error: BaseException | None = None
        self.done = False


@attrs.frozen(kw_only=True)
class PoolSnapshot:
    """One pool as the governor sees it."""

    key: str
    kind: PoolKind
    limit: int
    used: int
    """Weight (or calls, for a rolling cap) counted in the current window."""
    resets_at: float
    """Binance epoch seconds when ``used`` next drops (window end, oldest call expiring)."""
    waiters: int
    frozen_until: float | None
    """Binance epoch seconds until which nothing is sent (429 or ban), if frozen."""


class GovernorHooks:
    """Subclass and override what you want to measure; every method is a no-op.

    Hooks run synchronously inside the governor: keep them short.
    """

    def throttled(self, endpoint: str, wait: float) -> None:
        """A call has to wait an estimated ``wait`` seconds for a permit."""

    def admitted(self, endpoint: str, waited: float) -> None:
        """A call got its permit after waiting ``waited`` seconds (0: at once)."""

    def frozen(self, pool: str, until: float, reason: str) -> None:
        """A pool stops until Binance epoch ``until`` (a 429 or a ban)."""

    def usage(self, pool: str, used: int, limit: int) -> None:
        """Binance reported weight spent elsewhere; ``used`` is the new count."""


class Governor:
    """Admits requests so that no Binance limit is ever exceeded.

    One governor stands for one outgoing IP: every :class:`~binance_transfers.Client`
    that leaves through the same IP should share it, whatever its account
    (UID pools and rolling caps are kept per account inside it)::

        governor = Governor()
        async with Client(key_a, secret_a, governor=governor) as a, \\
                   Client(key_b, secret_b, governor=governor) as b:
            ...

    ``latency`` is the shortest bound assumed on how long a request takes to
    reach Binance when deciding which window it may land in; the governor
    lengthens it whenever answers take longer (a slow network, a busy event
    loop). ``limits`` gives the pool sizes and windows.
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
    ) -> None:
        if latency < 0:
            raise ValueError("latency must be >= 0")
        self.limits = limits if limits is not None else Limits()
        self.server_clock = server_clock if server_clock is not None else ServerClock(clock)
        self.latency = latency
        # The trip bound in use: `latency`, or longer when answers take longer.
        self._trip = latency
        self._trips: deque[tuple[float, float]] = deque()
        self.storage: Storage = storage if storage is not None else MemoryStorage()
        self.hooks = hooks if hooks is not None else GovernorHooks()
        self._monotonic = self.server_clock.clock.monotonic
        self._pools: dict[str, _Pool] = {}
        self._plans: dict[str, dict[Endpoint, _Plan]] = {}  # account -> endpoint -> plan
        self._waiters: dict[int, _Waiter] = {}
        self._seq = 0
        self._wake: dict[_Pool, float] = {}  # pools whose head is blocked -> when it may go
        self._leader: _Waiter | None = None
        self._timer_at = _INF
        self._banned_until = -_INF
        # Derived from the server clock lazily (it may need a running loop),
        # then again after every resync.
        self._geo_cache: _Geometry | None = None
        self.server_clock.subscribe(self._refresh_geometry)

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
            raise self._ban_error(now)
        g = self._geo_cache or self._refresh_geometry()
        if len(plan) == 1:  # most endpoints: one pool, no list juggling
            pool, weight = plan[0]
            # A frozen pool never has a cached window (see _freeze).
            if pool._geo is g and pool._from <= now < pool._until and not pool.live:
                # Inlined _FixedPool.take for its cached window: the hottest path.
                own = pool._try_add(pool._window, weight, pool.limit)
                if own is not None:
                    return (endpoint, now, ((pool, weight, (pool._window, own)),))
            record = None if pool.live else pool.take(now, weight, g)
            if record is not None:
                return (endpoint, now, ((pool, weight, record),))
            return await self._acquire_slow(plan, endpoint, now, max_wait, wait_on_ban)
        charges: list[_Charge] = []
        for pool, weight in plan:
            record = None if pool.live else pool.take(now, weight, g)
            if record is None:
                for taken, w, rec in charges:  # all or nothing
                    taken.refund(rec, w)
                return await self._acquire_slow(plan, endpoint, now, max_wait, wait_on_ban)
            charges.append((pool, weight, record))
        return (endpoint, now, charges)

    def estimate(self, endpoint: Endpoint, *, account: str = "default") -> float:
        """Binance epoch seconds before which a call to ``endpoint`` cannot be admitted.

        A lower bound that counts the calls already queued ahead.
        """
        now = self._monotonic()
        plan = self._plans.get(account, {}).get(endpoint) or self._plan(endpoint, account)
        return self._geo.shift + self._estimate(plan, now)

    def observe(
        self,
        permit: Permit,
        *,
        sent: float,
        received: float | None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        banned_until: float | None = None,
    ) -> None:
        """Learn from the answer to a permitted request.

        ``sent``/``received`` are monotonic times (``received`` is None when no
        answer came). Usage headers raise the counts to what Binance reports;
        a 429 stops the request's pools for ``retry_after`` seconds (or to the
        window's end); a 418 stops everything until ``banned_until`` (Binance
        epoch seconds) or ``retry_after``.
        """
        g = self._geo
        freed: list[_Pool] = []
        now = self._monotonic()
        if received is not None:
            self._note_trip(received - sent, received)
        # Unanswered (a timeout, a drop): it has landed by now, or never will.
        # (Its trip is not a round trip, and would inflate the bound for nothing.)
        landed_by = received if received is not None else now
        for pool, weight, record in permit[2]:
            gave_back, rose = pool.settle(
                record, weight, sent, landed_by, headers or {}, g, received is not None
            )
            if gave_back:
                freed.append(pool)
            if rose:
                used, _ = pool.usage(landed_by, g)
                self.hooks.usage(pool.key, used, pool.limit)
        if status == 429:
            for pool, weight, _ in permit[2]:
                if _had_room(pool, weight, headers):
                    continue  # Binance says this pool had room: another one was broken
                until = (
                    now + retry_after if retry_after is not None else pool.freeze_default(now, g)
                )
                self._freeze(pool, until, "429 Too Many Requests")
        elif status == 418:
            if banned_until is not None:
                until = banned_until - g.shift
            elif retry_after is not None:
                until = now + retry_after
            else:  # Binance's shortest ban
                until = now + 120.0 / self.limits.time_scale
            self.ban(until)
        if freed:
            self._pump(freed, now)

    def _note_trip(self, trip: float, now: float) -> None:
        """Keep the assumed trip at least as long as every round trip of the last minute.

        A request lands after it is sent and before its answer comes back, so
        the longest recent round trip bounds how late one sent now may land.
        A longer trip raises the bound at once; it relaxes (never below
        ``latency``) only as slow answers age out of the last minute, because
        what slowed them (a burst, a busy loop) tends to come back.
        """
        trips = self._trips  # (time, trip), trips decreasing: a sliding-window maximum
        while trips and trips[-1][1] <= trip:
            trips.pop()
        trips.append((now, trip))
        while trips[0][0] <= now - _TRIP_MEMORY:
            trips.popleft()
        bound = max(self.latency, trips[0][1])
        if bound > self._trip:
            if bound > 2 * self._trip:
                log.warning(
                    "answers take %.3f s, longer than the %.3f s assumed; assuming %.3f s now",
                    trip,
                    self._trip,
                    bound,
                )
            self._trip = bound
            self._refresh_geometry()
        elif bound < 0.9 * self._trip:
            self._trip = bound
            self._refresh_geometry()

    def renew(self, permit: Permit) -> Permit | None:
        """Re-base ``permit`` on the moment its request is really sent.

        Between admission and sending a request may wait (for a connection);
        the windows it may land in move with it. Returns the permit to use, or
        None, having given the permit back, when those windows have no room:
        acquire again.
        """
        now = self._monotonic()
        endpoint, admitted, charged = permit
        if now < self._banned_until or any(now < pool.frozen_until for pool, _, _ in charged):
            # A 429 or a ban arrived while it waited to be sent: it must wait too.
            self.refund(permit)
            return None
        if now == admitted:
            return permit
        g = self._geo
        charges = list(charged)
        for i, (pool, weight, record) in enumerate(charges):
            renewed = pool.renew(record, weight, now, g)
            if renewed is None:
                self.refund((endpoint, now, charges))
                return None
            charges[i] = (pool, weight, renewed)
        return (endpoint, now, charges)

    def refund(self, permit: Permit) -> None:
        """Give a permit back: its request was provably never sent."""
        for pool, weight, record in permit[2]:
            pool.refund(record, weight)
        self._pump([pool for pool, _, _ in permit[2]], self._monotonic())

    def ban(self, until: float) -> None:
        """Stop every pool of this IP until monotonic ``until`` (a 418)."""
        if until <= self._banned_until:
            return
        self._banned_until = until
        server_until = until + self._geo.shift
        log.error("IP banned by Binance until %s", _fmt(server_until))
        self.hooks.frozen("*", server_until, "418 IP banned")
        for pool in self._pools.values():
            pool.frozen_until = max(pool.frozen_until, until)
            pool._geo = None
        now = self._monotonic()
        for waiter in list(self._waiters.values()):
            if not waiter.wait_on_ban:
                waiter.error = self._ban_error(now)
                self._leave(waiter)
                waiter.event.set()
        self._pump([p for p in self._pools.values() if p.queue], now)

    @property
    def banned_until(self) -> float | None:
        """Binance epoch seconds when the current IP ban ends, or None."""
        if self._monotonic() < self._banned_until:
            return self._banned_until + self._geo.shift
        return None

    def snapshot(self) -> tuple[PoolSnapshot, ...]:
        """Every pool: usage, limit, next reset, waiters, freeze."""
        now = self._monotonic()
        g = self._geo
        out = []
        for pool in self._pools.values():
            used, resets = pool.usage(now, g)
            out.append(
                PoolSnapshot(
                    key=pool.key,
                    kind=pool.spec.kind,
                    limit=pool.limit,
                    used=used,
                    resets_at=resets,
                    waiters=pool.live,
                    frozen_until=pool.frozen_until + g.shift if pool.frozen_until > now else None,
                )
            )
        return tuple(out)

    def __repr__(self) -> str:
        busy = sum(1 for p in self._pools.values() if p.live)
        return (
            f"<Governor pools={len(self._pools)} waiters={len(self._waiters)} "
            f"blocked_pools={busy} trip={self._trip:.3f}s>"
        )

    # -- planning -------------------------------------------------------------

    def _plan(self, endpoint: Endpoint, account: str) -> _Plan:
        plan = []
        for spec in pools_for(endpoint, self.limits, account):
            pool = self._pools.get(spec.key)
            if pool is None:
                if spec.kind is PoolKind.CAP:
                    pool = _CapPool(spec, self.storage.call_counter(spec.key))
                else:
                    pool = _FixedPool(spec, self.storage.window_counter(spec.key))
                pool.frozen_until = self._banned_until  # a ban covers every pool of the IP
                self._pools[spec.key] = pool
            if spec.weight > pool.limit:
                raise ConfigurationError(
                    f"{endpoint.name} weighs {spec.weight} but pool {spec.key!r} "
                    f"only allows {pool.limit}: it could never be sent"
                )
            plan.append((pool, spec.weight))
        result = tuple(plan)
        self._plans.setdefault(account, {})[endpoint] = result
        return result

    def _refresh_geometry(self) -> _Geometry:
        sc = self.server_clock
        reader = getattr(sc.clock, "reader", None)
        if reader is not None:  # LoopClock: skip a Python call per acquire
            self._monotonic = reader()
        geo = self._geo_cache = _Geometry(sc.shift, sc.uncertainty, self._trip)
        return geo

    @property
    def _geo(self) -> _Geometry:
        return self._geo_cache or self._refresh_geometry()

    def _estimate(self, plan: _Plan, now: float) -> float:
        g = self._geo
        return max(
            (pool.estimate(now, pool.queued + weight, g) for pool, weight in plan), default=now
        )

    # -- waiting --------------------------------------------------------------

    async def _acquire_slow(
        self,
        plan: _Plan,
        endpoint: Endpoint,
        now: float,
        max_wait: float | None,
        wait_on_ban: bool,
    ) -> Permit:
        estimate = self._estimate(plan, now)
        if max_wait is not None and estimate - now > max_wait:
            raise self._throttled(endpoint, plan, now, max_wait)
        self.hooks.throttled(endpoint.name, estimate - now)
        log.debug("%s waits for a permit (about %.3f s)", endpoint.name, estimate - now)
        self._seq += 1
        waiter = _Waiter(self._seq, plan, endpoint, now, wait_on_ban)
        self._waiters[waiter.seq] = waiter
        self._enqueue(waiter, 0)
        self._pump([plan[0][0]], now)
        returned = False
        try:
            if waiter.permit is None and waiter.error is None:
                if max_wait is None:
                    await self._wait(waiter)
                else:
                    with anyio.move_on_after(max_wait - (self._monotonic() - now)):
                        await self._wait(waiter)
            if waiter.error is not None:
                raise waiter.error
            if waiter.permit is None:
                raise self._throttled(endpoint, plan, self._monotonic(), max_wait)
            returned = True
            self.hooks.admitted(endpoint.name, waiter.permit[1] - now)
            return waiter.permit
        finally:
            if not returned:
                self._abandon(waiter)

    async def _wait(self, waiter: _Waiter) -> None:
        while waiter.permit is None and waiter.error is None:
            event = waiter.event = anyio.Event()
            if self._leader is None:
                self._leader = waiter
            if self._leader is not waiter:
                await event.wait()
                continue
            # The leader sleeps until the earliest moment a blocked pool may move.
            target = min(self._wake.values(), default=_INF)
            self._timer_at = target
            if target == _INF:
                await event.wait()
                continue
            with anyio.move_on_after(target - self._monotonic()):
                await event.wait()
            if not event.is_set():
                self._timer_at = _INF
                now = self._monotonic()
                self._pump([p for p, at in self._wake.items() if at <= now], now)

    def _abandon(self, waiter: _Waiter) -> None:
        """The caller of ``waiter`` is gone (cancelled, timed out, ban error)."""
        if waiter.permit is not None:
            # Admitted in the same instant the caller went away: nothing was sent.
            self.refund(waiter.permit)
            waiter.permit = None
            return
        if not waiter.done:
            freed = self._leave(waiter)
            if freed:
                self._pump(freed, self._monotonic())
        if self._leader is waiter:
            self._leader = None
            self._elect()

    def _unpass(self, waiter: _Waiter, start: int, stop: int) -> None:
        """Release what stages ``start``..``stop - 1`` held back for ``waiter``."""
        for pool, weight in waiter.plan[start:stop]:
            pool.passed -= weight

    def _leave(self, waiter: _Waiter) -> list[_Pool]:
        """Take ``waiter`` out; return the pools that may now admit others."""
        # Lazy removal: the queue drops done waiters when they reach its head.
        waiter.done = True
        self._waiters.pop(waiter.seq, None)
        self._unpass(waiter, 0, waiter.stage)
        pool, weight = waiter.plan[waiter.stage]
        pool.live -= 1
        pool.queued -= weight
        head = bool(pool.queue) and pool.queue[0] is waiter
        if len(pool.queue) > 64 and len(pool.queue) > 2 * pool.live:
            pool.queue = deque(w for w in pool.queue if not w.done)
        # What earlier stages held back for it is free again.
        freed = [earlier for earlier, _ in waiter.plan[: waiter.stage] if earlier.queue]
        return [pool, *freed] if head else freed

    def _enqueue(self, waiter: _Waiter, stage: int) -> None:
        waiter.stage = stage
        pool, weight = waiter.plan[stage]
        queue = pool.queue
        if not queue or queue[-1].seq < waiter.seq:
            queue.append(waiter)
        else:  # back to an earlier stage: keep the queue in arrival order
            index = next(i for i, w in enumerate(queue) if w.seq > waiter.seq)
            queue.insert(index, waiter)
        pool.live += 1
        pool.queued += weight

    def _pump(self, pools: list[_Pool], now: float) -> None:
        """Admit, in order, every waiter the given pools can now take."""
        g = self._geo
        work = list(dict.fromkeys(pools))
        while work:
            pool = work.pop()
            queue = pool.queue
            while queue:
                waiter = queue[0]
                if waiter.done:
                    queue.popleft()
                    continue
                weight = waiter.plan[waiter.stage][1]
                ready = pool.ready_at(now, weight + pool.passed, g)
                if ready > now:
                    self._wake[pool] = ready
                    break
                queue.popleft()
                pool.live -= 1
                pool.queued -= weight
                plan = waiter.plan
                if waiter.stage + 1 < len(plan):
                    pool.passed += weight  # held for it while it waits further on
                    self._enqueue(waiter, waiter.stage + 1)
                    work.append(plan[waiter.stage][0])
                    continue
                # Last stage: every pool must still have room, all at once.
                stale = next(
                    (i for i, (p, w) in enumerate(plan[:-1]) if p.ready_at(now, w, g) > now), None
                )
                if stale is not None:
                    released = [p for p, _ in plan[stale + 1 : waiter.stage] if p.queue]
                    self._unpass(waiter, stale, waiter.stage)
                    self._enqueue(waiter, stale)
                    work += [plan[stale][0], *released]
                    continue
                self._unpass(waiter, 0, waiter.stage)
                work.extend(p for p, _ in plan[:-1] if p.queue)  # the next may pass now
                waiter.permit = (
                    waiter.endpoint,
                    now,
                    [(p, w, p.charge(now, w, g)) for p, w in plan],
                )
                waiter.done = True
                del self._waiters[waiter.seq]
                waiter.event.set()
                if self._leader is waiter:
                    self._leader = None
            else:
                self._wake.pop(pool, None)
        self._elect()

    def _elect(self) -> None:
        """Make sure exactly one waiter sleeps until the next wake-up time."""
        if not self._wake:
            return
        target = min(self._wake.values())
        leader = self._leader
        if leader is None:
            for pool in sorted(self._wake, key=self._wake.__getitem__):
                leader = next((w for w in pool.queue if not w.done), None)
                if leader is not None:
                    break
                del self._wake[pool]
            else:
                return
            self._leader = leader
            leader.event.set()
        elif target < self._timer_at:
            leader.event.set()

    def _freeze(self, pool: _Pool, until: float, reason: str) -> None:
        if until <= pool.frozen_until:
            return
        pool.frozen_until = until
        pool._geo = None
        server_until = until + self._geo.shift
        log.warning("pool %r stops until %s: %s", pool.key, _fmt(server_until), reason)
        self.hooks.frozen(pool.key, server_until, reason)
        if pool.live:
            self._pump([pool], self._monotonic())

    # -- errors ---------------------------------------------------------------

    def _ban_error(self, now: float) -> IPBannedError:
        return IPBannedError(
            "IP banned by Binance (HTTP 418)",
            retry_at=self._banned_until + self._geo.shift,
            retry_after=self._banned_until - now,
        )

    def _throttled(
        self, endpoint: Endpoint, plan: _Plan, now: float, max_wait: float | None
    ) -> ThrottledError:
        at = self._estimate(plan, now)
        return ThrottledError(
            f"{endpoint.name}: no permit within max_wait={max_wait} s",
            retry_at=at + self._geo.shift,
            retry_after=max(at - now, 0.0),
        )
