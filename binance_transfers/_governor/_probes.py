"""Requests whose answers bring news: when they may leave.

Some requests are sent less for their own sake than for what their answer's
usage header tells, and where in a window they land decides what it tells
(and to whom):

* a new governor's first request (cold start, ``_pool``): its report is the
  truth only if it can count what the others sent (``_probed``);
* a request into the room a window keeps beside others who fill windows
  alone: it is seen by them only if it lands among their opening requests
  (``_news_only``);
* a new governor's first request into the first window whose opening it sees
  (``_first_opening``): what others spend at an opening shows only there.
* the last request of a window reserved or shared for others: only its report
  from the window's end shows whether they still spend (``_held``).
"""

from __future__ import annotations

from collections.abc import Mapping

from ._geometry import INF, NUDGE, Geometry
from ._reports import Reports
from ._sharing import _AIM

__all__ = ["Probes"]


class Probes(Reports):
    """When a :class:`~._fixed.FixedPool`'s probes may leave (it sets these up)."""

    # Assigned here (the rest is set up by ``FixedPool``).
    __slots__ = ("opening", "opening_out", "probe_at", "rolls")

    flying: dict[int, tuple[float, int]]  # id(record) -> (write time, weight) in flight
    probe_at: float  # cold: the next request leaves then at the earliest
    # The first window whose opening the governor sees, then the next one to
    # meet (0: not known yet, INF: not to be probed), and our requests that may land there
    # before a report of it.
    opening: float
    opening_out: set[int]  # id(record): by identity, as ``renew`` replaces records
    rolls: bool  # an opening was reported on: every later one is met the same way

    def _first_opening(self, t: float, g: Geometry, weight: int) -> bool:
        """A request at ``t`` must wait: another of ours may land in the first window
        whose opening this governor sees, and no report of it came back yet.

        A new governor learns of others from its first answer, but only of what
        they spent before it: what they spend at a window's opening (a cron job,
        a script spending every minute at :00) it meets first at the next one.
        Alone there so far, it used to open that window with a burst (8 PM
        auto-collections: 6000 of 6000) into a window another process had just
        half filled: a 429, and 418s for the requests already on their way. So
        one request goes first, and the others wait for its report (one round
        trip, once; over when that window is, reported on or not). The answer
        that ends the wait wakes the waiters (``settle``), the window's end
        too (``ready_at``): callers of the governor without ``renew`` free
        nothing else by their answers. Ours are counted by record: a request
        renewed into that window counts from then, and only an answer of one
        counted frees a place. Not without a cold start (nothing to learn), on
        a storage shared by the processes (it counts them), or where a landing
        interval spans a quarter of a window or more (scaled windows, as in
        ``_probed``): the report comes back a good part of the window late,
        and a lone process lost that part of its first full window (and read
        its own boundary requests as someone else's after: 7 PM
        auto-collections of 8 in 1-s windows).

        After that report, each later opening is met by a quarter of a window
        (``rolls``): a neighbour whose first spend comes at the 2nd..6th opening
        was met by the whole burst (4500 beside its 3000, 429s, 418s); by half,
        one spending more than the other half still was (3750 or 4500 beside
        3000: a 429, a 418); a quarter leaves it up to 4500. More than one
        request where a quarter holds several: another governor joining reads
        an opening burst of more than one request as "others spend at will"
        (``_first_contact``). So is the first window resumed in after idle
        ones, and every opening beside others too, gone or not (what is
        reserved for them is not ours): a neighbour back after minutes away,
        its reservation faded but not yet counted gone, met the rest of the
        window as a burst (4500 beside its 3000, a 429 and 418s). A report ends
        the wait only once it counts every request of ours met at that opening
        written before it (``settle``). Where others were heard of before that
        report, the first opening too is met by a quarter, not one request.
        """
        p = self.period
        lo = int((t + g.lo) // p)
        if self.opening == INF:
            return False
        if not self.opening:
            if self.born == -INF or not self.adapts or 4 * g.margin > p:
                self.opening = INF
                return False
            self.opening = int((self.born + g.hi) // p) + 1
        if not self.rolls and not self._gone(lo):
            # Others heard of first: shared with them, and each later opening
            # met by a quarter as well. Once they go, their reservation fades,
            # and they may come back at any opening: ended here, the rule left
            # a neighbour present at our start and back after 3-9 minutes away
            # to meet the rest of the window as a burst (429s or 418s in 140
            # of 288 runs: 1500-4500 at each opening, both link profiles).
            self.rolls = True
        if lo > self.opening:  # past it: answers without the header, or windows idle
            # Idle (none of ours went into it): the window resumed in is met as an
            # opening (a neighbour may have come meanwhile); unreported: the next.
            self.opening = (lo + 1 if self.opening_out else lo) if self.rolls else INF
            self.opening_out.clear()
        if not self.opening_out or int((t + g.hi) // p) < self.opening:
            return False
        # A later opening: a quarter of the window is ours before its report,
        # beside others or not (what is reserved for them is not ours).
        window = int(self.opening)
        ours = self.counter.used(window) - self.counter.foreign(window)
        return not self.rolls or ours + weight > self.limit >> 2

    def _opening_end(self, g: Geometry) -> float:
        """When the first-opening wait ends unreported: nothing written then lands there."""
        return (self.opening + 1) * self.period - g.lo + NUDGE

    def _opening_sent(self, record: tuple[int, ...], old: tuple[int, ...] | None = None) -> None:
        """``record`` may land in the first opening: counted until its answer.
        ``old``: the record it renews (counted or not, it is this one now)."""
        out = self.opening_out
        if old is not None and id(old) in out:
            out.remove(id(old))
            out.add(id(record))
        elif self.opening != INF and record[-2] >= self.opening:
            out.add(id(record))

    def _opening_done(self, record: tuple[int, ...]) -> bool:
        """``record`` is answered or given back: True if it was counted."""
        if id(record) in self.opening_out:
            self.opening_out.remove(id(record))
            return True
        return False

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
        ended = False  # the first-opening wait: its waiters are woken (``ready_at``)
        if self.opening_out:
            ended = self._opening_done(record)
        if self.opening != INF:
            header = self.spec.header
            flying = self.flying
            if (
                answered
                and int((sent + g.lo) // self.period) >= self.opening
                and (header is None or header in headers)
                and not any(flying.get(k, (INF,))[0] <= sent for k in self.opening_out)
            ):
                # A report from that window (or a later one) that counts all of
                # ours there written before it: the next window's opening is met
                # the same way (``_first_opening``). One landed before ours still
                # in flight shows what others spent as ours: 1500 of a
                # returning neighbour's hid behind our 3000 on their way, and
                # the rest of the window went beside it (a 429, a 418).
                self.opening = int((sent + g.lo) // self.period) + 1
                self.rolls, ended = True, True
                self.opening_out.clear()
        freed, rose = super().settle(record, weight, sent, landed_by, headers, g, answered, written)
        return freed or ended, rose

    def _news_only(self, window: int) -> bool:
        """Others filled the window they were last heard of by themselves (the
        newest news, ``hint``, is all of it), and ``window`` keeps room for one
        request of ours only, whose answer brings news (``_expected``).

        Written at the window's opening, where the others open theirs, it lands
        among their opening requests: their later reports count it (they learn
        of us and share), and their count keeps their last request out. Written
        later, it lands after them, in a full window, and they learn nothing
        (B9-8: a process joining mid-window, its 429 freeze of whole seconds
        ending just after the others' opening each time: 6750 of 6000 and a
        429 in every window, the others never seeing it). So past the opening,
        by more than a lag, it waits for the next window's. Others who left
        room for one request of ours are not waited for: that room is there
        later in the window too (and after a ban earned by the other process, a
        request of ours in the first window learns of it there, not in the
        next one: B8-3's runs banned in window 0). Not on a storage shared by
        the processes (it counts them).
        """
        if not self.adapts or self.hint < self.limit:
            return False
        reserved = self.reserved.get(window, 0) if window <= self.top else self._expected()
        return reserved + self.heaviest >= self.limit

    def _news_wait(self, t: float, window: int, g: Geometry) -> float | None:
        """The next window's opening, for a request at ``t`` past ``window``'s opening
        by more than a lag where that window keeps room for news only; else None."""
        p = self.period
        if t > window * p - g.lo + g.lag + NUDGE and self._news_only(window):
            return (window + 1) * p - g.lo + NUDGE
        return None

    def _news_waits(self, t: float, weight: int, g: Geometry) -> float:
        """When a request of ``weight`` may go after waiting for news as ``ready_at``
        does (``estimate``: a refusal's ``retry_after`` is when it can go): for the
        next window's opening (``_news_only``), for the end of the newcomer's
        first-contact window if heavy (``_first_contact``), and for the first
        opening's report (``_first_opening``), a trip away at most, or that
        window's end."""
        p = self.period
        opening = self._news_wait(t, int((t + g.lo) // p), g)
        if opening is not None:
            t = opening
        if self._left_to_them(int((t + g.lo) // p), int((t + g.hi) // p), weight, g):
            t = (self.closed + 1) * p - g.lo + NUDGE
        if self._first_opening(t, g, weight):
            t = min(t + g.trip, self._opening_end(g))
        return t

    def _ready_unless_news(self, now: float, weight: int, g: Geometry) -> float:
        """When ``ready_at`` lets a request go, where no answer of ours can change it
        first (none outstanding): else ``now``, as news may free it any moment.

        ``estimate`` read the window's room only: a request kept back by sharing's
        pacing or held for the window's end (``_held``) was refused with
        ``retry_after`` 0 for most of a minute, and a retry loop spun on refusals.
        What a request wanting in marks (``capped``, ``paced``) is left as it was.
        """
        if self.unanswered or self.inflight:
            return now
        capped, paced = self.capped, self.paced
        at = self.ready_at(now, weight, g)
        self.capped, self.paced = capped, paced
        return now if at == INF else at

    def _probed(self, sent: float, possible: list[tuple[int, int]], g: Geometry) -> None:
        """A cold pool's answer with a usage header: warm, if it can show the others.

        Governors on the IP open a window only once their earliest landing is
        past its boundary (their clock's error and guard band), and what they
        send shows a trip later. A report from a window's first moments counts
        nothing of theirs: read as the truth, a process joining at a boundary
        (started by cron at :00) took a window nobody had opened yet for its
        own and filled it; the others then opened it with their usual burst
        (6040 of 6000, a 429, then 418s). So the first answer ends the cold
        start only if its request was written a whole landing interval
        (``g.margin``: the trip bound, twice the clock's error and the guard
        band) after the start of the last window it may have landed in; else
        the next request leaves then, alone. Not where a landing interval
        spans a quarter of a window or more (scaled windows, a clock known to
        a second): no probe reads one window's settled count there, and the
        pool would stay cold for a window or two.

        Heavy requests (``_few``): nor before two trip bounds after the
        governor's start. Processes started with it sync their clock first (a
        round trip), and their first request lands a trip later: an earlier
        answer counts nothing of theirs. Warmed by it, one of two or three
        processes started together filled the first window alone while the
        others' first requests were on their way (6750 of 6000, a 429; with
        three, 7500, a 429 and 418s). Alone, that costs one request a wait of
        about a second, once. Nor from a moment a request may land on either
        side of a boundary: its report was read as no window's (``settle``),
        and the next one's excess as another process's: started 58-59.9 s into
        a minute, a lone process kept 5250 of 6000 in every window (21 of 156
        runs; now 6). It leaves past the next window's landing interval.
        """
        p = self.period
        at = max(w for w, _ in possible) * p + g.margin - g.lo + NUDGE
        if self._few():
            at = max(at, self.born + 2 * g.trip)
            if int((at + g.lo) // p) != int((at + g.hi) // p):  # on a boundary
                at = int((at + g.hi) // p) * p + g.margin - g.lo + NUDGE
        if sent >= at or 4 * g.margin > p:
            self.cold = self.out = 0
            self._young(sent, g)
        else:
            self.cold = 1  # one at a time still: no slow start on a blind reading
            self.probe_at = max(self.probe_at, at)

    def _young(self, at: float, g: Geometry) -> None:
        """Warmed at ``at`` (its request's write, or the timer), heavy requests: one
        at a time (``_few``) to the end of that window, and of the next one if
        ``at`` falls in the window's last eighth.

        Its warm-up report counts only the requests of others that landed
        before it. Processes started together send theirs at the same moments
        (the same start, the same trip bound): started 0.2-1.5 s before a
        minute ended, two processes' warm-up requests landed in the new window
        at one instant, the first to land read it as its own, the other saw one
        request of the first, and both filled it (7500 of 6000, a 429, then
        418s). One at a time, each answer shows what the others added before
        the next request leaves, and at most one of ours can meet a full
        window. Warmed in a window's last seconds, too little of it is left to
        hear of the others: at the next opening each burst on what the last
        window showed (three processes started at 58.5 s: 7500, a 429 and
        418s). Only the gate: while no others are seen, nothing is held back
        for them (beside others who fill windows alone, held back for racers
        too, the one request of ours their windows leave room for waited a
        window). A lone process fills those windows all the same, a trip per
        request: 8 PM auto-collections in a few seconds of a minute. Not where
        a landing interval spans a quarter of a window or more (``_probed``).
        """
        p = self.period
        if self.adapts and self._few() and self.born > -INF and 4 * g.margin <= p:
            window = int((at + g.shift) // p)
            if (window + 1) * p - (at + g.shift) < p / _AIM:
                window += 1  # too little of it left to hear of the others
            end = (window + 1) * p - g.shift + self._lag(g)
            if end > self.young_until:
                self.young_until, self._geo = end, None

    def _young_out(self, g: Geometry) -> float:
        """Until when our first windows' one request out keeps the next back
        (``_young``): its answer, or a trip bound after its write. Slower than
        any trip, it is lost or nearly: waited for to its timeout, a lone
        process lost half of its first window to one answer 45 s late, and read
        the next one's reports against it (5250 of 6000 for 8 windows)."""
        flying, newest = self.flying, -INF
        for key in self.unanswered:
            if key not in flying:
                return self.young_until  # admitted, not written yet
            newest = max(newest, flying[key][0])
        return min(newest + g.trip, self.young_until)

    def _held(self, t: float, window: int, g: Geometry) -> tuple[int, float]:
        """(Weight kept back at ``t`` for a report from ``window``'s end, when it may go).

        Only a report from a window's end tells that others spent less there
        (``_late``): if all of ours land in a window's first seconds (a burst
        at each opening), a reservation for a neighbour that spends later
        never fades, and one that left is never known gone. So until others
        are known gone, one request of ours (within our room, not theirs)
        leaves only once it lands in the window's last eighth (surely within
        the window), where its report shows them all: it costs that request a
        delay, not the window's room.
        """
        late = self._late_at(window, g)
        if not t < late < INF or self._told(window):
            return 0, INF
        return self.heaviest, late

    def _told(self, window: int) -> bool:
        """The reports of ``window`` or the one before showed others spending: no
        request is held for ``window``'s end (``_held``).

        Others seen in a window's early reports leave it nothing quiet to tell,
        and those reports count as before (``_late``). Held anyway, that
        request was the last of the window, the one to meet anything spent in
        it unseen: beside two governors that see each other (never gone), each
        held one, and both landed after a returning neighbour's spend at :15 in
        a window it overran, a 429 then a 418; a window whose early reports
        missed the other governor's opening requests (they landed after ours)
        held one too, and it met a moved neighbour's overrun (a 429).
        """
        seen = self.seen
        return window == self.news and (seen.get(window, 0) > 0 or seen.get(window - 1, 0) > 0)

    def _unprobed(self, t: float, window: int, g: Geometry) -> None:
        """No request of ours fits ``window`` now, at ``t`` (full, or held back by
        sharing; the real time, never a moment ``ready_at`` projects a waiter to:
        read at a window's opening as past its end, the reports from before a
        heavy neighbour's :15 spend halved its reservation, and our burst and the
        held request met its 4500, 429s and 418s):
        past the moment its late request would leave, the window gets no report
        from its end, and its early reports count as one (``_late``): kept at a
        reservation they cannot lower, a pool that only fits an early request
        (a request at a shared window's opening) would never learn that others
        left (the survivor of two processes stayed at 750 of 6000 for good)."""
        if self._late_at(window, g) > t or window <= self.unprobed:
            return
        self.unprobed = window
        if window == self.news and window > self.faded:  # its reports came already
            self.faded = window
            self.hint = self._rehint(window)
            others = self.seen.get(window)  # pruned with old windows: nothing to tell
            if (
                window > self.others_in
                and others is not None
                and others <= self.vague.get(window, 0)
            ):
                self._heard(window, 0, True)

    def _late_at(self, window: int, g: Geometry) -> float:
        """When a request written lands in ``window``'s last eighth, surely within it;
        INF where none is kept for that (others known gone; racing us lately, or more
        than one other: governors of their own, whose windows a late request overran,
        6040 of 6000 and 418s beside three sharing; room for news only, whose request
        leaves at the opening: ``_news_only``; or it could not)."""
        p = self.period
        if (
            not self.adapts
            or self._gone(window)
            or _AIM * g.margin >= p
            or self.raced >= window - 2
            or self._news_only(window)
            or self.racers > 1
        ):
            return INF
        return (window + 1) * p - p / _AIM - g.lo + NUDGE
