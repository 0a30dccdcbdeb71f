"""What a shared storage asks of the governor: the callbacks of its ``StorageLink``.

A shared storage's counters (Redis) learn of leases, freezes and windows
asynchronously; they ask the governor through these (given to the storage
as a :class:`~binance_transfers._storage.StorageLink` when the governor is made).
"""

from __future__ import annotations

from ._feedback import Feedback
from ._pools import FixedPool

__all__ = ["Linked"]


class Linked(Feedback):
    """The governor's answers to a shared storage (a mixin)."""

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
        # On Binance's clock: over once nothing written then can land before it,
        # however far off our estimate is (B7-3, as for our own 418s).
        until = server_until - self._geometry(now).lo
        if key == "*":
            self.ban(until)
        elif (pool := self._pools.get(key)) is not None:
            self._freeze(pool, until, "429 Too Many Requests (another process, shared storage)")

    def _demand(self, key: str) -> int:
        """The weight waiting in pool ``key`` (a shared cap leases that much)."""
        pool = self._pools.get(key)
        return pool.queued if pool is not None else 0

    def _inflight(self, key: str) -> int:
        """Our weight in flight on pool ``key`` (written, not answered)."""
        pool = self._pools.get(key)
        return pool.inflight if isinstance(pool, FixedPool) else 0  # a cap has no windows
