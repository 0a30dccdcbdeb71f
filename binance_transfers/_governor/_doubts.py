"""Ours whose window is not known: in flight, or never answered.

A report counts ours in flight written before its request as ours, though
each lands in one window only (``_doubt``); a request whose answer never came
is ours in the reports of the window it lands in unless slower than any trip
(``_lost``).
"""

from __future__ import annotations

from .._storage import WindowCounter
from ._sharing import Sharing

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
