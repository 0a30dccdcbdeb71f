"""Another governor on the same IP: share a window with it, do not race for it.

Two processes that each keep their own count (two workers behind one NAT)
learn of each other only from usage headers, a trip late. Racing for the end
of a window, each would fill what it believes is left, and together they
would send up to twice that: a 429, then the other's requests already on the
way arrive over the limit, and Binance bans the IP. So while others are seen
spending past what was reserved for them (or surely spent in the last
windows), a pool also holds back, for a lag (the time before what the other
sends shows in our answers: about two trips):

* what others were newly seen to spend: they may still be spending at that rate;
* as much as we admitted ourselves: the other, unseen, may have done the same;
* their last step, and one request as heavy as ours from each of them: what
  they send last we may never hear of, and each step is no bigger than the
  one before.

The first news of another process (or of one back after it left) is
different: it sized what it sends in that window without us, and a process
that has the window to itself fills it to the limit by its own count; its
next request may be the heaviest the pool serves, not one like ours. That
window (``met``) holds back one such request (``rival``) beside what they
were seen to spend: a report we cannot tell from a live, unaware process is
read as one.

Each other process may have done what we did, unseen: held back as many times
what we admitted as there are others (``racers``, estimated from how fast they
were seen to step while we admitted), each process takes at most its share of
what it sees left per lag, and all together never more than all of it (B4-3:
with two assumed, three processes overran the window). Alone on the IP, or on
a storage shared by the processes (Redis: it counts them), nothing changes.
"""

from __future__ import annotations

from collections import deque

from .._storage import WindowCounter
from ._geometry import INF, NUDGE, Geometry
from ._pool import Pool

__all__ = ["NEVER", "Sharing"]

#: Lags a pool stays shared after a first report of others' weight in a window.
_RACING = 4
#: Windows whose reports show no one else before others count as gone.
_QUIET = 3
#: A window before any other (others never seen there).
NEVER = -(2**62)
#: A report shows a whole window (``_late``) once its request landed in its last
#: sixth; a request kept back for such a report aims at its last eighth (``_held``).
_LATE, _AIM = 6, 8
#: Answers slower than this (seconds of lag) can hide more than one of a filler's
#: requests on their way (``_left_to_them``).
_SLOW = 0.05


