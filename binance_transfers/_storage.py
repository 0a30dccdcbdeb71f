"""Where the governor keeps its counts.

The governor asks a :class:`Storage` for one counter per pool and keeps its
queues, timers and fairness to itself. :class:`MemoryStorage` (the default)
keeps counts in this process; a backend shared by several processes (Redis)
implements the same two counter protocols, for instance by leasing blocks of
weight, without any change to the governor or its callers.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

__all__ = ["CallCounter", "MemoryStorage", "Storage", "WindowCounter"]


class WindowCounter(Protocol):
    """Weight counted per fixed window, identified by its index (epoch // length)."""

    def used(self, window: int) -> int:
        """Weight counted in ``window``: ours plus what others were seen to spend."""

    def add(self, window: int, weight: int) -> int:
        """Count ``weight`` of ours in ``window``; return our own total there."""

    def try_add(self, window: int, weight: int, limit: int) -> int | None:
        """:meth:`add` if the window's total stays within ``limit``, else None (atomic).

        The governor only calls this for a window it has :meth:`add`-ed to
        before (the hot path), so it need not forget old windows itself."""

    def remove(self, window: int, weight: int) -> None:
        """Take back ``weight`` of ours that provably did not land in ``window``."""

    def report(self, window: int, reported: int, own_at_send: int) -> int:
        """Binance reported ``reported`` used in ``window`` for a request that was
        our ``own_at_send``-th unit there; the excess is weight spent by others.
        Raise the count accordingly and return by how much it rose."""


class CallCounter(Protocol):
    """Admission times of calls, oldest first, for a rolling cap."""

    def prune(self, before: float) -> None:
        """Forget calls admitted at or before ``before``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> float: ...

    def add(self, at: float) -> None: ...

    def remove(self, at: float) -> None: ...


class Storage(Protocol):
    """A factory of counters, one per pool key."""

    def window_counter(self, key: str) -> WindowCounter: ...

    def call_counter(self, key: str) -> CallCounter: ...


class MemoryWindowCounter:
    __slots__ = ("_foreign", "_used")

    def __init__(self) -> None:
        self._used: dict[int, int] = {}
        self._foreign: dict[int, int] = {}

    def used(self, window: int) -> int:
        return self._used.get(window, 0)

    def add(self, window: int, weight: int) -> int:
        used = self._used
        if window not in used and len(used) > 8:
            # Windows two behind the newest can no longer be landed in.
            for old in [w for w in used if w < window - 2]:
                del used[old]
                self._foreign.pop(old, None)
        total = used.get(window, 0) + weight
        used[window] = total
        return total - self._foreign.get(window, 0)

    def try_add(self, window: int, weight: int, limit: int) -> int | None:
        used = self._used
        total = used.get(window, 0) + weight
        if total > limit:
            return None
        used[window] = total
        foreign = self._foreign
        return total - foreign[window] if foreign and window in foreign else total

    def remove(self, window: int, weight: int) -> None:
        self._used[window] = self._used.get(window, 0) - weight

    def report(self, window: int, reported: int, own_at_send: int) -> int:
        seen = reported - own_at_send
        known = self._foreign.get(window, 0)
        if seen <= known:
            return 0
        self._foreign[window] = seen
        self._used[window] = self._used.get(window, 0) + seen - known
        return seen - known

    def __repr__(self) -> str:
        return f"<MemoryWindowCounter {dict(sorted(self._used.items()))}>"


class MemoryCallCounter(deque[float]):
    __slots__ = ()

    def prune(self, before: float) -> None:
        while self and self[0] <= before:
            self.popleft()

    def add(self, at: float) -> None:
        self.append(at)


class MemoryStorage:
    """Counts kept in this process: enough for every client behind one IP here."""

    def window_counter(self, key: str) -> WindowCounter:
        return MemoryWindowCounter()

    def call_counter(self, key: str) -> CallCounter:
        return MemoryCallCounter()

    def __repr__(self) -> str:
        return "MemoryStorage()"
