"""Fixed windows aligned to Binance's clock: IP and account (UID) weight.

A request is charged to every window it may land in (see ``_geometry``). Once
written (``Governor.renew``) it is *in flight* until its answer: however late
that answer, the request may still land, so each window that opens while it
flies counts it too (a "ghost" charge, given back when the answer shows where
it could have landed). Usage headers correct the count of the window they
report on, and tell what others spend (``settle``): the next windows open with
that much reserved for them, and a window shared with another governor is
shared, not raced for (``_sharing``).
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_right
from collections import deque
from collections.abc import Mapping

from .._limits import PoolSpec
from .._storage import WindowCounter
from ._geometry import INF, NUDGE, Geometry
from ._sharing import Sharing

__all__ = ["FixedPool"]

log = logging.getLogger("binance_transfers.governor")


class FixedPool(Sharing):
    """Weight per fixed window, windows aligned to Binance's clock."""

    __slots__ = (
        "base",
        "capped",
        "counter",
        "doubts",
        "flying",
        "ghosts",
        "heaviest",
        "hint",
        "inflight",
        "landed",
        "maybe",
        "news",
        "paced",
        "peak",
        "seen",
        "shares",
        "top",
        "unanswered",
        "written",
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
        self.capped = -(2**62)  # the latest window full when a request wanted in
        self.paced = -(2**62)  # the latest window shared when a request wanted in
        self.seen: dict[int, int] = {}  # window -> weight others were seen to spend there
        self.shares: dict[int, int] = {}  # window -> what others' spending there asks to reserve
        self.landed: dict[int, int] = {}  # window -> our weight answered as landed there
        self.peak: dict[int, int] = {}  # window -> the highest usage reported there
        self.maybe: dict[int, int] = {}  # window -> ours answered, landed there or in a neighbour
        # id(record) -> (write time, weight) of ours in flight: a report counts
        # those written before its own request.
        self.flying: dict[int, tuple[float, int]] = {}
        self.written = _Written()  # their weights by write time: see ``settle``
        # id(record) of ours admitted while sharing and not answered (or given back) yet.
        self.unanswered: set[int] = set()
        # id(record) -> (weight, {window: others there if it is not}) of ours in
        # flight that reports of those windows were read as counting. It can
        # have landed in one window only: see ``_doubt``.
        self.doubts: dict[int, tuple[int, dict[int, int]]] = {}
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
        self.racers = 1  # others racing us for a shared window (estimated)
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
            self.shares = {w: v for w, v in self.shares.items() if w >= recent}
        if self.landed and min(self.landed) < recent:
            self.landed = {w: v for w, v in self.landed.items() if w >= recent}
            self.peak = {w: v for w, v in self.peak.items() if w >= recent}
            self.maybe = {w: v for w, v in self.maybe.items() if w >= recent}
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
        if self.doubts:
            used += self._doubt(window)
        if window <= self.top:
            return used
        hint = self._expected()
        return used + self.inflight + max(hint - self.counter.foreign(window), 0)

    def _doubt(self, window: int) -> int:
        """What others may have spent in ``window`` beyond what is reserved for them.

        A report counts ours in flight written before its request as ours (B4-4:
        a lone process's unanswered burst is nobody else's), so what others are
        seen to spend there is the least it can be. But a request in flight
        lands in one window only: if it is not in the window whose report it
        was read into, others spent that much more there, and may again in the
        other windows it may land in (where it is counted as ours too). Until
        its answer comes, hold its weight back there as well (breaker5 B5-5:
        a slow request read into window w's report left w + 1 reserved 30 for a
        process that spent 60: 150 + 60 > 200).
        """
        return sum(w for w, reads in self.doubts.values() if len(reads) > 1 or window not in reads)

    def _undoubt(self, doubt: tuple[int, dict[int, int]], window: int | None) -> None:
        """Ours counted in reports of other windows was answered, read as ``window``'s.

        It did not land in those: others spent there what those reports say
        without it (B5-5: a slow request of window w, counted in w + 1's reports,
        answered after them: w + 2 opened with half of what others spent in
        w + 1 reserved). Read as its own window's, a report counts it there.
        """
        for read, others in doubt[1].items():
            if read == window or read not in self.seen or others <= self.seen[read]:
                continue
            self.seen[read] = others
            share = self.shares[read] = max(
                self._share(read, others, self.peak.get(read, others)), self.shares.get(read, 0)
            )
            if read == self.news:
                self.hint = max(self.hint, share)
            others = min(others, self.limit - self.heaviest)
            for later in range(read + 1, self.top + 1):
                if self.counter.foreign(later) < others:
                    self.counter.reserve(later, others)
                    self.reserved[later] = max(others, self.reserved.get(later, 0))

    def _share(self, window: int, others: int, total: int) -> int:
        """What to reserve for others in the next windows, having seen them spend
        ``others`` of ``total`` reported in ``window``.

        What they spent, as long as we could take all we wanted beside it. When
        we could not (the window was full when a request of ours wanted in),
        others may have wanted more too, and what was left unused (the gap) is
        shared (B4-3): we take the larger of our share of the whole limit as we
        had it of the total (k processes doing so take the gap once, not k
        times) and our share of the gap among the racers we know of (a process
        that had little grows: by its share of the total alone it would stay
        small for good). Plus one heaviest request: room for another to grow,
        or to join (a newcomer's first request lands there instead of earning
        a 429 each window behind a process that fills every window alone),
        where that costs at most 2 % of the window.
        """
        spare = self.heaviest if 50 * self.heaviest <= self.limit else 0
        if self.capped < window and self.paced < window:
            return others
        if others <= 0 or total <= others:
            return spare
        if self.capped < window:
            # Held back by sharing, not by the window's end: what we had is no
            # share to keep; what we allowed ourselves is (a process spending
            # half of every window at its start does not shrink us).
            total = max(total, others + self.limit - self.reserved.get(window, 0))
        gap = max(self.limit - total, 0)
        ours = -(-self.limit * others // total)
        grown = others + gap - gap // (self.racers + 1)
        # Never less than they spent (a window over the limit would shrink
        # their part below it: a process that does not adapt keeps spending it).
        return max(others, min(ours, grown)) + spare

    def _few(self) -> bool:
        """A window holds few requests as heavy as ours (each over 2 % of it).

        Shared with another process, each of whose requests we learn of a trip
        late, two of ours on their way may each be the one that fills the
        window: the first gets a 429, and the second, already sent, arrives
        over the limit after it, which Binance answers with a ban (breaker5
        B5-3: two processes of PM Pro auto-collection, 8 calls a window). So
        while sharing such a pool, one request at a time: each answer tells
        the count before the next leaves (8 trips a window: a few seconds of
        a minute), and at most one of ours can ever meet a full window.
        """
        return 50 * self.heaviest > self.limit

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
        if self.unanswered and t < self.shared_until and self._few():
            # One at a time (B5-3): see ``_few``. The answer wakes the queue.
            return self.shared_until
        for _ in range(64):
            lo, hi = int((t + lo_shift) // p), int((t + hi_shift) // p)
            full = next((i for i in range(hi, lo - 1, -1) if used(i) > cap), None)
            if full is None:
                if t < self.shared_until:
                    # ... and as much as this one: each other may take as much now
                    # (no more than they spend in a window: another endpoint's
                    # light requests in a bucket of heavy ones are no racer).
                    # At least two others: a newcomer's estimate starts at one
                    # racer and lags (a 4th process joining three overran by 40).
                    step = min(weight, self.hint + self.step)
                    extra = self._shared_extra(t, g) + max(self.racers, 2) * step
                    tight = next((i for i in range(hi, lo - 1, -1) if used(i) > cap - extra), None)
                    if tight is not None:
                        self.paced = max(self.paced, tight)  # shared, and more of it wanted
                        # When less is held back, the sharing ends, or the window is past.
                        t = min(
                            self._eases(t, g),
                            self.shared_until,
                            (tight + 1) * p - lo_shift + NUDGE,
                        )
                        continue
                return t
            # Budget-limited there, not demand-limited (see ``_share``).
            self.capped = max(self.capped, full)
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
        if lo == hi == self.top and not self.cold and now >= self.shared_until and not self.doubts:
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
            record: tuple[int, ...] = (lo, add(lo, weight))
        else:
            # Up to `top`: a window opened earlier may be landed in if this one is late.
            record = tuple(x for i in range(lo, max(hi, self.top) + 1) for x in (i, add(i, weight)))
        if now < self.shared_until:
            self.unanswered.add(id(record))  # see ``_few``
        return record

    def refund(self, record: tuple[int, ...], weight: int, written: bool) -> None:
        self.unanswered.discard(id(record))
        self._cold_done(False)
        for window in record[::2]:
            self.counter.remove(window, weight)
        if written:
            self._unghost(record, weight)

    def _unghost(self, record: tuple[int, ...], weight: int) -> None:
        """It is no longer in flight: take it out of the windows opened meanwhile."""
        self.inflight -= weight
        if self.flying.pop(id(record), None) is not None:
            self.written.remove(id(record))
        if self.doubts:
            self.doubts.pop(id(record), None)
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
        if (
            self._geo is g
            and self._from <= now < self._until
            and len(record) == 2
            and record[0] == self._window == self.top
        ):
            # Written within the cached window (see ``take``): it can land there
            # only, and no later window is open: the record stays as it is.
            self.inflight += weight
            self._fly(id(record), now, weight)
            return record
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
        renewed = tuple(_sorted_pairs(kept))
        if id(record) in self.unanswered:
            self.unanswered.remove(id(record))
            self.unanswered.add(id(renewed))
        self.inflight += weight
        self._fly(id(renewed), now, weight)
        return renewed

    def _fly(self, key: int, now: float, weight: int) -> None:
        """In flight from ``now``: ``flying`` stays in write order (see ``settle``)."""
        flying = self.flying
        if key in flying:  # the id of a record never answered nor given back
            del flying[key]
            self.written.remove(key)
        flying[key] = (now, weight)
        self.written.add(key, now, weight)

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
        doubt = self.doubts.pop(id(record), None) if self.doubts else None
        if written:  # no longer in flight: waiters blocked by it may go
            self._unghost(record, weight)
        one = id(record) in self.unanswered  # see ``_few``: the next may go
        if one:
            self.unanswered.remove(id(record))
        freed = self._cold_done(answered) or written or one
        # It reached Binance after it was sent and before its answer (or the grace).
        first = int((sent + g.lo) // p)
        last = int((landed_by + g.shift + g.eps) // p)
        if first == last and len(record) == 2 and record[0] == first:
            # The common case: charged to one window, and it can have landed
            # only there (nothing to add or give back).
            possible = [(first, record[1])]
        else:
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
            if doubt:
                self._undoubt(doubt, None)
            return freed, 0
        try:
            value = int(reported)
        except ValueError:
            log.warning("ignoring unreadable %s header: %r", header, reported)
            if doubt:
                self._undoubt(doubt, None)
            return freed, 0
        # Across a boundary the report may be either window's. It is read as
        # the window the request was written in (on our estimate of Binance's
        # clock): a busy loop stamps answers late, so the middle of the flight
        # would take an ending window's count for the new one's and stop the
        # new window for nobody; if it did land later, the next answer landing
        # wholly in the new window reports on it.
        if len(possible) == 1:
            window, own = possible[0]
        else:
            at = int((sent + g.shift) // p)
            window, own = min(sorted(possible), key=lambda pair: abs(pair[0] - at))
        # Our estimate of Binance's clock is off by up to
        # eps (half the sync's trip: 1 s with 0.5-2.5 s trips). Written within
        # eps of the boundary, the request may have been written, and landed,
        # in either window. Where ours explain more of the report in the other
        # window, neither reading is safe to learn from: as the write window's
        # it takes ours for others' (a lone process read a window's last report
        # as the next one's: that window stopped, or 3500 of 6000 were reserved
        # for nobody, halving over minutes); as the other's it takes others'
        # for ours (breaker7 B7-1: their weight at a window's start, read as
        # the old window's, lowered their reservation until ours and theirs
        # overran). It is treated as absent: a later answer wholly in one
        # window reports on it. Not on a shared storage (Redis): there a report
        # above everything leased protects a window from late arrivals, and the
        # write window is the safe side; nothing is reserved from news.
        absent = False
        if len(possible) == 2 and self.adapts:
            there = next(pair for pair in possible if pair[0] != window)
            written_at = sent + g.shift
            uncertain = int((written_at - g.eps) // p) <= there[0] <= int((written_at + g.eps) // p)
            absent = uncertain and self._explained(there[0]) > self._explained(window)
        # Binance told us the count: nothing of a previous life is unknown (if
        # it landed in the next window, that one began after the governor did).
        if not absent:  # it told us nothing we can use
            self.cold = self.out = 0
        # What others spent there, for the next windows' reservation: the
        # report less everything of ours that can be in it (B4-4): ours answered
        # as landed there, ours that may have landed there or in a neighbour,
        # and ours written before this one and still unanswered (a report
        # during a burst counts them; they are not someone else's). A lone
        # process then reserves nothing for nobody. Kept as the most any report
        # of the window showed: a report counts what others sent before it.
        if len(possible) == 1:
            sure = [window]
        else:
            charged_at_write = set(record[::2])
            sure = [w for w, _ in possible if w in charged_at_write] or [w for w, _ in possible]
        if len(sure) == 1:
            self.landed[sure[0]] = self.landed.get(sure[0], 0) + weight
        elif not absent:
            # An ignored report's request is ours in neither window (breaker7
            # B7-5: counted "maybe" in both, the next report of either was read
            # against too much of ours: others 0, a steady 60 faded 60 -> 30 ->
            # 15, 150-180 of ours beside it).
            # It landed in one of them only: counted as ours in each, it hides
            # what others spent in all but one (the property test's "min21": a request
            # written 50 ms before a 0.1-s window ended, answered 3 ms after it,
            # counted as ours in the next window too: 50 of the other process's
            # 100 there passed for ours, 110 + 100 of 200 in the window after).
            # Ours where its report is read (the report counts it) and where
            # the middle of its flight was, the likelier window (bench_stress: a
            # PM Pro call written 0.2 s before a minute ended and answered
            # 0.3 s after it is in the new minute's reports).
            middle = int(((sent + landed_by) / 2 + g.shift) // p)
            for w in sure:
                if w in (window, middle):
                    self.maybe[w] = self.maybe.get(w, 0) + weight
        if absent:  # see above
            if doubt:
                self._undoubt(doubt, None)
            self._others_either(possible, value, weight, sent, landed_by, g)
            return freed, 0
        mine = self.landed.get(window, 0) + self.maybe.get(window, 0)
        before = self.written.upto(sent)  # in O(log in-flight), not O(in-flight)
        ours = mine + before
        if len(possible) > 2:
            # It may be any of three windows or more (trips, or the clock's
            # uncertainty, longer than a window): ours there, answered or in
            # flight, may be anywhere in them, and counted in each they hid
            # what others spent (B5-5: four answers read as their write
            # window's, 2 windows before the one they reported on: 10 of the
            # other process's 100). Read it as only ours known to have landed
            # there, and itself, count: a report may then take ours for
            # others' (the safe side), as Binance's windows are far longer than
            # a trip (it takes scaled windows to get here).
            ours = self.landed.get(window, 0) + weight
        elif value > mine and before:
            # ``flying`` is in write order (``_fly``): those written before this
            # one are its head.
            written_before: list[tuple[int, int]] = []
            for key, (t, w) in self.flying.items():
                if t > sent:
                    break
                written_before.append((key, w))
            # Read as counting those in flight: see ``_doubt``.
            doubts = self.doubts
            for key, w in written_before:
                reads = doubts.setdefault(key, (w, {}))[1]
                reads[window] = max(reads.get(window, 0), value - ours + w)
            self._geo = None  # off the cached fast path: it does not doubt
        self._note_others(window, value, own, landed_by, g)
        rough = value - own  # others' weight, as our count when it was admitted reads it
        # Counted as ours in this report: never less than our count when it was
        # admitted (the storage's reading), nor than the above (jitter reorders
        # a burst: the first admitted may land last, over ours that did not
        # come from anyone else). An answer that may be either window's counts
        # itself here (stress7: the 8th of 8 PM Pro calls, written near the
        # boundary, passed for 1500 of someone else's).
        own = max(own, ours)
        peak = self.peak[window] = max(value, self.peak.get(window, 0))
        others = self.seen[window] = max(value - ours, self.seen.get(window, 0), 0)
        # The next windows reserve for others their share of the whole limit,
        # in proportion to what they spent beside us (``_share``).
        # Only news of a newer window may lower the hint (B5-5): within one
        # window, reports count more as they come (in whatever order their
        # answers do).
        fresh = window > self.news
        if fresh:
            self.news, self.base = window, self._expected()
        share = self.shares[window] = self._share(window, others, peak)
        if window == self.news:
            # Racing others for a window, our last report of it may come long
            # before they stopped spending there (we held back while they went
            # on): what the window before asked for stands for one more.
            before = self.shares.get(window - 1, 0) if self.raced >= window else 0
            self.hint = max(share, before, self.base >> 1, 0 if fresh else self.hint)
        # Windows opened after this one before any news of it (a wide landing
        # interval opens two at once) were reserved blind: reserve this much.
        # Those are reserved the rougher reading: no answer of theirs came yet.
        # The rougher reading only once this report shows others at all:
        # a burst of ours reordered by the link's jitter reads
        # roughly as someone else's (the 10th admitted arrives 200th: 6000 less
        # 300), and with a trip bound above a window (a 1.5 s spike) every window
        # opened ahead was reserved that much for nobody (/papi at 7-20 %).
        if others > 0:
            others = min(max(others, rough), self.limit - self.heaviest)
            for later in range(window + 1, self.top + 1):
                if counter.foreign(later) < others:
                    counter.reserve(later, others)
                    self.reserved[later] = max(others, self.reserved.get(later, 0))
        if doubt:
            # Read as its write window's, an answer that may be a neighbour's
            # is no proof of where it landed: it may not be in those reports.
            self._undoubt(doubt, window if len(possible) == 1 else None)
        rose = counter.report(window, value, own)
        if rose:
            log.debug("%s: Binance reports %d used; %d spent elsewhere", self.key, value, rose)
        return freed, rose

    def _others_either(
        self,
        possible: list[tuple[int, int]],
        value: int,
        weight: int,
        sent: float,
        landed_by: float,
        g: Geometry,
    ) -> None:
        """A report read as no window's (see ``settle``) may still prove another process.

        Counted against ours in either window it may be (ours answered there,
        ours written before it and still in flight, and itself), a report above
        both shows someone else spending now, whichever window it is (breaker7
        B7-4: two processes, each writing its share at a window's opening with
        a clock ~1 s uncertain, read every report of the opening as no window's,
        took the new window for their own and sent 6750-7500 of 6000). It is
        noted in the newer window (``_note_others``) and the pool is shared to
        that window's end: one heavy request at a time (``_few``), and room
        held back for the other's next steps. Not for a few lags only: the next
        reports of an opening are as ambiguous, so no step of theirs would show
        (ended after four lags, the pool counted 5250 of 6000 in a window the
        other had filled: a 429). Nothing is reserved or counted from it: which
        window's count it is stays unknown (raising both windows' counts to it
        cost the two processes 4-10 % of /papi in a sweep, for no fewer 429s).
        """
        counted = self.written.upto(sent) + weight
        if all(value > max(own, self._explained(w) + counted) for w, own in possible):
            newer, own = max(possible)
            self._note_others(newer, value, own, landed_by, g)
            if newer not in self.spent:
                # Others surely spent (the least the newer reading shows): the
                # next window opens shared too (``_open``), as after any report
                # showing them (its own test of "ours" counts ours in flight
                # twice, and may have let this one pass for ours).
                spent = value - max(own, self._explained(newer) + counted)
                self.spent[newer] = (spent, landed_by)
            end = (newer + 1) * self.period - g.shift + self._lag(g)
            if end > self.shared_until:
                self.shared_until = end
                self._geo = None  # off the cached fast path: it does not share

    def _explained(self, window: int) -> int:
        """Ours answered as (maybe) landed in ``window``."""
        return self.landed.get(window, 0) + self.maybe.get(window, 0)

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


class _Written:
    """Weight in flight by write time: what was written at or before a moment, in
    O(log n) (a Fenwick tree over the writes in their order; times never decrease).

    A report counts ours written before its own request (``settle``): summing
    them over ``flying`` cost O(in flight) per answer, O(n^2) per window with
    hundreds of coroutines."""

    __slots__ = ("index", "times", "tree", "weights")

    def __init__(self) -> None:
        self.index: dict[int, int] = {}  # key -> position (0-based) in `times`
        self.times: list[float] = []
        self.weights: list[int] = []  # by position; 0 once answered
        self.tree: list[int] = [0]  # 1-based Fenwick tree over `weights`

    def __repr__(self) -> str:  # weights only: times are monotonic, not comparable
        return f"_Written({sorted(self.weights[i] for i in self.index.values())})"

    def add(self, key: int, t: float, weight: int) -> None:
        if not self.index:
            # Nothing in flight (every sequential call): nothing to keep, no sort.
            if self.times:
                self.times, self.weights, self.tree = [], [], [0]
        elif len(self.times) > 4 * len(self.index) + 64:
            self._compact()
        self._append(key, t, weight)

    def remove(self, key: int) -> None:
        i = self.index.pop(key)
        weight, self.weights[i] = self.weights[i], 0
        n, tree = len(self.tree), self.tree
        i += 1
        while i < n:
            tree[i] -= weight
            i += i & -i

    def upto(self, t: float) -> int:
        """The weight in flight written at or before ``t``."""
        i, total, tree = bisect_right(self.times, t), 0, self.tree
        while i:
            total += tree[i]
            i -= i & -i
        return total

    def _compact(self) -> None:
        """Keep only what is in flight (in write order)."""
        keep = sorted(self.index.items(), key=lambda item: item[1])
        times, weights = self.times, self.weights
        self.index, self.times, self.weights, self.tree = {}, [], [], [0]
        for key, i in keep:
            self._append(key, times[i], weights[i])

    def _append(self, key: int, t: float, weight: int) -> None:
        i = len(self.times)
        self.index[key] = i
        self.times.append(t)
        self.weights.append(weight)
        # The new node covers positions (n - lowbit(n), n]: its weight and the
        # nodes below it.
        n, node, child, tree = i + 1, weight, i, self.tree
        while child > n - (n & -n):
            node += tree[child]
            child -= child & -child
        tree.append(node)