class Sharing(Pool):
    """The sharing half of a :class:`~._fixed.FixedPool` (which sets these up)."""

    __slots__ = (
        "adapts",
        "closed",
        "crowd",
        "faded",
        "hazy",
        "met",
        "mine",
        "others_in",
        "quiet",
        "raced",
        "racers",
        "reserved",
        "rival",
        "rose",
        "shared_until",
        "spent",
        "step",
        "step_in",
        "unprobed",
        "young_until",
    )

    counter: WindowCounter
    base: int
    shares: dict[int, int]
    seen: dict[int, int]  # window -> weight others were seen to spend there
    top: int
    hint: int
    inflight: int
    adapts: bool  # False on a storage shared by the processes (it counts them)
    heaviest: int  # our heaviest request's weight
    closed: int  # the window others were first seen in: theirs (``_first_contact``)
    faded: int  # the latest window a report from its end (``_late``) showed
    unprobed: int  # the latest window no request of ours could reach the end of
    raced: int  # the latest window where others spent more than reserved
    others_in: int  # the latest window where others surely spent (``_seen_in``)
    quiet: set[int]  # windows after it whose reports showed no one else (at most 3)
    reserved: dict[int, int]  # window -> weight reserved there for others
    rose: deque[tuple[float, int]]  # (when, others' weight newly seen)
    mine: deque[tuple[float, int]]  # (when, our weight admitted while shared)
    racers: int  # how many others may race us, as many as we admitted each (estimated)
    shared_until: float  # monotonic: share the pool until then
    # window -> (the most others were seen to have spent there, when it was learnt)
    spent: dict[int, tuple[int, float]]
    step: int  # others' last step seen while sharing
    step_in: int  # the window it was seen in
    met: int  # the latest window of a first news of others (who may not know of us)
    rival: int  # the heaviest request any process may send into this pool
    crowd: tuple[int, int]  # (one of our first windows, their requests seen there)
    hazy: int  # a window whose report of none may be the window before's (``_others_either``)
    young_until: float  # monotonic: one request at a time until then (``_young``)

    def _note_others(self, window: int, value: int, own: int, at: float, g: Geometry) -> None:
        """A report of ``value`` used in ``window`` (answered at ``at``) for a request
        that was our ``own``-th unit there: are others spending, now?"""
        if not self.adapts:
            return  # a shared storage counts the others: they do not race us
        counter = self.counter
        # Everything of ours that can have landed in `window` by now is charged
        # there: answered, or in flight (charged from its write to every window
        # opened while it flies, see ``_fixed``): a report above that is a sure
        # sign that others spent there. Adding our weight in flight once more
        # counted it twice and hid the other process (B8-3: two
        # processes, answers 0.5-2.5 s late: the first reports showing the
        # other passed for ours alone, neither shared, and a later window
        # reached 6750 of 6000). Beyond the newest window opened, ours in
        # flight are not charged yet.
        ours = counter.used(window) - counter.foreign(window)
        if window > self.top:
            ours += self.inflight
        if value <= ours and self.spent.get(window, (0,))[0] <= 0:
            if not self._gone(window):  # none of theirs yet: the next report shows a step
                self.spent.setdefault(window, (0, at))
            return  # alone, as far as this report can tell
        # Windows opened before this news (a wide landing interval opens the
        # next ones early) are shared from their start, as `_open` shares the
        # windows after one where others surely spent.
        last = min(self.top, window + 2)
        if last > window and self.hint:
            self.shared_until = max(self.shared_until, (last + 1) * self.period - g.shift)
            self._geo = None  # off the cached fast path: it does not share (B6-2)
        # What they spent, to tell whether they still spend: the report less
        # ours admitted before this one (ours answered meanwhile do not count).
        spent = value - own
        stepped = window in self.spent  # an earlier report of it: this one shows a step
        before, since = self.spent.get(window, (0, window * self.period - g.shift))
        known = max(before, self.reserved.get(window, 0))
        # A step from a report of none that may be the older window's: what
        # they spent, or their pace; counted for this window only (``crowd``).
        hazy = stepped and before <= 0 and self.hazy == window
        if spent > before:
            self.spent[window] = (spent, at)
        if self._gone(window):  # first news (F7: 20s beside 750s sent 8 x 418 there)
            self.met, self._geo = max(self.met, window), None
        if (
            self.others_in == NEVER
            and spent > self.heaviest  # more than a probe like ours: they spend at will
            and (self.born == -INF or window <= int((self.born + g.shift) // self.period) + 1)
        ):
            self._first_contact(window)  # we are the newcomer (or our start is unknown)
        self._seen_in(window)
        lag = self._lag(g)
        if self._few() and self._young_in(window, g):
            # A report of one of our first two windows, heavy requests: each
            # request of theirs there may be another process started with us,
            # one at a time as we are (``_young``), about to send its next: as
            # many racers (``ready_at``), in that window only. Counted by their
            # pace (one racer per lag), four processes started together each
            # held back for one or two, and one whose report was a few trips
            # old stepped into what three others had filled meanwhile: 6750 of
            # 6000 and a 429 in window 1. Kept to that window: a neighbour's
            # spend read as racers kept two survivors of three below 4500.
            crowd = min(-(-spent // self.heaviest), self.limit)
            if (window, crowd) > self.crowd:
                self.crowd = (window, crowd)
        if stepped and spent > before and self._few():
            # Heavy requests, one at a time each while shared (``_few``): their
            # step within a lag since an earlier report of the window is that
            # many requests like ours, so many of them, reserved for or not
            # (four processes started together: each held back for two, three
            # stepped at once into what was reserved, 6750 of 6000 in window 1).
            pace = spent - before
            if at - since > lag:
                pace = int(pace * lag / (at - since))
            racers = min(-(-pace // self.heaviest), self.limit)
            if hazy:
                if (window, racers) > self.crowd:
                    self.crowd = (window, racers)
            else:
                fresh = at >= max(self.shared_until, self.young_until)
                self.racers = racers if fresh else max(self.racers, racers)
        if spent <= known:
            # Within what was reserved for them, or known already: no race. And
            # a lag after their last step, no new one: they stopped stepping.
            if not self.rose or self.rose[-1][0] <= at - lag:
                self.step = 0
            return
        # Their rate, over a lag: what they spent since the window began (or
        # since the last news) is not all still on its way.
        grew = spent - known
        if at - since > lag:
            grew = int(grew * lag / (at - since))
        self._forget_shared(at, g)
        # How many others race us for this window (B4-3): each may send, unseen,
        # as much as we did per lag, and those seen stepping by `grew` while we
        # admitted `ours` per lag are at least grew / ours of us. Held back that
        # many times what we admit, k + 1 racers together never take more than
        # what is left. (A first report of a window shows what they spent, not
        # their pace: it says nothing of how many they are; one after a report
        # of none of theirs does.)
        ours = sum(w for _, w in self.mine)
        if stepped and ours and not self._few() and not hazy:
            racers = min(-(-grew // ours), self.limit)
            fresh = at >= max(self.shared_until, self.young_until)
            self.racers = racers if fresh else max(self.racers, racers)
        self.rose.append((at, grew))
        # Their next step, which we may never hear of, is no bigger than their
        # last: each takes at most half of what it sees left.
        self.step, self.step_in = grew, window
        self.raced = max(self.raced, window)
        # Seen spending between two of our answers, they race us for this
        # window: share it to its end (what they send last we may never hear
        # of). A first report of a window shows what they spent, not that
        # they still spend: share it for a few lags.
        if not stepped:
            self.step = 0  # a first report: what they spent, not a step
        end = at + _RACING * lag if not stepped else (window + 1) * self.period - g.shift + lag
        self.shared_until = max(self.shared_until, end)
        self._geo = None  # off the cached fast path: it does not share

    def _few(self) -> bool:
        """A window holds few requests as heavy as ours (each over 2 % of it).

        Shared with another process, each of whose requests we learn of a trip
        late, two of ours on their way may each be the one that fills the
        window: the first gets a 429, and the second, already sent, arrives
        over the limit after it, which Binance answers with a ban
        (B5-3: two processes of PM Pro auto-collection, 8 calls a window). So
        while sharing such a pool, one request at a time: each answer tells
        the count before the next leaves (8 trips a window: a few seconds of
        a minute), and at most one of ours can ever meet a full window.
        """
        return self._heavy(self.heaviest)

    def _heavy(self, weight: int) -> bool:
        """A request of ``weight`` is over 2 % of a window (``_few``)."""
        return 50 * weight > self.limit

    def _first_contact(self, window: int) -> None:
        """Others are seen for the first time, in ``window``: the rest of it is theirs.

        They cannot have heard of us before our requests there landed: they
        spend as if alone, up to the limit, and a report counts only what of
        theirs had landed (in their opening burst, with slow answers, half of
        it). Nor does our silence after it tell that they stopped: with
        nothing of ours in flight no report comes. A window holds few heavy
        requests: one more of ours there, once they filled it, is a 429, and
        theirs still on the way after it a ban (F3: a process joining 1 s
        after an opening, answers 0.5-2.5 s late, read 3750 of the other's
        6000, shared for four lags, then sent into what it took for 1500
        left, after the other's last blind request met the limit: a 418).
        Our heavy ones (over 2 % of the window, as in ``_few``) wait for the
        next window (``ready_at``), which opens with their share reserved;
        lighter ones take what is left over a few lags, as before. The window
        is not counted full: that would read as the end of our budget
        (``capped``) in what is reserved for others after it.

        Only for a newcomer (others first seen in the window it started in,
        or the next: its first answers): others a process meets after windows
        alone are newcomers, who heard of it in their first answer (B9-8's
        news request, landed at an opening, is how they announce themselves:
        closing that window cost its old-timer 2250 of 6000), and only where
        they spent more than a request as heavy as ours: processes started
        together each meet the other's cold-start probe (``_pool``), which
        heard of them as they of it.
        """
        self.closed = window
        self._geo = None  # off the cached fast path

    def _left_to_them(self, lo: int, hi: int, weight: int, g: Geometry) -> bool:
        """A request of ``weight`` that may land in windows ``lo``-``hi`` must stay
        out of the window left to others (``_first_contact``): it is heavy, or
        light and the window theirs to fill.

        A light one waits only beside heavier requests (the heaviest the pool
        serves over 2 % of it) and answers that take time (a lag over
        ``_SLOW``): an unaware filler then has as many requests on their way,
        unseen, as it has callers, and what it spent, what is ours there and
        what they may send next (one request as heavy as the heaviest, as
        ``_used`` holds back for a first news) leave less than one more of
        theirs (issue 7: a light newcomer's probe read 4520 of 6000, it sent
        8 x 20, two of the other's 750s were on their way: its requests after
        the other's 429 were 418s). With answers that take no time what a
        report shows is all they spent, and light crowds keep what is left.
        """
        if not lo <= self.closed <= hi:
            return False
        if self._heavy(weight):
            return True
        return (
            self._lag(g) > _SLOW
            and self._heavy(self.rival)
            and self._used(self.closed) + self.rival > self.limit - weight
        )

    def _used(self, window: int) -> int:
        """The count of ``window``, including what opening it will add (``_fixed``)."""
        raise NotImplementedError

    def _rehint(self, window: int) -> int:
        """The newest news is of ``window``: what to reserve for others from now on.

        The most its reports asked for. Racing others for a window, our last
        report of it may come long before they stopped spending there (we
        held back while they went on): what the window before asked for
        stands for one more. Less than before only by half, and only once a
        report from its end showed it (``_late``). Halving, any crumb keeps out
        a whole heavy request, and that room is how a neighbour spending
        mid-window is seen again: faded to nothing once others were known gone,
        ours filled each window before the neighbour's 750 at :30, which met a
        full window every minute (11 of 16), never seen.
        """
        before = self.shares.get(window - 1, 0) if self.raced >= window else 0
        fade = self.base >> 1 if self.faded >= window else self.base
        return max(self.shares.get(window, 0), before, fade)

    def _seen_in(self, window: int) -> None:
        """Others surely spent in ``window``: windows before it say nothing of their going."""
        if window > self.others_in:
            self.others_in = window
            if self.quiet:
                self.quiet = {w for w in self.quiet if w > window}

    def _heard(self, window: int, others: int, late: bool) -> None:
        """A report of ``window``, after the last where others surely spent, read as
        others spending ``others`` there: quiet or not, as far as it tells (only a
        report from the window's end, ``_late``, tells it is quiet)."""
        if others:
            self.quiet.discard(window)
        elif late and len(self.quiet) < _QUIET:
            self.quiet.add(window)

    def _late(self, window: int, sent: float, possible: int, g: Geometry) -> bool:
        """A report of ``window`` (written at ``sent``, ``possible`` windows it may be)
        shows what others spent over the whole window: noted in ``faded``.

        A report counts what others spent before its request landed, nothing
        after it. One from a window's first seconds that shows no one else
        says nothing of a neighbour that spends later in the window: taken as
        its going, the reservation for it faded while it went on spending at
        :15, and a burst of ours at the next openings met its spend (8250 of
        6000, its requests 429s). So until others are known gone (``_gone``),
        only a report whose request landed in the window's last sixth lowers
        what is reserved for others or counts the window quiet (``_heard``);
        the pool keeps a request of ours back for such a report (``_held``).
        Every report counts where no request of ours can surely land there (a
        landing interval of an eighth of a window or more: scaled windows), none
        could go there (``_unprobed``), or the window kept room for one request
        of ours only, which leaves at its opening (``_news_only``). And, as before
        the rule, wherever none is held for it (``_late_at``, ``_told``): beside
        more than one other or a racer of the last two windows (kept at what
        they reserved, survivors of three processes stayed at 750 of 6000 for
        good: ``racers`` is only re-estimated by a new race; a first contact is
        a race: a neighbour seen once was forgotten two windows later than
        before), or where the window's reports showed others spending (none is
        held, ``_told``; the reservation halves no lower than what they showed).
        """
        p = self.period
        landed = sent + g.lo  # at the earliest
        late = (
            _AIM * g.margin >= p
            or window <= self.unprobed
            or self.reserved.get(window, 0) + self.heaviest >= self.limit
            or self._gone(window)
            or self.racers > 1
            or self.raced >= window - 2
            or self.seen.get(window, 0) > 0
            or (possible == 1 and landed >= (window + 1) * p - p / _LATE)
        )
        if late and window > self.faded:
            self.faded = window
        return late

    def _gone(self, window: int) -> bool:
        """Reports of 3 windows since others last surely spent showed no one else.

        Windows without a report of ours say nothing (a ban, a pause, a pool
        held back for the other the whole window): the other may still be
        there, and size its start to what it saw us leave (B8-2: two
        quiet windows, the one where it held back for us among them, and a
        burst of ours beside its opening: 6750 of 6000).
        """
        if self.others_in == NEVER:
            return True
        return sum(1 for w in self.quiet if w < window) >= _QUIET

    def _young_in(self, window: int, g: Geometry) -> bool:
        """``window`` is one of our first two: the one we started in, and the next."""
        if self.born == -INF:
            return False
        return window <= int((self.born + g.shift) // self.period) + 1

    def _lag(self, g: Geometry) -> float:
        """How long before what another process sends shows in our answers."""
        return g.lag

    def _shared_extra(self, t: float, g: Geometry) -> int:
        """Weight held back at ``t`` for another process's unseen requests."""
        since = t - self._lag(g)
        return (
            (self.step if int((t + g.shift) // self.period) == self.step_in else 0)
            + sum(w for at, w in self.rose if at > since)
            + self.racers * sum(w for at, w in self.mine if at > since)
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
