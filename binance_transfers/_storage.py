"""Where the governor keeps its counts.

The governor asks a :class:`Storage` for one counter per pool and keeps its
queues, timers and fairness to itself. :class:`MemoryStorage` (the default)
keeps counts in this process; a backend shared by several processes
(:class:`~binance_transfers.RedisStorage`) implements the same two counter
protocols by leasing blocks of weight. Such a counter learns asynchronously
that it may admit more: it tells the governor through the
:class:`StorageLink` it was created with, and reads Binance's clock from it
to know which windows are current.

A counter never forgets on its own: the governor says which windows are over
(:meth:`WindowCounter.forget`) and when a pool is gone (:meth:`Storage.discard`),
because only it knows which windows a request in flight may still land in.
"""

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterator
from typing import Protocol

import attrs

from ._limits import PoolSpec

__all__ = ["CallCounter", "MemoryStorage", "Storage", "StorageLink", "WindowCounter"]


@attrs.frozen
class StorageLink:
    """What a counter may ask of the governor that owns its pool."""

    wake: Callable[[str], None]
    """Capacity came for the pool with this key (a lease): admit who can use it."""
    server_now: Callable[[], float]
    """The governor's estimate of Binance's clock now, in epoch seconds."""
    landing: Callable[[float], tuple[int, int]]
    """The first and last windows of this length a request sent now may land in."""
    freeze: Callable[[str, float], None] = lambda key, until: None
    """Another process met a 429 in pool ``key`` (``"*"``: a 418 ban of the IP),
    until Binance epoch ``until``: stop the pool too."""
    demand: Callable[[str], int] = lambda key: 0
    """The weight waiting in pool ``key``'s queue: what a lease should cover."""
    inflight: Callable[[str], int] = lambda key: 0
    """Our weight written to pool ``key`` and not answered yet: however late, it
    may still land, so the next window must count it too (the governor does
    once it opens that window; a shared counter claims it before others can
    lease that window whole)."""


class WindowCounter(Protocol):
    """Weight counted per fixed window, identified by its index (epoch // length)."""

    def used(self, window: int) -> int:
        """Weight counted in ``window``: ours plus what others were seen to spend."""

    def add(self, window: int, weight: int) -> int:
        """Count ``weight`` of ours in ``window``; return our own total there."""

    def try_add(self, window: int, weight: int, limit: int) -> int | None:
        """:meth:`add` if the window's total stays within ``limit``, else None (atomic)."""

    def remove(self, window: int, weight: int) -> None:
        """Take back ``weight`` of ours that provably did not land in ``window``.

        A window already forgotten stays forgotten (no negative counts)."""

    def report(self, window: int, reported: int, own_at_send: int) -> int:
        """Binance reported ``reported`` used in ``window`` for a request that was
        our ``own_at_send``-th unit there; the excess is weight spent by others.
        Raise the count accordingly and return by how much it rose."""

    def foreign(self, window: int) -> int:
        """Weight seen spent by others in ``window`` (0 if unknown)."""

    def reserve(self, window: int, weight: int) -> None:
        """Expect others to spend ``weight`` in ``window``: count it as theirs
        (a later :meth:`report` raises it, never lowers it)."""

    def forget(self, before: int) -> None:
        """Drop every window below ``before``: nothing can land there any more."""

    def newest(self) -> int | None:
        """The highest window holding a count, or None when empty."""


class CallCounter(Protocol):
    """Calls of a rolling cap, as the times they stop counting, soonest first.

    A call in flight (written, no answer yet) counts until ``math.inf``."""

    def prune(self, now: float) -> None:
        """Forget calls that stop counting at or before ``now``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> float: ...

    def __iter__(self) -> Iterator[float]: ...

    def add(self, until: float) -> None:
        """Count one call until ``until``."""

    def remove(self, until: float) -> bool:
        """Stop counting one call recorded with ``until``; False if already pruned."""


class Storage(Protocol):
    """A factory of counters, one per pool (``spec.key``).

    A storage shared between processes may also define ``frozen(key, until)``:
    the governor then calls it when a 429 stops pool ``key`` (``"*"``: a 418
    ban) until Binance epoch ``until``, for the other processes to stop too
    (they learn of it through :attr:`StorageLink.freeze`).
    """

    def window_counter(self, spec: PoolSpec, link: StorageLink) -> WindowCounter: ...

    def call_counter(self, spec: PoolSpec, link: StorageLink) -> CallCounter: ...

    def discard(self, key: str) -> None:
        """The pool ``key`` is idle and forgotten by the governor (free its counter)."""


class MemoryWindowCounter:
    __slots__ = ("_foreign", "_used")

    def __init__(self) -> None:
        self._used: dict[int, int] = {}
        self._foreign: dict[int, int] = {}

    def used(self, window: int) -> int:
        return self._used.get(window, 0)

    def add(self, window: int, weight: int) -> int:
        used = self._used
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
        used = self._used
        if window in used:
            used[window] -= weight

    def report(self, window: int, reported: int, own_at_send: int) -> int:
        if window not in self._used:
            return 0  # forgotten: too old to matter
        seen = reported - own_at_send
        known = self._foreign.get(window, 0)
        if seen <= known:
            return 0
        self._foreign[window] = seen
        self._used[window] += seen - known
        return seen - known

    def foreign(self, window: int) -> int:
        return self._foreign.get(window, 0)

    def reserve(self, window: int, weight: int) -> None:
        known = self._foreign.get(window, 0)
        if weight > known:
            self._foreign[window] = weight
            self._used[window] = self._used.get(window, 0) + weight - known

    def forget(self, before: int) -> None:
        used = self._used
        if used and min(used) < before:
            for old in [w for w in used if w < before]:
                del used[old]
                self._foreign.pop(old, None)

    def newest(self) -> int | None:
        return max(self._used) if self._used else None

    def __repr__(self) -> str:
        return f"<MemoryWindowCounter {dict(sorted(self._used.items()))}>"


class MemoryCallCounter:
    """A sorted list: caps are small (hundreds of calls), lookups bisect."""

    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls: list[float] = []

    def prune(self, now: float) -> None:
        calls = self._calls
        if calls and calls[0] <= now:
            del calls[: bisect_right(calls, now)]

    def __len__(self) -> int:
        return len(self._calls)

    def __getitem__(self, index: int) -> float:
        return self._calls[index]

    def __iter__(self) -> Iterator[float]:
        return iter(self._calls)

    def add(self, until: float) -> None:
        calls = self._calls
        if not calls or until >= calls[-1]:
            calls.append(until)  # the common case: in flight (inf), or the latest
        else:
            insort(calls, until)

    def remove(self, until: float) -> bool:
        calls = self._calls
        i = bisect_left(calls, until)
        if i < len(calls) and calls[i] == until:
            del calls[i]
            return True
        return False

    def __repr__(self) -> str:
        return f"<MemoryCallCounter {self._calls}>"


class MemoryStorage:
    """Counts kept in this process: enough for every client behind one IP here."""

    def window_counter(self, spec: PoolSpec, link: StorageLink) -> WindowCounter:
        return MemoryWindowCounter()

    def call_counter(self, spec: PoolSpec, link: StorageLink) -> CallCounter:
        return MemoryCallCounter()

    def discard(self, key: str) -> None:
        pass  # the counters are the governor's own objects: they go with the pool

    def __repr__(self) -> str:
        return "MemoryStorage()"
