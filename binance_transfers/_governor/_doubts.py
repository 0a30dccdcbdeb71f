"""Windows not known: of ours in flight or never answered, and of reports.

A report counts ours in flight written before its request as ours, though
each lands in one window only (``_doubt``); a request whose answer never came
is ours in the reports of the window it lands in unless slower than any trip
(``_lost``); a report that may be either of two windows is read as no
window's, yet may still prove another process (``_others_either``).
"""

from __future__ import annotations

from .._storage import WindowCounter
from ._geometry import Geometry
from ._sharing import Sharing
from ._writes import Writes

__all__ = ["Doubts"]


class Doubts(Sharing):
    """Where ours landed, for a :class:`~._fixed.FixedPool` (which sets these up)."""

    # Assigned here (the rest is set up by ``FixedPool``).
    __slots__ = ("hint",)

    counter: WindowCounter
    # id(record) -> (weight, {window: others there if it is not}): see ``_doubt``
    doubts: dict[int, tuple[int, dict[int, int]]]
    heaviest: int
    hint: int  # weight others are expected to spend per window (``Reports._expected``)
    landed: dict[int, int]  # window -> our weight answered as landed there
    maybe: dict[int, int]  # window -> ours answered, landed there or in a neighbour
    news: int
    peak: dict[int, int]  # window -> the highest usage reported there
    seen: dict[int, int]  # window -> weight others were seen to spend there
    shares: dict[int, int]  # window -> what others' spending there asks to reserve
    top: int
    written: Writes  # ours in flight by write time

    def _share(self, window: int, others: int, total: int) -> int:
        raise NotImplementedError

    def _doubt(self, window: int) -> int:
        """What others may have spent in ``window`` beyond what is reserved for them.

        A report counts ours in flight written before its request as ours (B4-4:
        a lone process's unanswered burst is nobody else's), so what others are
        seen to spend there is the least it can be. But a request in flight
        lands in one window only: if it is not in the window whose report it
        was read into, others spent that much more there, and may again in the
        other windows it may land in (where it is counted as ours too). Until
        its answer comes, hold its weight back there as well (B5-5:
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

    def _lost(self, home: int, weight: int, doubt: tuple[int, dict[int, int]] | None) -> None:
        """No answer came (a timeout, a dropped connection): ours in ``home``'s reports.

        It stays charged to every window it may have landed in (``landed_by``:
        the grace after its write), and it lands in the first of them, unless
        slower than any trip. Counted nowhere, it passed for someone else's:
        one answer 45 s late, or 5 % of connections dropped, left a lone
        filler 750-3000 of /papi's 6000 a window reserved for nobody, fading
        over ten windows. Landed later instead, what it hid of others in
        ``home`` is held in that window by its charge, and that window's
        reports read it as someone else's (the safe side). Reports of other
        windows that counted it while it flew are read without it.
        """
        self.landed[home] = self.landed.get(home, 0) + weight
        if doubt:
            self._undoubt(doubt, home)

    def _explained(self, window: int) -> int:
        """Ours answered as (maybe) landed in ``window``."""
        return self.landed.get(window, 0) + self.maybe.get(window, 0)

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
        both shows someone else spending now, whichever window it is
        (B7-4: two processes, each writing its share at a window's opening with
        a clock ~1 s uncertain, read every report of the opening as no window's,
        took the new window for their own and sent 6750-7500 of 6000). It is
        noted in the newer window (``_note_others``) and the pool is shared to
        that window's end: one heavy request at a time (``_few``), and room
        held back for the other's next steps. Not for a few lags only: the next
        reports of an opening are as ambiguous, so no step of theirs would show
        (ended after four lags, the pool counted 5250 of 6000 in a window the
        other had filled: a 429). Nothing is reserved from it: which window's
        count it is stays unknown (raising both windows' counts to it cost the
        two processes 4-10 % of /papi in a sweep, for no fewer 429s). But the
        newer window counts what it shows others spent there, if it is that
        window's: a request may still go there, and only the newer reading says
        how full it may be. Uncounted, the answer of the opening's first
        request ended the opening's wait (``_first_opening``) with the window
        read as its reservation alone, and the next request went into what the
        others had filled (two processes beside a neighbour spending 4500 at
        alternate openings, three beside 3000: a 429 at most of its openings,
        then 418s, in every run).
        """
        newer, own = max(possible)
        if value <= own and not self._gone(newer):
            # Ours alone explain it in the newer window: there, a report of
            # none of theirs (it may be the older window's, and show nothing of
            # the newer one). Read as nothing, the newer window's next report
            # was its first, no step, and racers were not counted from it
            # (four processes started together: one whose opening request
            # straddled the boundary held back for two racers while three
            # stepped, and sent the window's 9th request: 6750 of 6000). The
            # step after it counts racers for that window only (``hazy``).
            if newer not in self.spent:
                self.spent[newer] = (0, landed_by)
                self.hazy = newer
            return
        counted = self.written.upto(sent) + weight
        if all(value > max(own, self._explained(w) + counted) for w, own in possible):
            self._note_others(newer, value, own, landed_by, g)
            ours = max(own, self._explained(newer) + counted)  # in the newer reading
            if self.spent.get(newer, (0,))[0] <= 0:  # none, or a report of none
                # Others surely spent (the least the newer reading shows): the
                # next window opens shared too (``_open``), as after any report
                # showing them (its own test of "ours" counts ours in flight
                # twice, and may have let this one pass for ours).
                self.spent[newer] = (value - ours, landed_by)
                self._seen_in(newer)
            self.counter.report(newer, value, ours)
            end = (newer + 1) * self.period - g.shift + self._lag(g)
            if end > self.shared_until:
                self.shared_until = end
                self._geo = None  # off the cached fast path: it does not share
