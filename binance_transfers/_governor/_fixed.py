"""Fixed windows aligned to Binance's clock: IP and account (UID) weight.

A request is charged to every window it may land in (see ``_geometry``). Once
written (``Governor.renew``) it is *in flight* until its answer: however late
that answer, the request may still land, so each window that opens while it
flies counts it too (a "ghost" charge, given back when the answer shows where
it could have landed). Usage headers correct the count of the window they
report on, and tell what others spend (``settle``, in ``_reports``): the next
windows open with that much reserved for them, and a window shared with
another governor is shared, not raced for (``_sharing``).
"""

from __future__ import annotations

import math
from collections import deque

from .._limits import PoolSpec
from .._storage import WindowCounter
from ._geometry import INF, NUDGE, Geometry
from ._probes import Probes
from ._reports import pairs
from ._sharing import NEVER
from ._writes import Writes

__all__ = ["FixedPool"]


class FixedPool(Probes):
    """Weight per fixed window, windows aligned to Binance's clock."""

    __slots__ = (
        "counter",
        "doubts",
        "flying",
        "ghosts",
        "heaviest",
        "inflight",
        "landed",
        "maybe",
        "peak",
        "seen",
        "shares",
        "top",
        "unanswered",
        "vague",
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
        self.probe_at = -INF  # cold: the next request leaves then at the earliest (``_probed``)
        self.opening, self.opening_out, self.rolls = 0.0, set(), False  # ``_first_opening``
        self.capped = -(2**62)  # the latest window full when a request wanted in
        self.paced = -(2**62)  # the latest window shared when a request wanted in
        self.seen: dict[int, int] = {}  # window -> weight others were seen to spend there
        self.shares: dict[int, int] = {}  # window -> what others' spending there asks to reserve
        self.landed: dict[int, int] = {}  # window -> our weight answered as landed there
        self.peak: dict[int, int] = {}  # window -> the highest usage reported there
        self.counts: dict[int, list[tuple[float, int]]] = {}  # see ``_below``
        self.maybe: dict[int, int] = {}  # window -> ours answered, landed there or in a neighbour
        self.vague: dict[int, int] = {}  # window -> ours answered, read as no window's, maybe there
        # id(record) -> (write time, weight) of ours in flight: a report counts
        # those written before its own request.
        self.flying: dict[int, tuple[float, int]] = {}
        self.written = Writes()  # their weights by write time: see ``settle``
        # id(record) of ours admitted while sharing and not answered (or given back) yet.
        self.unanswered: set[int] = set()
        # id(record) -> (weight, {window: others there if it is not}) of ours in
        # flight that reports of those windows were read as counting. It can
        # have landed in one window only: see ``_doubt``.
        self.doubts: dict[int, tuple[int, dict[int, int]]] = {}
        # Sharing the IP with another governor (see ``_shared_extra``); not
        # when the storage is shared by the processes (Redis): it counts them.
        self.adapts = True
        self.closed = NEVER  # see ``_first_contact``
        self.shared_until = -INF  # monotonic: share the pool until then
        self.raced = -(2**62)  # the latest window where others spent more than reserved
        self.others_in = NEVER  # the latest window where others surely spent
        self.quiet: set[int] = set()  # windows after it whose reports showed no one else
        self.faded = self.unprobed = NEVER  # see ``_late`` and ``_unprobed``
        self.reserved: dict[int, int] = {}  # window -> weight reserved there for others
        # window -> (the most others were seen to have spent there, when it was learnt)
        self.spent: dict[int, tuple[int, float]] = {}
        self.rose: deque[tuple[float, int]] = deque()  # (when, others' weight newly seen)
        self.mine: deque[tuple[float, int]] = deque()  # (when, our weight admitted)
        self.step = 0  # others' last step seen while sharing
        self.racers = 1  # others racing us for a shared window (estimated)
        self.step_in = 0  # the window it was seen in
        self.met = NEVER  # the latest window of a first news of others (``_sharing``)
        self.rival = 1  # the heaviest request any process may send here (``_plans``)
        self.crowd = (NEVER, 0)  # racers in one of our first windows (``_note_others``)
        self.hazy = NEVER  # see ``_others_either``
        self.young_until = -INF  # monotonic: one request at a time until then (``_young``)

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
        if self.counts and min(self.counts) < recent:
            self.counts = {w: v for w, v in self.counts.items() if w >= recent}
        if self.vague and min(self.vague) < recent:
            self.vague = {w: v for w, v in self.vague.items() if w >= recent}
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
            if not self._gone(window) and (hint or self.raced >= window - 1):
                # Others surely spent, and our reports since have not shown
                # them gone (``_gone``): if they adapt to us as we do to them,
                # each sizes its start to what the other left in the last
                # window, together more than there is when some was left
                # unused. Share it from its start to the moment nothing written
                # can land in it any more: our estimate of its end is eps off
                # (B8-3: a request written as sharing ended, on that
                # estimate, landed in the window's last 0.3 s: 6750 of 6000).
                end = (window + 1) * self.period - g.lo + NUDGE
                self.shared_until = max(self.shared_until, end)
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
        if window == self.met:  # room for one request of theirs (``_sharing``)
            used += self.rival
        if window <= self.top:
            return used
        hint = self._expected()
        return used + self.inflight + max(hint - self.counter.foreign(window), 0)

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
        if self.cold:  # and not before a moment its answer can show others (``_probed``)
            t = max(t, self.cold_ready(now, g), self.probe_at)
            if not self.cold:
                self._young(t, g)  # warmed by the timer
        lo_shift, hi_shift = g.lo, g.hi
        reach = max(int((now + hi_shift) // p), self.top)
        news = self.hint >= self.limit  # others fill windows alone (``_news_only``)
        if self.unanswered and self._few():
            # One at a time (B5-3): see ``_few`` and ``_young``. The answer wakes the queue.
            if t < self.shared_until:
                return max(self.shared_until, self.young_until)
            if t < self.young_until and self._heavy(weight):  # heavy ones only
                out = self._young_out(g)
                if t < out:
                    return out
        for _ in range(64):
            lo, hi = int((t + lo_shift) // p), int((t + hi_shift) // p)
            if news and (opening := self._news_wait(t, lo, g)) is not None:
                t = opening  # the next window's opening (``_probes``)
                continue
            if self._left_to_them(lo, hi, weight, g):
                t = (self.closed + 1) * p - lo_shift + NUDGE  # others' (``_first_contact``)
                continue
            full = next((i for i in range(hi, lo - 1, -1) if used(i) > cap), None)
            if full is None:
                held, late = self._held(t, hi, g)  # a request kept for the window's end
                if t < self.shared_until:
                    # ... and as much as this one: each other may take as much now
                    # (no more than they spend in a window: another endpoint's
                    # light requests in a bucket of heavy ones are no racer).
                    # At least two others: a newcomer's estimate starts at one
                    # racer and lags (a 4th process joining three overran by 40).
                    step = min(weight, self.hint + self.step)
                    racers = max(self.racers, 2)
                    if self.crowd[0] == hi and self.crowd[1] > racers:
                        racers = self.crowd[1]
                    extra = self._shared_extra(t, g) + racers * step
                    tight = next((i for i in range(hi, lo - 1, -1) if used(i) > cap - extra), None)
                    if tight is not None:
                        self.paced = max(self.paced, tight)  # shared, and more of it wanted
                    elif held and used(hi) > cap - extra - held:
                        tight = hi  # one of ours waits for the window's end (``_held``)
                    if tight is not None:
                        self._unprobed(now, tight, g)  # past its late request's moment?
                        # When less is held back, the sharing ends, or the window is past.
                        t = min(
                            self._eases(t, g),
                            self.shared_until,
                            late,
                            (tight + 1) * p - lo_shift + NUDGE,
                        )
                        continue
                elif held and used(hi) > cap - held:
                    t = late
                    continue
                # The report wakes it (``settle``), or the window's end.
                return self._opening_end(g) if self._first_opening(t, g, weight) else t
            # Budget-limited there, not demand-limited (see ``_share``): only a
            # window a request written now can reach. One further on looks full
            # of what is in flight now (and reserved), answered before it opens:
            # marked, it made ``_share`` split the gap with others in the reports
            # of 64 windows (3375 kept for a neighbour spending 1500; ours 750).
            if full <= reach:
                self.capped = max(self.capped, full)
            self._unprobed(now, full, g)
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
        if (
            lo == hi == self.top
            and not self.cold
            and now >= self.shared_until
            and now >= self.young_until
            and not self.doubts
            and not self._news_only(lo)  # its last request waits for an opening
            and lo != self.closed  # heavy ones wait for the next (``_first_contact``)
            and self.opening > lo  # its requests land before the next opening probed
            and not self._held(now, lo, g)[0]  # one waits for the window's end
        ):
            self._geo, self._window = g, lo
            self._from = lo * p - g.lo + NUDGE
            self._until = min((lo + 1) * p - g.hi - NUDGE, g.until)
        return record

    def charge(self, now: float, weight: int, g: Geometry) -> tuple[int, ...]:
        if self.cold:
            self.out += 1
        if now < self.shared_until or now < self.young_until:
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
        if now < self.shared_until or now < self.young_until:
            self.unanswered.add(id(record))  # see ``_few``
        self._opening_sent(record)
        return record

    def refund(self, record: tuple[int, ...], weight: int, written: bool) -> None:
        self.unanswered.discard(id(record))
        self._cold_done(False)
        self._opening_done(record)
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
        if not self.ghosts:
            return  # nearly always: no window opened while it flew
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
        if self._left_to_them(lo, top, weight, g):
            return None  # admitted before others were first seen there (``_first_contact``)
        self._open(lo, hi, g)
        kept: list[tuple[int, int]] = []
        for window, own in pairs(record):
            if window < lo:  # written too late to land there any more
                counter.remove(window, weight)
            else:
                kept.append((window, own))
        kept += [(i, counter.add(i, weight)) for i in extra]
        renewed = tuple(x for pair in sorted(kept) for x in pair)
        if id(record) in self.unanswered:
            self.unanswered.remove(id(record))
            self.unanswered.add(id(renewed))
        self._opening_sent(renewed, record)
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

    def seed(self, sent: list[float], weight: int, now: float, g: Geometry) -> None:
        """Count requests written at monotonic ``sent`` by an earlier process."""
        p, counter = self.period, self.counter
        current = int((now + g.lo) // p)
        for t in sent:
            lo, hi = int((t + g.lo) // p), int((t + g.hi) // p)
            for window in range(max(lo, current), hi + 1):
                counter.add(window, weight)

    def estimate(self, now: float, total: int, g: Geometry, weight: int) -> float:
        p = self.period
        t = max(now, self.frozen_until)
        if self.cold:  # the next request waits for a moment its answer can show others
            t = max(t, self.warm_at(g) if self.lost else self.probe_at)
        t = self._news_waits(t, weight, g)
        lo, hi = int((t + g.lo) // p), int((t + g.hi) // p)
        for _ in range(64):
            if lo == hi or self._used(lo) <= self.limit - total:
                break
            # Full where its earliest landing falls only (a window ending):
            # past it, the next window's room counts. Read as full through
            # the next window too, a refusal at a minute's opening told every
            # caller to come back a minute later: a window of nothing sent.
            t = (lo + 1) * p - g.lo + NUDGE
            lo, hi = int((t + g.lo) // p), int((t + g.hi) // p)
        room = self.limit - max(self._used(i) for i in range(lo, hi + 1))
        if total <= room:
            return max(t, self._ready_unless_news(now, weight, g))
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
