"""A pool: its wait queue's bookkeeping, its freeze, and its cold start.

Each limit Binance counts (an IP's weight per minute, an account's, a rolling
cap on calls) is a pool; the kinds count differently (``_fixed``, ``_caps``)
and share what is here.

**Cold start.** A new governor knows nothing of what was spent before it
existed (a restarted process's previous life, within the same window or
rolling period). Until it knows, a pool is *cold*: it admits one request at a
time (``cold`` is the allowance, ``out`` the cold admissions still open) and
waits for its answer. A usage header in that answer tells a fixed pool the
truth: it is warm. Without one (rolling caps have no header) the allowance
grows by one with every answer (it doubles per round trip, like TCP's slow
start), so a full cap costs at most one small round of 429s, never a burst
met by a ban. A pool is warm anyway
once nothing spent before the governor's birth can count any more: from the
first window that starts after it (fixed), a period after it (caps).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._limits import PoolSpec
from ._geometry import INF, Geometry

if TYPE_CHECKING:
    from ._queue import Waiter

__all__ = ["Pool"]


class Pool:
    """A pool's queue and freeze state; subclasses count."""

    __slots__ = (
        "_from",
        "_geo",
        "_try_add",
        "_until",
        "_window",
        "born",
        "cold",
        "frozen_until",
        "key",
        "limit",
        "live",
        "lost",
        "out",
        "passed",
        "period",
        "queue",
        "queued",
        "spec",
    )

    def __init__(self, spec: PoolSpec) -> None:
        # Fixed pools cache the one window a request sent in [_from, _until)
        # under geometry _geo can land in, so the hot path does no arithmetic.
        self._geo: Geometry | None = None
        self._from = self._until = 0.0
        self._window = 0
        self._try_add: Any = None
        self.spec = spec
        self.key = spec.key
        self.limit = spec.limit
        self.period = spec.period
        self.queue: deque[Waiter] = deque()
        self.live = 0  # waiters in the queue that are still waiting
        self.queued = 0  # their total weight
        # Weight of waiters that got past this pool's queue and now wait in a
        # later one: held back from the next waiters, not charged yet.
        self.passed = 0
        self.frozen_until = -INF
        # Cold start (see the module's docstring): warm unless the governor says.
        self.cold = 0  # requests admitted at once while cold; 0: warm
        self.out = 0  # cold admissions not answered (or refunded) yet
        self.lost = False  # one of them is lost: it holds its place until warm
        self.born = -INF  # monotonic: the governor's first use

    def warm_at(self, g: Geometry) -> float:
        """When nothing spent before ``born`` can count in this pool any more."""
        raise NotImplementedError

    def cold_ready(self, now: float, g: Geometry) -> float:
        """A cold pool: ``now`` if it may admit one more request, else when it warms up."""
        at = self.warm_at(g)
        if at <= now:
            self.cold = self.out = 0
            self.lost = False
            return now
        return now if self.out < self.cold and not self.lost else at

    def _cold_done(self, answered: bool, lost: bool = False) -> bool:
        """A cold admission is over (answered, given up on, refunded): True if it
        frees the next one. ``lost``: written, and no answer came. Its answer
        alone would have told whether the window is full (a previous life may
        have filled it), so it keeps its place until the pool warms: the next
        request, sent at once, went blind into that window and met a 418 (F4)."""
        if not self.cold or not self.out:
            return False
        if lost:
            self.lost = True
            return False
        self.out -= 1
        if answered:  # slow start: one more per answer, twice as many per round trip
            self.cold += 1
            if self.cold >= self.limit:
                self.cold = self.out = 0
        return True

    def ready_at(self, now: float, weight: int, g: Geometry) -> float:
        """Earliest time >= now at which this pool could take ``weight``."""
        raise NotImplementedError

    def take(self, now: float, weight: int, g: Geometry) -> Any | None:
        """Charge ``weight`` now if ``ready_at(now) == now``, else None: the hot path."""
        raise NotImplementedError

    def charge(self, now: float, weight: int, g: Geometry) -> Any:
        """Charge ``weight`` now, known to fit."""
        raise NotImplementedError

    def refund(self, record: Any, weight: int, written: bool) -> None:
        raise NotImplementedError

    def renew(self, record: Any, weight: int, now: float, g: Geometry) -> Any | None:
        """The request is written at ``now``: re-charge it for that, in flight
        until its answer. None if there is no room (nothing changed then)."""
        raise NotImplementedError

    def settle(
        self,
        record: Any,
        weight: int,
        sent: float,
        landed_by: float,
        headers: Mapping[str, str],
        g: Geometry,
        answered: bool,
        written: bool,
    ) -> tuple[bool, int]:
        """Correct the count once the answer is in (or given up on): (capacity
        came back, weight Binance reports as spent elsewhere)."""
        raise NotImplementedError

    def estimate(self, now: float, total: int, g: Geometry, weight: int) -> float:
        """A lower bound on when ``total`` more weight could have been admitted,
        the last request ``weight`` of it."""
        raise NotImplementedError

    def freeze_default(self, now: float, g: Geometry) -> float:
        """Until when to stop after a 429 that came without ``Retry-After``."""
        raise NotImplementedError

    def usage(self, now: float, g: Geometry) -> tuple[int, float]:
        """(used now, server epoch when that count next drops)."""
        raise NotImplementedError

    def idle(self, now: float, g: Geometry) -> bool:
        """Nothing counted can matter any more: the pool may be forgotten."""
        raise NotImplementedError
