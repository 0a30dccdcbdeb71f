"""The wait queue: FIFO per pool, one timer, no polling.

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

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import anyio

from .._endpoints import Endpoint
from .._exceptions import IPBannedError, ThrottledError
from ._geometry import INF, Geometry
from ._pools import Pool

__all__ = ["Charge", "Permit", "Plan", "WaitQueue", "Waiter", "Written"]

Plan = tuple[tuple[Pool, int], ...]

#: What one call took from one pool: (pool, weight, record). A fixed pool's
#: record is flat (window, our units there after it, window, ...); a cap's is
#: the time the call stops counting.
Charge = tuple[Pool, int, Any]

Permit = tuple[Endpoint, float, Sequence[Charge]]
"""Proof that one request may be sent now: hand it back to :meth:`Governor.observe`.

Opaque: (endpoint, monotonic admission time, what was charged where). A bare
tuple because the uncontended acquire builds one per call, and nothing in
Python is cheaper to build.
"""


class Written(list[Charge]):
    """The charges of a permit whose request was written (``Governor.renew``): in flight."""

    __slots__ = ()


class Waiter:
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

    def __init__(self, seq: int, plan: Plan, endpoint: Endpoint, since: float, wait_on_ban: bool):
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


class WaitQueue:
    """The governor's waiting half (a mixin: the governor supplies the clock and pools)."""

    _waiters: dict[int, Waiter]
    _wake: dict[Pool, float]  # pools whose head is blocked -> when it may go
    _leader: Waiter | None
    _timer_at: float
    _seq: int
    _monotonic: Callable[[], float]

    def _geometry(self, now: float) -> Geometry:
        raise NotImplementedError

    def _check_owner(self) -> None:
        raise NotImplementedError

    def refund(self, permit: Permit) -> None:
        raise NotImplementedError

    def _estimate(self, plan: Plan, now: float) -> float:
        raise NotImplementedError

    def _throttled(
        self, endpoint: Endpoint, plan: Plan, now: float, max_wait: float | None
    ) -> ThrottledError:
        raise NotImplementedError

    def _ban_error(self, now: float) -> IPBannedError:
        raise NotImplementedError

    def _refuse(
        self, endpoint: Endpoint, error: ThrottledError | IPBannedError
    ) -> ThrottledError | IPBannedError:
        raise NotImplementedError

    def _waited(self, endpoint: Endpoint, wait: float) -> None:
        raise NotImplementedError

    def _admitted(self, endpoint: Endpoint, waited: float) -> None:
        raise NotImplementedError

    async def _acquire_slow(
        self,
        plan: Plan,
        endpoint: Endpoint,
        now: float,
        max_wait: float | None,
        wait_on_ban: bool,
    ) -> Permit:
        self._check_owner()
        estimate = self._estimate(plan, now)
        if max_wait is not None and estimate - now > max_wait:
            raise self._throttled(endpoint, plan, now, max_wait)
        self._waited(endpoint, estimate - now)
        self._seq += 1
        waiter = Waiter(self._seq, plan, endpoint, now, wait_on_ban)
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
                # Out of the queue first: still in it, the refused call counted
                # itself among those ahead of it (a rolling cap's second call,
                # admitted 0.08 s later, was told to come back in 600 s).
                returned = True
                self._abandon(waiter)
                raise self._throttled(endpoint, plan, self._monotonic(), max_wait)
            returned = True
            self._admitted(endpoint, waiter.permit[1] - now)
            return waiter.permit
        finally:
            if not returned:
                self._abandon(waiter)

    async def _wait(self, waiter: Waiter) -> None:
        while waiter.permit is None and waiter.error is None:
            event = waiter.event = anyio.Event()
            if self._leader is None:
                self._leader = waiter
            if self._leader is not waiter:
                await event.wait()
                continue
            # The leader sleeps until the earliest moment a blocked pool may move.
            target = min(self._wake.values(), default=INF)
            self._timer_at = target
            if target == INF:
                await event.wait()
                continue
            with anyio.move_on_after(target - self._monotonic()):
                await event.wait()
            if not event.is_set():
                self._timer_at = INF
                now = self._monotonic()
                self._pump([p for p, at in self._wake.items() if at <= now], now)

    def _abandon(self, waiter: Waiter) -> None:
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

    def _unpass(self, waiter: Waiter, start: int, stop: int) -> None:
        """Release what stages ``start``..``stop - 1`` held back for ``waiter``."""
        for pool, weight in waiter.plan[start:stop]:
            pool.passed -= weight

    def _leave(self, waiter: Waiter) -> list[Pool]:
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

    def _enqueue(self, waiter: Waiter, stage: int) -> None:
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

    def _fail_waiters(self, now: float) -> None:
        """A ban: every waiter that does not wait on bans learns it at once."""
        for waiter in list(self._waiters.values()):
            if not waiter.wait_on_ban:
                waiter.error = self._refuse(waiter.endpoint, self._ban_error(now))
                self._leave(waiter)
                waiter.event.set()

    def _pump(self, pools: list[Pool], now: float) -> None:
        """Admit, in order, every waiter the given pools can now take."""
        if not self._wake:
            for pool in pools:  # (a loop, not any() over a generator: every answer runs it)
                if pool.queue:
                    break
            else:
                return  # most answers and refunds: nothing waits, no wake-up is due
        g = self._geometry(now)
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
