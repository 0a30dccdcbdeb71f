"""Pools and their counters: fixed windows aligned to Binance's clock, rolling caps.

A request is charged to every window it may land in (see ``_geometry``). Once
written (``Governor.renew``) it is *in flight* until its answer: however late
that answer, the request may still land, so each window that opens while it
flies counts it too (a "ghost" charge, given back when the answer shows where
it could have landed). A rolling cap counts an in-flight call until its
answer, then until ``answer + period``.

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

import logging
import math
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._limits import PoolSpec
from .._storage import CallCounter, WindowCounter
from ._geometry import INF, NUDGE, Geometry

if TYPE_CHECKING:
    from ._queue import Waiter

__all__ = ["CapPool", "FixedPool", "Pool"]

log = logging.getLogger("binance_transfers.governor")

#: How much slower Binance's clock may run than ours (twice the 50 ppm assumed).
_DRIFT = 100e-6
#: Lags a pool stays shared after a first report of others' weight in a window.
_RACING = 4


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
        self.born = -INF  # monotonic: the governor's first use

    def warm_at(self, g: Geometry) -> float:
        """When nothing spent before ``born`` can count in this pool any more."""
        raise NotImplementedError

    def cold_ready(self, now: float, g: Geometry) -> float:
        """A cold pool: ``now`` if it may admit one more request, else when it warms up."""
        at = self.warm_at(g)
        if at <= now:
            self.cold = self.out = 0
            return now
        return now if self.out < self.cold else at

    def _cold_done(self, answered: bool) -> bool:
        """A cold admission is over (answered, given up on, refunded): True if it was one."""
        if not self.cold or not self.out:
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

    def estimate(self, now: float, total: int, g: Geometry) -> float:
        """A lower bound on when ``total`` more weight could have been admitted."""
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


class FixedPool(Pool):
    """Weight per fixed window, windows aligned to Binance's clock."""

    __slots__ = (
        "adapts",
        "base",
        "counter",
        "ghosts",
        "heaviest",
        "hint",
        "inflight",
        "landed",
        "mine",
        "news",
        "peak",
        "raced",
        "reserved",
        "rose",
        "seen",
        "shared_until",
        "spent",
        "step",
        "step_in",
        "top",
    )

    def __init__(self, spec: PoolSpec, counter: WindowCounter) -> None:
        super().__init__(spec)
        self.counter = counter
        self._try_add = counter.try_add
        self.inflight = 0  # weight written and not answered yet
        self.top = -(2**62)  # the latest window any charge reached
        self.ghosts: dict[int, int] = {}  # window -> in-flight weight counted there on opening
        # Weight others are expected to spend per window (from usage headers),
        # never so much that the heaviest request could not fit beside it.
        self.hint = 0
        self.news = -(2**62)  # the newest window whose weight from others was reported
        self.base = 0  # the expectation before news of that window came
        self.heaviest = 1
        self.seen: dict[int, int] = {}  # window -> weight others were seen to spend there
        self.landed: dict[int, int] = {}  # window -> our weight answered as landed there
        self.peak: dict[int, int] = {}  # window -> the highest usage reported there
        # Sharing the IP with another governor (see ``_shared_extra``); not
        # when the storage is shared by the processes (Redis): it counts them.
        self.adapts = True
        self.shared_until = -INF  # monotonic: share the pool until then
        self.raced = -(2**62)  # the latest window where others spent more than reserved
        self.reserved: dict[int, int] = {}  # window -> weight reserved there for others
        # window -> (the most others were seen to have spent there, when it was learnt)
        self.spent: dict[int, tuple[int, float]] = {}
        self.rose: deque[tuple[float, int]] = deque()  # (when, others' weight newly seen)
        self.mine: deque[tuple[float, int]] = deque()  # (when, our weight admitted)
        self.step = 0  # others' last step seen while sharing
        self.step_in = 0  # the window it was seen in

    def _open(self, lo: int, hi: int, g: Geometry) -> None:
        """Windows up to ``hi`` may now be landed in: count what is in flight there."""
        if hi <= self.top:
            return
        counter = self.counter
        start = max(self.top + 1, lo)
        # Answers report on windows up to a trip late, and one near a boundary
        # may be read as its neighbour's (the clock estimate is off by up to
        # eps): keep news of the last three windows.
        recent = lo - 3 - int(g.trip // self.period)
        if self.seen and min(self.seen) < recent:
            self.seen = {w: v for w, v in self.seen.items() if w >= recent}
        if self.landed and min(self.landed) < recent:
            self.landed = {w: v for w, v in self.landed.items() if w >= recent}
            self.peak = {w: v for w, v in self.peak.items() if w >= recent}
        if self.reserved and min(self.reserved) < recent:
            self.reserved = {w: v for w, v in self.reserved.items() if w >= recent}
        if self.spent and min(self.spent) < recent:
            self.spent = {w: v for w, v in self.spent.items() if w >= recent}
        for window in range(start, hi + 1):
            if self.inflight:
                counter.add(window, self.inflight)
                self.ghosts[window] = self.inflight
            # What others spend per window, as the newest news says (see
            # `settle`): a window shared with another process does not open
            # with a blind burst, however many open at once or however long
            # ago the news came; it fades with the news, or once it is old.
            hint = self._expected()
            if hint:
                counter.reserve(window, hint)
                self.reserved[window] = hint
            if self.spent and max(self.spent) >= window - 2 and (hint or self.raced >= window - 1):
                # Others surely spent in the last windows: if they adapt to us
                # as we do to them, each sizes its start to what the other left
                # in the last window, together more than there is when some was
                # left unused. Share it from its start.
                self.shared_until = max(self.shared_until, (window + 1) * self.period - g.shift)
        self.top = hi
        # Nothing can land before `lo` any more (2 windows spare for a growing eps).
        self.counter.forget(lo - 2)
        if self.ghosts and min(self.ghosts) < lo - 2:
            self.ghosts = {w: v for w, v in self.ghosts.items() if w >= lo - 2}

    def _used(self, window: int) -> int:
        """The count of ``window``, including what opening it will add."""
        used = self.counter.used(window)
        if window <= self.top:
            return used
        hint = self._expected()
        return used + self.inflight + max(hint - self.counter.foreign(window), 0)

    def _expected(self) -> int:
        """Weight to reserve for others in a window opened now.

        The newest news (``hint``, kept by ``settle``) does not fade with the
        windows opened without news: several open at once when the landing
        interval is wide, and a quiet spell opens none; neither says what
        others spend. Only news fades it: it never takes the room of the
        heaviest request, whose answer brings news.
        """
        return min(self.hint, self.limit - self.heaviest)

    def warm_at(self, g: Geometry) -> float:
        # The first moment the earliest landing is past the window a request
        # written by the previous life just before ``born`` may have landed in.
        p = self.period
        return (int((self.born + g.hi) // p) + 1) * p - g.lo + NUDGE

    def ready_at(self, now: float, weight: int, g: Geometry) -> float:
        if weight > self.limit:
            return INF  # until some of what is held back is charged
        p, cap, used = self.period, self.limit - weight, self._used
        t = max(now, self.frozen_until)
        if self.cold:
            t = max(t, self.cold_ready(now, g))
        lo_shift, hi_shift = g.lo, g.hi
        for _ in range(64):
            lo, hi = int((t + lo_shift) // p), int((t + hi_shift) // p)
            full = next((i for i in range(hi, lo - 1, -1) if used(i) > cap), None)
            if full is None:
                if t < self.shared_until:
                    # ... and as much as this one: the other may take as much now.
                    extra = self._shared_extra(t, g) + weight
                    tight = next((i for i in range(hi, lo - 1, -1) if used(i) > cap - extra), None)
                    if tight is not None:
                        # When less is held back, the sharing ends, or the window is past.
                        t = min(
                            self._eases(t, g),
                            self.shared_until,
                            (tight + 1) * p - lo_shift + NUDGE,
                        )
                        continue
                return t
            # Wait until the earliest possible landing time is past window `full`.
            t = (full + 1) * p - lo_shift + NUDGE
        # Every window ahead is full of requests in flight: wait for their answers.
        return INF

    def take(self, now: float, weight: int, g: Geometry) -> tuple[int, ...] | None:
        if now < self.frozen_until:
            return None
        if self._geo is g and self._from <= now < self._until:
            window = self._window
            own = self.counter.try_add(window, weight, self.limit)
            return None if own is None else (window, own)
        if self.ready_at(now, weight, g) > now:
            return None
        record = self.charge(now, weight, g)
        p = self.period
        lo, hi = int((now + g.lo) // p), int((now + g.hi) // p)
        if lo == hi == self.top and not self.cold and now >= self.shared_until:
            self._geo, self._window = g, lo
            self._from = lo * p - g.lo + NUDGE
            self._until = min((lo + 1) * p - g.hi - NUDGE, g.until)
        return record

    def charge(self, now: float, weight: int, g: Geometry) -> tuple[int, ...]:
        if self.cold:
            self.out += 1
        if now < self.shared_until:
            self._forget_shared(now, g)
            self.mine.append((now, weight))
        p, add = self.period, self.counter.add
        lo, hi = int((now + g.lo) // p), int((now + g.hi) // p)
        self._open(lo, hi, g)
        if lo == hi == self.top:
            return (lo, add(lo, weight))
        # Up to `top`: a window opened earlier may be landed in if this one is late.
        return tuple(x for i in range(lo, max(hi, self.top) + 1) for x in (i, add(i, weight)))

    def refund(self, record: tuple[int, ...], weight: int, written: bool) -> None:
        self._cold_done(False)
        for window in record[::2]:
            self.counter.remove(window, weight)
        if written:
            self._unghost(record, weight)

    def _unghost(self, record: tuple[int, ...], weight: int) -> None:
        """It is no longer in flight: take it out of the windows opened meanwhile."""
        self.inflight -= weight
        last = record[-2]
        opened = [w for w in self.ghosts if w > last]
        for window in opened:
            self.counter.remove(window, weight)
            left = self.ghosts[window] - weight
            if left > 0:
                self.ghosts[window] = left
            else:
                del self.ghosts[window]

    def renew(
        self, record: tuple[int, ...], weight: int, now: float, g: Geometry
    ) -> tuple[int, ...] | None:
        if now < self.frozen_until:
            return None
        p, counter = self.period, self.counter
        lo, hi = int((now + g.lo) // p), int((now + g.hi) // p)
        top = max(hi, self.top)
        have = set(record[::2])
        extra = [i for i in range(lo, top + 1) if i not in have]
        cap = self.limit - weight
        if any(self._used(i) > cap for i in extra):
            return None
        self._open(lo, hi, g)
        kept: list[int] = []
        for window, own in _pairs(record):
            if window < lo:  # written too late to land there any more
                counter.remove(window, weight)
            else:
                kept += (window, own)
        for i in extra:
            kept += (i, counter.add(i, weight))
        kept = _sorted_pairs(kept)
        self.inflight += weight
        return tuple(kept)

    def settle(
        self,
        record: tuple[int, ...],
        weight: int,
        sent: float,
        landed_by: float,
        headers: Mapping[str, str],
        g: Geometry,
        answered: bool,
        written: bool,
    ) -> tuple[bool, int]:
        p, counter = self.period, self.counter
        if written:  # no longer in flight: waiters blocked by it may go
            self._unghost(record, weight)
        freed = self._cold_done(answered) or written
        # It reached Binance after it was sent and before its answer (or the grace).
        first = int((sent + g.lo) // p)
        last = int((landed_by + g.shift + g.eps) // p)
        charged = list(_pairs(record))
        have = {window for window, _ in charged}
        # Slower than assumed (a busy loop, a slow network): count it where it
        # may have landed, so our count of a window is never below Binance's.
        charged += [
            (window, counter.add(window, weight))
            for window in range(first, last + 1)
            if window not in have
        ]
        possible = [(w, own) for w, own in charged if first <= w <= last]
        for window, _ in charged:
            if window < first or window > last:
                counter.remove(window, weight)
                freed = True
        header = self.spec.header
        reported = headers.get(header) if header is not None else None
        if reported is None or not answered:
            return freed, 0
        try:
            value = int(reported)
        except ValueError:
            log.warning("ignoring unreadable %s header: %r", header, reported)
            return freed, 0
        # Across a boundary the report may be either window's. It is read as
        # the window the request was written in (on our estimate of Binance's
        # clock): a busy loop stamps answers late, so the middle of the flight
        # would take an ending window's count for the new one's and stop the
        # new window for nobody; if it did land later, the next answer landing
        # wholly in the new window reports on it.
        at = int((sent + g.shift) // p)
        window, own = min(sorted(possible), key=lambda pair: abs(pair[0] - at))
        # Binance told us the count: nothing of a previous life is unknown (if
        # it landed in the next window, that one began after the governor did).
        self.cold = self.out = 0
        self._note_others(window, value, own, landed_by, g)
        # What others spent, for the next windows' reservation: the highest
        # report less what of ours was answered as landed there. Not the report
        # less `own` (our count when this one was admitted): ours admitted later
        # but counted earlier (several connections, jitter, a wait for the
        # write) would pass for someone else's, and a process alone on its IP
        # would reserve a part of every window for nobody. (This window's own
        # count is still raised by `own`: safe.)
        # Only a request known to have landed in `window` counts as ours there.
        # One that may have landed in the next (written before a boundary,
        # answered after it) may be the next window's: credited here, it took
        # its weight off what others spent here, and the reservation of the next
        # windows with it (180 of ours beside 100 of theirs in a 200 window).
        # Left out, it can only make others' weight look larger: safe.
        landed = self.landed.get(window, 0)
        if len(possible) == 1:
            landed = self.landed[window] = landed + weight
        peak = self.peak[window] = max(value, self.peak.get(window, 0))
        others = self.seen[window] = max(peak - landed, 0)
        # The newest news sets what the next windows reserve: the most others
        # spent in the newest window heard of, or half the level before it
        # (they may spend late in the window: more news of it raises it back).
        if window > self.news:
            self.news, self.base = window, self._expected()
        if window == self.news:
            self.hint = max(others, self.base >> 1)
        # Windows opened after this one before any news of it (a wide landing
        # interval opens two at once) were reserved blind: reserve this much.
        if others:
            others = min(others, self.limit - self.heaviest)
            for later in range(window + 1, self.top + 1):
                if counter.foreign(later) < others:
                    counter.reserve(later, others)
                    self.reserved[later] = max(others, self.reserved.get(later, 0))
        rose = counter.report(window, value, own)
        if rose:
            log.debug("%s: Binance reports %d used; %d spent elsewhere", self.key, value, rose)
        return freed, rose

    # -- another governor on the IP ---------------------------------------------
    #
    # Two processes that each keep their own count (two workers behind one NAT)
    # learn of each other only from usage headers, a trip late. Racing for the
    # end of a window, each would fill what it believes is left, and together
    # they would send up to twice that: a 429, then the other's requests already
    # on the way arrive over the limit, and Binance bans the IP. So while others
    # are seen spending in a pool (a sure lower bound from the headers, or a
    # reservation from earlier windows), the pool also holds back, for a lag
    # (the time before what the other sends shows in our answers: about two trips):
    # * what others were newly seen to spend: they may still be spending at that rate;
    # * as much as we admitted ourselves: the other, unseen, may have done the same.
    # Each process then takes at most half of what it sees left per lag, and
    # the two together never more than all of it. Alone on the IP, nothing changes.

    def _note_others(self, window: int, value: int, own: int, at: float, g: Geometry) -> None:
        """A report of ``value`` used in ``window`` (answered at ``at``) for a request
        that was our ``own``-th unit there: are others spending, now?"""
        if not self.adapts:
            return  # a shared storage counts the others: they do not race us
        counter = self.counter
        # Everything of ours that can have landed in `window` by now is charged
        # there: a report above that is a sure sign that others spent there.
        if window not in self.spent and value <= counter.used(window) - counter.foreign(window):
            return  # alone, as far as this report can tell
        # What they spent, to tell whether they still spend: the report less
        # ours admitted before this one (ours answered meanwhile do not count).
        spent = value - own
        before, since = self.spent.get(window, (0, window * self.period - g.shift))
        known = max(before, self.reserved.get(window, 0))
        if spent > before:
            self.spent[window] = (spent, at)
        if spent <= known:
            return  # within what was reserved for them, or known already: no race
        # Their rate, over a lag: what they spent since the window began (or
        # since the last news) is not all still on its way.
        lag = self._lag(g)
        grew = spent - known
        if at - since > lag:
            grew = int(grew * lag / (at - since))
        self._forget_shared(at, g)
        self.rose.append((at, grew))
        # Their next step, which we may never hear of, is no bigger than their
        # last: each takes at most half of what it sees left.
        self.step, self.step_in = grew, window
        self.raced = max(self.raced, window)
        # Seen spending between two of our answers, they race us for this
        # window: share it to its end (what they send last we may never hear
        # of). A first report of a window shows what they spent, not that
        # they still spend: share it for a few lags.
        if before == 0:
            self.step = 0  # a first report: what they spent, not a step
        end = at + _RACING * lag if before == 0 else (window + 1) * self.period - g.shift + lag
        self.shared_until = max(self.shared_until, end)
        self._geo = None  # off the cached fast path: it does not share

    def _lag(self, g: Geometry) -> float:
        """How long before what another process sends shows in our answers."""
        return g.margin + g.trip

    def _shared_extra(self, t: float, g: Geometry) -> int:
        """Weight held back at ``t`` for another process's unseen requests."""
        since = t - self._lag(g)
        return (
            (self.step if int((t + g.shift) // self.period) == self.step_in else 0)
            + sum(w for at, w in self.rose if at > since)
            + sum(w for at, w in self.mine if at > since)
        )

    def _eases(self, t: float, g: Geometry) -> float:
        """The next moment after ``t`` when less is held back for others."""
        since = t - self._lag(g)
        first = min(
            next((at for at, _ in queue if at > since), INF) for queue in (self.rose, self.mine)
        )
        return first + self._lag(g) + NUDGE

    def _forget_shared(self, now: float, g: Geometry) -> None:
        since = now - self._lag(g)
        for queue in (self.rose, self.mine):
            while queue and queue[0][0] <= since:
                queue.popleft()

    def seed(self, sent: list[float], weight: int, now: float, g: Geometry) -> None:
        """Count requests written at monotonic ``sent`` by an earlier process."""
        p, counter = self.period, self.counter
        current = int((now + g.lo) // p)
        for t in sent:
            lo, hi = int((t + g.lo) // p), int((t + g.hi) // p)
            for window in range(max(lo, current), hi + 1):
                counter.add(window, weight)

    def estimate(self, now: float, total: int, g: Geometry) -> float:
        p = self.period
        t = max(now, self.frozen_until)
        lo, hi = int((t + g.lo) // p), int((t + g.hi) // p)
        room = self.limit - max(self._used(i) for i in range(lo, hi + 1))
        if total <= room:
            return t
        windows = math.ceil((total - max(room, 0)) / self.limit)
        return (hi + windows) * p - g.lo + NUDGE

    def freeze_default(self, now: float, g: Geometry) -> float:
        p = self.period
        return (int((now + g.hi) // p) + 1) * p - g.lo + NUDGE

    def usage(self, now: float, g: Geometry) -> tuple[int, float]:
        p = self.period
        window = int((now + g.shift) // p)
        return self.counter.used(window), (window + 1) * p

    def idle(self, now: float, g: Geometry) -> bool:
        newest = self.counter.newest()
        return not self.inflight and (newest is None or newest < int((now + g.lo) // self.period))


def _pairs(record: tuple[int, ...]) -> zip[tuple[int, int]]:
    return zip(record[::2], record[1::2], strict=True)


def _sorted_pairs(flat: list[int]) -> list[int]:
    pairs = sorted(zip(flat[::2], flat[1::2], strict=True))
    return [x for pair in pairs for x in pair]


class CapPool(Pool):
    """Calls in a rolling window, as the times they stop counting (see ``CallCounter``).

    Admitted, a call counts until ``admission + period + margin`` (it lands
    within the trip bound); written, until its answer (``inf``); answered, until
    ``answer + period`` (plus the guard band and 100 ppm of drift): it reached
    Binance before we heard back, and both times are on our one monotonic
    clock, so the clock's offset does not enter, only its rate.
    """

    __slots__ = ("calls",)

    def __init__(self, spec: PoolSpec, calls: CallCounter) -> None:
        super().__init__(spec)
        self.calls = calls

    def warm_at(self, g: Geometry) -> float:
        return self.born + self.period * (1 + _DRIFT) + g.margin

    def ready_at(self, now: float, weight: int, g: Geometry) -> float:
        if weight > self.limit:
            return INF  # until some of what is held back is charged
        t = max(now, self.frozen_until)
        if self.cold:
            t = max(t, self.cold_ready(now, g))
        calls = self.calls
        calls.prune(now)
        excess = len(calls) + weight - self.limit
        if excess <= 0:
            return t
        return max(t, calls[excess - 1] + NUDGE)

    def charge(self, now: float, weight: int, g: Geometry) -> float:
        if self.cold:
            self.out += 1
        until = now + self.period + g.margin + NUDGE
        self.calls.add(until)
        return until

    def take(self, now: float, weight: int, g: Geometry) -> float | None:
        if now < self.frozen_until:
            return None
        if self.cold and self.cold_ready(now, g) > now:
            return None
        calls = self.calls
        calls.prune(now)
        if len(calls) + weight > self.limit:
            return None
        if self.cold:
            self.out += 1
        until = now + self.period + g.margin + NUDGE
        calls.add(until)
        return until

    def refund(self, record: float, weight: int, written: bool) -> None:
        self._cold_done(False)
        self.calls.remove(record)  # a record pruned meanwhile is simply gone

    def renew(self, record: float, weight: int, now: float, g: Geometry) -> float | None:
        if now < self.frozen_until:
            return None
        calls = self.calls
        calls.prune(now)
        if not calls.remove(record) and len(calls) + weight > self.limit:
            return None  # it had expired unsent, and its slot was taken meanwhile
        calls.add(INF)
        return INF

    def settle(
        self,
        record: float,
        weight: int,
        sent: float,
        landed_by: float,
        headers: Mapping[str, str],
        g: Geometry,
        answered: bool,
        written: bool,
    ) -> tuple[bool, int]:
        calls = self.calls
        calls.remove(record)
        # Binance's clock may run slower than ours (drift): its period is a
        # little longer on our clock; the guard band covers a step.
        calls.add(landed_by + self.period * (1 + _DRIFT) + g.guard)
        self._cold_done(answered)
        return True, 0

    def seed(self, sent: list[float], now: float, g: Geometry) -> None:
        """Count calls written at monotonic ``sent`` by an earlier process; then warm."""
        for t in sent:
            # As an answered call: it may have landed up to a trip after it was sent.
            until = t + g.margin + self.period * (1 + _DRIFT) + g.guard
            if until > now:
                self.calls.add(until)
        self.cold = self.out = 0

    def estimate(self, now: float, total: int, g: Geometry) -> float:
        calls = self.calls
        calls.prune(now)
        t = max(now, self.frozen_until)
        # In flight: it cannot stop counting before a period from now.
        ends = [c if c != INF else now + self.period for c in calls]
        ends.sort()
        excess = len(ends) + total - self.limit
        if excess <= 0:
            return t
        if excess <= len(ends):
            return max(t, ends[excess - 1] + NUDGE)
        rounds = math.ceil((excess - len(ends)) / self.limit)
        return max(t, (ends[-1] if ends else now) + rounds * self.period + NUDGE)

    def freeze_default(self, now: float, g: Geometry) -> float:
        calls = self.calls
        calls.prune(now)
        if not len(calls):
            return now
        return calls[0] + NUDGE if calls[0] != INF else now + self.period

    def usage(self, now: float, g: Geometry) -> tuple[int, float]:
        calls = self.calls
        calls.prune(now)
        n = len(calls)
        first = calls[0] if n else now
        return n, g.shift + (first if first != INF else now + self.period)

    def idle(self, now: float, g: Geometry) -> bool:
        self.calls.prune(now)
        return not len(self.calls)
