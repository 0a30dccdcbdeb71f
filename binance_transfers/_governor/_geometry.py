"""Where a request sent now may land on Binance's clock: the margins.

A request written at our monotonic time ``t`` reaches Binance somewhere in
``[t + shift - eps - guard, t + shift + trip + eps + guard]`` on Binance's clock:

* ``shift`` is our estimate of Binance's clock (``ServerClock``);
* ``eps`` bounds the estimate's error: half the sync's round trip, growing by
  the clock drift (50 ppm by default) with every second since the sync, plus
  a step of Binance's clock after the sync (an NTP step, a server behind the
  load balancer with a clock of its own) of up to ``CLOCK_STEP``, 10 ms (at
  most 1 % of a window: only windows scaled below 1 s come near that; 10 ms
  is 0.02 % of Binance's minute);
* ``guard`` is a band around every window boundary, scaled to the jitter
  measured on round trips (half of p99 - p50, at least 2 ms, at most 1 % of
  a window): what the clock error may exceed ``eps`` by (a sync through a
  jittery path);
* ``trip`` is a robust bound on the round trip: the 99th percentile of recent
  trips plus a margin (their spread, at most a quarter of the percentile),
  remembered over ``SPAN`` (two) windows.

The governor charges a request to every window that interval touches, so a
backlog released at a boundary waits ``eps + guard`` after it::

      window w (full)         | window w+1
    --------------------------+----+----------+------------------> Binance time
                              b    b+eps+guard: earliest release into w+1 alone
         [..landing interval..]    (sent before it: charged to w and w+1)
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_left, insort
from collections import deque

__all__ = ["Geometry", "Trips", "step_band"]

log = logging.getLogger("binance_transfers.governor")

INF = math.inf
#: Float epoch seconds have ~0.24 us resolution; step past a boundary by more.
NUDGE = 1e-6
#: The guard band's floor, seconds.
GUARD_FLOOR = 0.002
#: A step of Binance's clock after a sync that ``eps`` covers, seconds (issue 7:
#: 10 ms after a sync whose uncertainty was 1 ms). A bigger step meets a 429,
#: which stops the pool until the window ends (``Governor.observe``).
CLOCK_STEP = 0.010
#: Windows over which round trips are remembered (``Trips.span``). A latency
#: spike across a boundary (an eighth of a busy second's answers 1.5 s late) is
#: no outlier for a 99th percentile: the bound keeps it while it is remembered,
#: and a bound of several windows opens them all ahead of every request (where
#: a burst of ours reordered by jitter reads as another process's, see
#: ``_fixed``). Safety does not rest on it: a request in flight is counted in
#: every window that opens while it flies, however late it is.
SPAN = 2
#: The shortest ``retry_after`` a refusal that waits for an answer says, seconds:
#: a caller obeying it polls at most a hundred times a second.
RETRY_FLOOR = 0.010
#: Binance's longest ban (3 days), before ``Limits.time_scale``.
LONGEST_BAN = 3 * 86400.0
#: A ban is waited out this much longer (a share of it, at most ``BAN_PAD`` seconds
#: before ``Limits.time_scale``): its end is read on our estimate of Binance's clock.
BAN_SLACK = 0.05
BAN_PAD = 60.0


class Geometry:
    """Where a request sent now may land on Binance's clock (valid until ``until``)."""

    __slots__ = ("eps", "guard", "hi", "lag", "lo", "margin", "shift", "step", "trip", "until")

    def __init__(
        self,
        shift: float,
        eps: float,
        guard: float,
        trip: float,
        until: float,
        lag: float = 0.0,
        step: float = 0.0,
    ) -> None:
        self.shift = shift  # server epoch = monotonic + shift
        self.eps = eps  # bound on the error of shift, until `until` (`step` included)
        # The part of eps for a step of Binance's clock (which also moves the end
        # of a rolling cap's period, counted on our clock from the answer).
        self.step = step
        self.guard = guard
        self.trip = trip
        self.lo = shift - eps - guard  # earliest landing = now + lo
        self.hi = shift + trip + eps + guard  # latest landing = now + hi (if answered in time)
        self.margin = self.hi - self.lo  # width of the landing interval
        self.until = until  # monotonic: re-derive after this (eps grows with drift)
        # How long before what another process sends shows in our answers: its
        # trip and ours, as measured (not the bound, which has a floor), and
        # the guard band for the write delays (see ``_sharing``).
        self.lag = lag


