"""Usage reports: what an answer's header says of a window, and of others.

An answer's ``X-MBX-USED-WEIGHT-*`` header is Binance's count of the window
the request landed in, when it was counted. ``settle`` reads it: it corrects
that window's count, and whatever in it is not ours is what others spend,
which the next windows reserve for them (``_share``, kept as ``hint``). Near a
boundary the report may be either window's; read as the wrong one it would
take ours for others' or theirs for ours, so an ambiguous report is read as
no window's (``_others_either``, in ``_doubts``). Ours in flight that a report
was read as counting may have landed elsewhere: held back there too (``_doubt``).
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._doubts import Doubts
from ._geometry import INF, Geometry
from ._sharing import NEVER

__all__ = ["Reports", "pairs"]

log = logging.getLogger("binance_transfers.governor")


class Reports(Doubts):
    """The report-reading half of a :class:`~._fixed.FixedPool` (which sets these up)."""

    # Assigned here (the rest is set up by ``FixedPool``).
    __slots__ = ("base", "capped", "counts", "news", "paced")

    base: int  # the expectation before news of the newest window came
    capped: int  # the latest window full when a request wanted in
    # window -> [(answered at, the highest count reported there so far)], rising:
    # from reports that can be that window's only (``_count``, ``_below``).
    counts: dict[int, list[tuple[float, int]]]
    flying: dict[int, tuple[float, int]]  # id(record) -> (write time, weight) in flight
    heaviest: int
    hint: int  # weight others are expected to spend per window (see ``_expected``)
    landed: dict[int, int]  # window -> our weight answered as landed there
    maybe: dict[int, int]  # window -> ours answered, landed there or in a neighbour
    news: int  # the newest window whose weight from others was reported
    paced: int  # the latest window shared when a request wanted in
    peak: dict[int, int]  # window -> the highest usage reported there
    seen: dict[int, int]  # window -> weight others were seen to spend there
    shares: dict[int, int]  # window -> what others' spending there asks to reserve
    unanswered: set[int]  # id(record) of ours admitted while sharing, not answered
    vague: dict[int, int]  # window -> ours answered in a report read as no window's, maybe there

    if TYPE_CHECKING:

        def _unghost(self, record: tuple[int, ...], weight: int) -> None: ...

        def _probed(self, sent: float, possible: list[tuple[int, int]], g: Geometry) -> None: ...

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
        spare = 0 if self._heavy(self.heaviest) else self.heaviest
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

    def _expected(self) -> int:
        """Weight to reserve for others in a window opened now.

        The newest news (``hint``, kept by ``settle``) does not fade with the
        windows opened without news: several open at once when the landing
        interval is wide, and a quiet spell opens none; neither says what
        others spend. Only news fades it: it never takes the room of the
        heaviest request, whose answer brings news.
        """
        return min(self.hint, self.limit - self.heaviest)

    def _count(self, window: int, at: float, value: int) -> None:
        """A report answered at ``at`` showed ``value`` used in ``window``.

        Counts learnt within 1/256 of a window of the last are one, at the later
        time (what ``_below`` rules out with it it rules out later, never
        wrongly): a few hundred at most, however light the requests.
        """
        seen = self.counts.get(window)
        if seen is None:
            self.counts[window] = [(at, value)]
            return
        last, top = seen[-1]
        if value > top:
            if at < last:
                at = last
            if at - last < self.period * (1 / 256):
                seen[-1] = (at, value)
            else:
                seen.append((at, value))

    def _below(self, window: int, sent: float, before: int) -> bool:
        """A request written at ``sent`` found ``before`` used where it landed: not
        ``window``, where a report answered before its write showed more.

        A window's count only grows until it ends: a request written after an
        answer showed 3750 there finds 3750 or more there if it lands there.
        Written 0.2 s before a minute ended, one that found nothing was read as
        the old window's (its write window's), and each report of the new one
        then showed 750 of someone else's: the next window reserved 750 for
        nobody, halving for eight windows (a lone process started at 58.0 s).
        """
        seen = self.counts.get(window)
        if not seen or seen[0][0] > sent:
            return False
        return before < seen[bisect_right(seen, (sent, INF)) - 1][1]

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
        one = bool(self.unanswered) and id(record) in self.unanswered  # see ``_few``
        if one:  # the next may go
            self.unanswered.remove(id(record))
        cold = False
        if self.cold:
            # An answer without the pool's usage header (a WAF's 403, a proxy's
            # 5xx) tells nothing: no slow start on it (two went at once, blind: a
            # 429 and a 418 in a window a previous life had filled).
            header = self.spec.header
            told = answered and (header is None or header in headers)
            cold = self._cold_done(told, not answered)
        freed = cold or written or one
        # It reached Binance after it was sent and before its answer (or the
        # grace), not before the first window charged at its write (eps and
        # the guard band may have widened since: an answer 20 s late, read as
        # maybe the last window's, left 750 of ours read as someone else's).
        first = max(int((sent + g.lo) // p), record[0])
        last = int((landed_by + g.shift + g.eps) // p)
        if first == last and len(record) == 2 and record[0] == first:
            # The common case: charged to one window, and it can have landed
            # only there (nothing to add or give back).
            possible = [(first, record[1])]
        else:
            charged = list(pairs(record))
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
        if not answered:
            self._lost(first, weight, doubt)
            return freed, 0
        header = self.spec.header
        reported = headers.get(header) if header is not None else None
        if reported is None:
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
        # Unless a count it cannot be (``_below``). Read so only while no one
        # else was ever surely seen: that is where a misread report makes a
        # reservation for nobody. Beside others, reading more reports as the
        # new window's changed what the sharing rules learnt (two survivors of
        # three counted three racers for good: 3750 of 6000 where they had
        # 4500), and took no 429 away (4 processes started together, 24 runs: 4
        # either way). Nor once they seem gone, only to book ours where the
        # count says they landed: "gone" is our reading, and a neighbour
        # spending 750 at :30, unseen in windows we filled before it, then
        # met a full window from two windows earlier, every minute.
        lone = self.others_in == NEVER
        if lone and len(possible) > 1 and self.counts:
            fits = [pair for pair in possible if not self._below(pair[0], sent, value - weight)]
            if fits:  # (none: our readings were wrong; read it as before)
                possible = fits
        if len(possible) == 1:
            window, own = possible[0]
            if lone:
                self._count(window, landed_by, value)
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
        # for ours (B7-1: their weight at a window's start, read as
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
        if not absent and self.cold:
            self._probed(sent, possible, g)
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
            # An ignored report's request is ours in neither window
            # (B7-5: counted "maybe" in both, the next report of either was read
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
            for w, _ in possible:  # ours in one of them: no one else's (``_heard``)
                self.vague[w] = self.vague.get(w, 0) + weight
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
        # itself here (the 8th of 8 PM Pro calls, written near the
        # boundary, passed for 1500 of someone else's).
        own = max(own, ours)
        peak = self.peak[window] = max(value, self.peak.get(window, 0))
        others = value - ours
        if window > self.others_in and others <= self.vague.get(window, 0):
            # Ours answered in a report read as no window's (``absent``) may
            # be here: read as such, as ``_heard`` does, or they pass for
            # others' and the next windows are reserved for them (a survivor of
            # three, its opening request straddling the boundary: 1500 of its
            # own read as someone else's, 3000 of 6000 in the next window).
            others = 0
        others = self.seen[window] = max(others, self.seen.get(window, 0), 0)
        late = self._late(window, sent, len(possible), g)  # does it show the whole window?
        if window > self.others_in:
            # Ours answered in a report read as no window's (``absent``) landed
            # in this window or its neighbour: counted in neither, it is no one
            # else's either (the first request of each window, written at its
            # opening, read as 750 of someone else's in every window: a
            # survivor stayed shared at half for 12 minutes).
            self._heard(window, 0 if others <= self.vague.get(window, 0) else others, late)
        # The next windows reserve for others their share of the whole limit,
        # in proportion to what they spent beside us (``_share``).
        # Only news of a newer window may lower the hint (B5-5), and only by a
        # report from its end (``_late``): within one window, reports count
        # more as they come (in whatever order their answers do).
        if window > self.news:
            self.news, self.base = window, self._expected()
        share = self._share(window, others, peak)
        self.shares[window] = max(share, self.shares.get(window, 0))
        if window == self.news:
            self.hint = self._rehint(window)
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
            # Unless no one else was ever seen: then nothing says another spent
            # there (a lone process's answer 5 s late, after the next window
            # opened, left the 750 its window's reports counted as someone
            # else's: 5250 of 6000 for 9 windows).
            alone = self.others_in == NEVER
            self._undoubt(doubt, window if len(possible) == 1 or alone else None)
        rose = counter.report(window, value, own)
        if rose:
            log.debug("%s: Binance reports %d used; %d spent elsewhere", self.key, value, rose)
        return freed, rose


def pairs(record: tuple[int, ...]) -> zip[tuple[int, int]]:
    return zip(record[::2], record[1::2], strict=True)
