"""Feedback from answers: where a request landed, usage headers, 429s and bans.

* Every answer corrects the count (see ``_pools``) and the trip bound.
* A 429 is always honoured for ``Retry-After`` (clamped to Binance's longest
  ban; NaN, negative or infinite values count as absent and stop the pool
  until the window it may have landed in is over). It stops the pools of the
  request that may be full: those whose usage header shows no room, else those
  without a header (rolling caps...). When every pool of the request reports
  room, the broken limit is unknown, and every pool of the IP stops.
* A 418 stops every pool of the IP until the ban's end, clamped alike.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType

from .._clock import ServerClock
from .._endpoints import Endpoint
from .._exceptions import _iso as _fmt
from .._limits import Limits
from ._geometry import BAN_PAD, BAN_SLACK, LONGEST_BAN, Geometry, Trips
from ._pools import Pool
from ._queue import Permit, WaitQueue, Written

__all__ = ["Feedback"]

log = logging.getLogger("binance_transfers.governor")


_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def _seconds(value: float | None) -> float | None:
    """A usable duration, or None (absent, NaN, negative, infinite: all meaningless)."""
    if value is None or not math.isfinite(value) or value < 0:
        if value is not None:
            log.warning("ignoring a meaningless Retry-After of %r s", value)
        return None
    return value


def _reports_room(pool: Pool, weight: int, headers: Mapping[str, str]) -> bool | None:
    """Whether the pool's usage header shows room for the request (None: no reading)."""
    header = pool.spec.header
    if header is None:
        return None
    try:
        return int(headers.get(header, "")) + weight <= pool.limit
    except ValueError:
        return None