def step_band(window: float) -> float:
    """Seconds ``eps`` allows for a step of Binance's clock, in windows of ``window`` s."""
    return min(CLOCK_STEP, window / 100)


class Trips:
    """A robust bound on round trips: p99 of recent trips plus their spread.

    The spread (p99 - p50) is the margin for noise around the percentile, at
    most a quarter of it: when the percentile is itself a spike (slow answers
    are more than 1 % of the recent ones), the spread is the spike again, and
    the bound was twice it.

    One slow answer raises the bound at once (what slowed it tends to come
    back), but the bound is recomputed as a percentile every 16 answers, or at
    the first answer 5 s after the last recompute (slow endpoints: 8 answers a
    minute), so a lone spike is forgotten quickly instead of inflating a minute
    of windows. Trips older than ``span`` seconds are dropped.

    The trips are kept twice: in arrival order (to drop the oldest) and sorted
    (``bisect``), so a percentile is an index, not a sort of up to 1024 samples
    on the hot path of every answer.
    """

    __slots__ = ("_count", "_next", "_sorted", "bound", "floor", "jitter", "p99", "samples", "span")

    #: Samples kept at most (the oldest are dropped first).
    CAPACITY = 1024
    #: Seconds after which the next answer recomputes the percentile, whatever the count.
    RECOMPUTE_AFTER = 5.0

    def __init__(self, floor: float, span: float) -> None:
        self.floor = floor
        self.span = span
        self.bound = floor
        self.jitter = 0.0
        self.p99 = 0.0  # as measured, without the floor (until the first percentile: the longest)
        self.samples: deque[tuple[float, float]] = deque()
        self._sorted: list[float] = []  # the trips of ``samples``, in ascending order
        self._count = 0
        self._next = -INF  # recompute at the first answer from then on (B5-6)

    def _drop_oldest(self) -> None:
        _, trip = self.samples.popleft()
        ordered = self._sorted
        del ordered[bisect_left(ordered, trip)]

    def typical(self) -> float:
        """The median of recent trips; the bound before any."""
        trips = self._sorted
        return trips[(len(trips) - 1) // 2] if trips else self.bound

    def note(self, trip: float, now: float) -> bool:
        """Record one round trip; True when the bound or the jitter changed."""
        samples, ordered = self.samples, self._sorted
        if len(samples) >= self.CAPACITY:  # (``_drop_oldest``, inlined: every answer)
            del ordered[bisect_left(ordered, samples.popleft()[1])]
        samples.append((now, trip))
        insort(ordered, trip)
        self._count += 1
        longer = trip > 1.25 * self.p99 + 0.001  # enough to matter: the geometry is re-derived
        if trip > self.p99:
            self.p99 = trip
        if trip > self.bound:
            if trip > 2 * self.bound:
                log.warning(
                    "answers take %.3f s, longer than the %.3f s assumed; assuming %.3f s now",
                    trip,
                    self.bound,
                    trip,
                )
            self.bound = trip
            return True
        if self._count % 16 and now < self._next:
            return longer
        self._next = now + self.RECOMPUTE_AFTER
        horizon = now - self.span
        while samples and samples[0][0] < horizon:
            self._drop_oldest()
        trips = self._sorted
        n = len(trips)
        p50, p99 = trips[(n - 1) // 2], trips[int(0.99 * (n - 1))]
        jitter = p99 - p50
        bound = max(self.floor, p99 + max(min(jitter, p99 / 4), 0.001))
        changed = bound != self.bound or jitter != self.jitter or longer
        changed |= abs(p99 - self.p99) > 0.25 * self.p99 + 0.001
        self.bound, self.jitter, self.p99 = bound, jitter, p99
        return changed
