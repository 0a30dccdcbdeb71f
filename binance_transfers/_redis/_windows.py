"""A pool's windows as leases from Redis: what the governor counts in them."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ._counter import RedisCounter

if TYPE_CHECKING:
    from .._limits import PoolSpec
    from .._storage import StorageLink
    from ._storage import RedisStorage

__all__ = ["LeasedWindowCounter"]


class LeasedWindowCounter(RedisCounter):
    """A :class:`WindowCounter` that admits only within the leases this process holds.

    To the governor, capacity leased to other processes (or not leased yet)
    looks like weight spent by others: ``used = own + max(limit - leased,
    foreign)``, where ``foreign`` is what the usage headers show others spent.
    """

    __slots__ = (
        "_asked",
        "_cap",
        "_debt",
        "_floor",
        "_foreign",
        "_full",
        "_grant",
        "_low",
        "_own",
        "_short",
        "_total",
        "_unit",
        "_watched",
    )

    def __init__(
        self, storage: RedisStorage, spec: PoolSpec, link: StorageLink, redis_key: str
    ) -> None:
        super().__init__(storage, spec, link, redis_key)
        self._own: dict[int, int] = {}
        self._grant: dict[int, int] = {}
        self._foreign: dict[int, int] = {}
        self._cap: dict[int, int] = {}  # own may reach this: min(leased, limit - foreign)
        self._floor: dict[int, int] = {}  # the most Binance reported used (sent on the next lease)
        self._total: dict[int, int] = {}  # leased by everybody, as of the last answer
        self._debt: dict[int, int] = {}  # counted here beyond the lease (in flight, late)
        self._asked: set[int] = set()  # windows with a lease request on its way
        self._full: set[int] = set()  # windows Redis had nothing left in
        self._low = 0  # ask for more when own passes this in the latest leased window
        self._watched: set[int] = set()  # windows whose ends are watched for ghosts
        # Lease more when less than this is left: the heaviest request seen, at
        # least a quarter of the limit (the heaviest Binance endpoint is 1/8).
        self._short = max(spec.limit >> 2, spec.weight)
        # Leases come in multiples of the heaviest request seen: a remainder
        # smaller than that is of no use to anybody (see _scripts.LEASE).
        self._unit = max(spec.weight, 1)

    # -- the WindowCounter protocol -------------------------------------------

    def used(self, window: int) -> int:
        # Read when a request waits (ready_at), or for a snapshot: lease more
        # if what is left here may not fit the heaviest request.
        cap = self._cap.get(window, 0)
        own = self._own.get(window, 0)
        if cap - own < self._short:
            self._refill()
        return own + self.limit - min(cap, self.limit)

    def add(self, window: int, weight: int) -> int:
        total = self._own.get(window, 0) + weight
        self._own[window] = total
        if window not in self._watched:
            self._watch(window)
        over = total - self._cap.get(window, 0)
        if over > 0:  # the governor counts in-flight or late weight: claim it
            self._debt[window] = max(self._debt.get(window, 0), over)
            self._asked.add(window)  # even a full window: the debt must be counted
            self._storage._ask(self, window, 0)
        return total

    def try_add(self, window: int, weight: int, limit: int) -> int | None:
        own = self._own
        total = own.get(window, 0) + weight
        if total > self._cap.get(window, 0):
            if weight > self._short:
                self._short = weight
            if weight > self._unit:
                self._unit = weight
            self._refill()
            return None
        own[window] = total
        if total > self._low and window not in self._asked:
            self._ask(window, 0)  # running low: ask for the next block in advance
        if window not in self._watched:
            self._watch(window)
        return total

    def remove(self, window: int, weight: int) -> None:
        own = self._own
        if window in own:
            own[window] = max(own[window] - weight, 0)

    def report(self, window: int, reported: int, own_at_send: int) -> int:
        if window not in self._own:
            return 0  # forgotten: too old to matter
        # Sent with the next lease request: after a restart, Redis counts from it.
        self._floor[window] = max(self._floor.get(window, 0), reported)
        # Weight reported beyond everything leased (by anybody) was spent by
        # somebody outside Redis: it comes out of what we may still use. (Our
        # own requests overtaking each other explain nothing more than our
        # leases: ``own_at_send`` is not needed.)
        total = self._total.get(window)
        if total is None or reported <= total:
            return 0
        return self._raise_foreign(window, reported - self._grant.get(window, 0))

    def foreign(self, window: int) -> int:
        # Everything not ours: leased to others (or to nobody yet), or seen spent.
        return self.limit - min(self._cap.get(window, 0), self.limit)

    def reserve(self, window: int, weight: int) -> None:
        # The governor's expectation of others' spending, from past windows:
        # Redis knows what the others hold, so it is not needed here.
        pass

    def forget(self, before: int) -> None:
        tables = (self._own, self._grant, self._foreign, self._cap, self._floor, self._debt)
        for table in (*tables, self._total):
            if table and min(table) < before:
                for old in [w for w in table if w < before]:
                    del table[old]
        for marks in (self._asked, self._full, self._watched):
            if marks and min(marks) < before:
                marks.difference_update([w for w in marks if w < before])

    def newest(self) -> int | None:
        windows = self._own.keys() | self._grant.keys()
        return max(windows) if windows else None

    # -- leases ----------------------------------------------------------------

    def _raise_foreign(self, window: int, seen: int) -> int:
        known = self._foreign.get(window, 0)
        if seen <= known:
            return 0
        before = self.used(window)
        self._foreign[window] = seen
        self._recap(window)
        return self.used(window) - before

    def _recap(self, window: int) -> None:
        # A lease forced past the limit (a late request claimed where it
        # may land: ``_debt``) covers that request only; once its charge is given
        # back, the excess is no room, for the claimant or anybody who sees it
        # (reused, it sent a window of 8 calls 9: the 2-process demo's 429).
        over = max(self._total.get(window, 0) - self.limit, 0)
        self._cap[window] = min(
            self._grant.get(window, 0) - over, self.limit - self._foreign.get(window, 0)
        )

    def _refill(self) -> None:
        """Lease more of every window a request sent now may land in, and of the
        next one (where requests go once these are full), where short."""
        lo, hi = self._link.landing(self.period)
        cap, own, short = self._cap, self._own, self._short
        for window in range(lo, hi + 2):
            ghost = self._ghost(window)
            left = cap.get(window, 0) - own.get(window, 0)
            if left - ghost < short:
                self._ask(window, max(ghost - left, 0))

    def _ghost(self, window: int) -> int:
        """What of ours in flight ``window`` must hold if it is
        the next one: a request written now, or earlier, may land there however
        its landing interval ends (a stall). The governor counts it there once
        it opens the window (then they are in ``_own``, and a lease short of them
        is claimed at once); through Redis another process may have leased (and
        spent) all of it before that. So until then its lease covers them (more
        than needed when the answers come in time: then it is ours to admit in)."""
        if window in self._own or window != int(self._link.server_now() // self.period) + 1:
            return 0  # opened by the governor (its ghosts are counted), or not the next
        return self._link.inflight(self.key)

    def _watch(self, window: int) -> None:
        """Shortly before ``window`` ends, and as it ends, claim what is still in
        flight in the next one (see :meth:`_ghost`): a process with nothing
        waiting would not lease it before others do. (What is written later
        than a trip before the end is charged to the next window anyway.)"""
        storage = self._storage
        if storage._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # counted outside a loop (a seed): nothing in flight
            return
        self._watched.add(window)
        end = (window + 1) * self.period
        now = self._link.server_now()

        def fire(box: list[asyncio.TimerHandle]) -> None:
            storage._timers.discard(box[0])
            if window + 1 in self._own:
                return  # opened by the governor: its ghosts are counted (and claimed)
            ghost = self._link.inflight(self.key)
            if ghost > self._cap.get(window + 1, 0):
                self._ask(window + 1, ghost - self._cap.get(window + 1, 0))

        for at in (end - self.period / 10, end):
            box: list[asyncio.TimerHandle] = []
            box.append(loop.call_later(max(at - now, 0.0), fire, box))
            storage._timers.add(box[0])

    def _ask(self, window: int, need: int) -> None:
        if window not in self._asked and window not in self._full:
            self._asked.add(window)
            self._storage._ask(self, window, need)

    def granted(self, window: int, amount: int, total: int | None = None) -> None:
        """A lease of ``amount`` more arrived (``total``: leased by everybody)."""
        self._asked.discard(window)
        past = False  # forced past the limit, or no longer: the cap changes
        if total is not None:
            past = total > self.limit or self._total.get(window, 0) > self.limit
            self._total[window] = total
        if amount:
            self._grant[window] = self._grant.get(window, 0) + amount
        if amount or past:
            self._recap(window)
        if amount:
            if window >= max(self._grant):
                # Ask for the next block when a quarter of this one is left.
                self._low = self._cap[window] - max(amount // 4, 1)
            self._link.wake(self.key)

    def exceeded(self, window: int, total: int) -> None:
        """Redis leased ``total`` in ``window``, past the limit (see ``_recap``)."""
        if window in self._grant and total > self._total.get(window, 0):
            self._total[window] = total
            self._recap(window)

    def claim(self, window: int) -> int:
        return self._grant.get(window, 0)

    def __repr__(self) -> str:
        return f"<LeasedWindowCounter {self.key!r} own={self._own} leased={self._grant}>"