class Feedback(WaitQueue):
    """The governor's learning half (a mixin)."""

    limits: Limits
    grace: float
    _trips: Trips
    _rtt: dict[Endpoint, float]
    _pools: dict[str, Pool]
    _banned_until: float
    _ip_frozen_until: float
    _publish_freeze: Callable[[str, float], None] | None
    _geo_cache: Geometry | None
    server_clock: ServerClock

    def _refresh_geometry(self) -> Geometry:
        raise NotImplementedError

    def _frozen_hook(self, pool: str, until: float, reason: str) -> None:
        raise NotImplementedError

    def _usage_hook(self, pool: str, used: int, limit: int) -> None:
        raise NotImplementedError

    _on_answered: Callable[[str, int | None, float | None], None] | None

    def observe(
        self,
        permit: Permit,
        *,
        sent: float,
        received: float | None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        banned_until: float | None = None,
    ) -> None:
        """Learn from the answer to a permitted request (call it once per permit).

        ``sent``/``received`` are monotonic times (``received`` is None when no
        answer came: it may still land for ``grace`` seconds after ``sent``).
        Usage headers raise the counts to what Binance reports; a 429 stops
        pools for ``retry_after`` seconds (or to the window's end); a 418 stops
        everything until ``banned_until`` (Binance epoch seconds) or
        ``retry_after``. Both are clamped to Binance's longest ban (3 days,
        scaled by ``limits.time_scale``).
        """
        now = self._monotonic()
        if self._on_answered is not None:  # the metrics' 429/418 counts and round trips
            self._on_answered(permit[0].name, status, None if received is None else received - sent)
        answered = received is not None
        if received is not None:
            trip = received - sent
            rtt = self._rtt
            last = rtt.get(permit[0])
            rtt[permit[0]] = trip if last is None else last + (trip - last) / 4
            if self._trips.note(trip, received):
                self._refresh_geometry()
        cached = self._geo_cache  # (``_geometry``, inlined: every answer comes here)
        g = self._refresh_geometry() if cached is None or now >= cached.until else cached
        if headers is None:
            headers = _NO_HEADERS
        freed: list[Pool] = []
        landed_by = received if received is not None else max(now, sent + self.grace)
        charged = permit[2]
        written = type(charged) is Written
        for pool, weight, record in charged:
            gave_back, rose = pool.settle(
                record, weight, sent, landed_by, headers, g, answered, written
            )
            if gave_back:
                freed.append(pool)
            if rose:
                used, _ = pool.usage(now, g)
                self._usage_hook(pool.key, used, pool.limit)
        wait = None if retry_after is None else _seconds(retry_after)
        if status == 429:
            longest = LONGEST_BAN / self.limits.time_scale
            self._on_429(permit, now, g, headers, None if wait is None else min(wait, longest))
        elif status == 418:
            until = None
            if banned_until is not None and math.isfinite(banned_until):
                # The earliest a request written then can land is its end on
                # Binance's clock, however far off our estimate is (B7-3:
                # `- g.shift` resumed up to eps early: a second 418).
                until = banned_until - g.lo
                if wait is not None and received is not None:
                    self._check_clock(banned_until - wait, sent, received, wait)
            if wait is not None and (until is None or now + wait > until):
                # Counted from its answer on no clock: the floor when our
                # estimate of Binance's clock is off more than it says (its
                # clock stepped back 1.5 s: the end on it came early, every
                # caller resumed inside the ban, and each later 418's end,
                # already past, stopped nothing: 413 requests in 1.2 s).
                until = now + wait
            if until is None or until <= now:
                # Binance's shortest ban: a 418 always stops the IP (``Retry-After:
                # 0`` with no end, or an end already past with none: a
                # `wait_on_ban` caller, the clock sync too, sent again at once
                # and met another 418, without end).
                until = now + 120.0 / self.limits.time_scale
            # Its end is read on our estimate of Binance's clock; an error
            # beyond the estimate (Binance's clock stepped back 2.5 s mid-run)
            # met it early, and the clock syncs sent then earned two more 418s,
            # which Binance answers with longer bans. A twentieth of the ban
            # (6 s of a 2-minute one), a minute at most, costs little beside it.
            # Clamped first: the longest ban gets its margin too.
            scale = self.limits.time_scale
            until = min(until, now + LONGEST_BAN / scale)
            until += min(max(until - now, 0.0) * BAN_SLACK, BAN_PAD / scale)
            self.ban(until)
        if freed and (self._wake or freed[0].queue or len(freed) > 1):
            self._pump(freed, now)  # (it does nothing when no one waits: most answers)

    def _check_clock(self, binance_now: float, sent: float, received: float, wait: float) -> None:
        """A 418 tells Binance's clock as it answered: its end less ``Retry-After``.

        ``Retry-After`` is rounded (to whole seconds unscaled, either way; to the
        millisecond scaled). Where our estimate of that moment, between ``sent``
        and ``received``, is further off than the rounding and the estimate's
        uncertainty allow, Binance's clock stepped: the uncertainty grows to the
        error the 418 shows, and the clock is synced again before the next
        signed request (:meth:`ServerClock.doubt`).
        """
        sc = self.server_clock
        rounding = 1.0 if wait == int(wait) else 0.001
        eps = sc.uncertainty_at(received)
        early = sc.to_server(sent) - (binance_now + rounding)  # ours ahead, at least
        late = (binance_now - rounding) - sc.to_server(received)  # ours behind, at least
        if early > eps or late > eps:
            # At most a window: a header wildly off (an end days after its
            # Retry-After) must not stretch every landing interval over
            # thousands of windows; the sync comes right after the ban.
            error = max(early, late) + 2 * rounding + (received - sent)
            sc.doubt(min(error, self.limits.window))

    def _on_429(
        self,
        permit: Permit,
        now: float,
        g: Geometry,
        headers: Mapping[str, str],
        wait: float | None,
    ) -> None:
        charges = permit[2]
        readings = [(pool, _reports_room(pool, weight, headers)) for pool, weight, _ in charges]
        full = [pool for pool, room in readings if room is False]
        unread = [pool for pool, room in readings if room is None]
        culprits = full or unread
        if not culprits:
            # Every pool of the request had room: some other limit of this IP broke.
            pools = [pool for pool, _, _ in charges]
            until = now + wait if wait is not None else self._window_end(now, g, pools)
            self._ip_frozen_until = max(self._ip_frozen_until, until)
            for pool in list(self._pools.values()):
                self._freeze(pool, until, "429 Too Many Requests (limit unknown: the whole IP)")
            return
        for pool in culprits:
            until = now + wait if wait is not None else pool.freeze_default(now, g)
            self._freeze(pool, until, "429 Too Many Requests")

    def _window_end(self, now: float, g: Geometry, pools: list[Pool]) -> float:
        """End of the weight window the request may have landed in, or later."""
        window = self.limits.window
        end = (math.floor((now + g.hi) / window) + 1) * window - g.lo
        return max([end, *(pool.freeze_default(now, g) for pool in pools)])

    def ban(self, until: float) -> None:
        """Stop every pool of this IP until monotonic ``until`` (a 418): 3 scaled days
        at most, and the margin a 418's end is waited out with (``observe``)."""
        now = self._monotonic()
        if math.isnan(until):
            until = now + 120.0 / self.limits.time_scale
        until = min(until, now + (LONGEST_BAN + BAN_PAD) / self.limits.time_scale)
        if until <= self._banned_until:
            self._publish_own("*", until, now)
            return
        self._banned_until = until
        g = self._geometry(now)
        server_until = until + g.shift
        log.error("IP banned by Binance until %s", _fmt(server_until))
        self._frozen_hook("*", server_until, "418 IP banned")
        for pool in self._pools.values():
            pool.frozen_until = max(pool.frozen_until, until)
            pool._geo = None
        self._fail_waiters(now)
        self._pump([p for p in self._pools.values() if p.queue], now)

    def _publish_own(self, key: str, until: float, now: float) -> None:
        """Tell a shared storage of our own 429/418 that ends within a freeze we hold.

        The freeze we hold may be another process's, widened by our clock's
        margin (not published again: it would bounce): Binance's end for us,
        later than theirs, must still reach the other processes (B8-1:
        A resumed at its own end, inside the Retry-After Binance gave B). The
        storage drops what it published or was told already."""
        if self._publish_freeze is not None:
            self._publish_freeze(key, until + self._geometry(now).shift)

    def _freeze(self, pool: Pool, until: float, reason: str) -> None:
        if until <= pool.frozen_until:
            self._publish_own(pool.key, until, self._monotonic())
            return
        pool.frozen_until = until
        pool._geo = None  # off the fast path
        now = self._monotonic()
        server_until = until + self._geometry(now).shift
        log.warning("pool %r stops until %s: %s", pool.key, _fmt(server_until), reason)
        self._frozen_hook(pool.key, server_until, reason)
        if pool.live:
            self._pump([pool], now)
