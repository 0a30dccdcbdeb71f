"""Clocks: the event loop's, the wall's, and our estimate of Binance's.

Waiting is measured on the running event loop's clock, so the governor's
timers and the times it reads always agree; a fake loop clock (trio's
``MockClock``, ``looptime`` for asyncio) therefore fakes the whole SDK and an
hour-long rolling window is tested in milliseconds.
"""

from __future__ import annotations

import time
from asyncio import BaseEventLoop, _get_running_loop
from collections.abc import Callable
from typing import Protocol

import anyio

__all__ = ["Clock", "LoopClock", "ServerClock"]


class Clock(Protocol):
    """The time sources the SDK reads."""

    def monotonic(self) -> float:
        """Seconds on the clock the running event loop sleeps on."""

    def time(self) -> float:
        """Wall-clock epoch seconds."""


class LoopClock:
    """The running event loop's clock, with wall time derived from it.

    ``monotonic()`` binds, on its first call inside a running loop, to that
    loop's clock: ``time.monotonic`` for a stock asyncio loop, ``loop.time``
    for a custom one (uvloop, looptime), anyio's for trio. Like anyio's
    primitives, a clock (and the governor reading it) then belongs to loops of
    that kind. ``time()`` is anchored once to ``epoch`` (default: the
    system's ``time.time()``) and advances with ``monotonic()``, so both stay
    consistent under a fake loop clock; Binance's own clock is tracked by
    :class:`ServerClock`, which corrects any drift.
    """

    __slots__ = ("_anchor", "_epoch", "_now")

    def __init__(self, epoch: float | None = None) -> None:
        self._epoch = epoch
        self._anchor: float | None = None
        self._now: Callable[[], float] | None = None

    def monotonic(self) -> float:
        # Governor.acquire() reads this on every call: looking the running loop
        # up costs more than the whole rest of an uncontended acquire, so it is
        # done once.
        now = self._now
        if now is None:
            now = self._now = self._bind()
        return now()

    def reader(self) -> Callable[[], float]:
        """The bare function behind :meth:`monotonic`, for callers in a hurry."""
        if self._now is None:
            self._now = self._bind()
        return self._now

    def _bind(self) -> Callable[[], float]:
        loop = _get_running_loop()
        if loop is None:
            anyio.current_time()  # outside any event loop this raises, clearly
            return anyio.current_time
        if type(loop).time is BaseEventLoop.time:
            return time.monotonic
        return loop.time

    def time(self) -> float:
        now = self.monotonic()
        if self._anchor is None:
            self._anchor = (time.time() if self._epoch is None else self._epoch) - now
        return self._anchor + now

    def __repr__(self) -> str:
        return f"LoopClock(epoch={self._epoch!r})"


class ServerClock:
    """Our estimate of Binance's clock: ``server time = monotonic + shift``.

    Synced from ``GET /api/v3/time``: the server read its clock somewhere
    between our send and our receive, so the midpoint is the estimate and half
    the round trip its ``uncertainty``. Until the first sync the wall clock is
    used with ``unsynced_uncertainty``.

    Clocks drift apart after a sync (quartz: tens of ppm), so the uncertainty
    grows with the time since it: :meth:`uncertainty_at` adds ``drift`` seconds
    per second (default 50 ppm, 3 ms per minute... 15 ms by the default 5-minute
    resync). A step of Binance's clock (an NTP step, another server behind the
    load balancer) is no drift: the governor adds its own allowance for one
    (``_governor._geometry.CLOCK_STEP``, 10 ms) to this bound. A bigger step
    that an answer shows (a 418's end against its ``Retry-After``) widens the
    uncertainty to it and asks for a sync (:meth:`doubt`).
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        resync_interval: float = 300.0,
        unsynced_uncertainty: float = 1.0,
        drift: float = 50e-6,
    ) -> None:
        if not 0 <= drift < 1:
            raise ValueError("drift must be in [0, 1) seconds per second")
        self.clock: Clock = clock if clock is not None else LoopClock()
        self.resync_interval = resync_interval
        self._shift: float | None = None
        self.uncertainty = unsynced_uncertainty
        """Half the round trip of the last sync (plus 1 ms): the error right after it."""
        self.drift = drift
        self.synced_at: float | None = None
        self.round_trip: float | None = None
        """The last sync's round trip, seconds: how long the next one is expected to take."""
        self.version = 0
        """Incremented on every update, so dependants can cache derived values."""
        self.doubted = False
        """An answer showed the estimate off by more than its uncertainty (:meth:`doubt`)."""
        self._listeners: list[Callable[[], object]] = []

    @property
    def shift(self) -> float:
        """Seconds to add to :meth:`Clock.monotonic` to get Binance's epoch time."""
        if self._shift is None:
            self._shift = self.clock.time() - self.clock.monotonic()
        return self._shift

    def now(self) -> float:
        """Binance's clock now, epoch seconds (estimate)."""
        return self.clock.monotonic() + self.shift

    def now_ms(self) -> int:
        """Binance's clock now, integer epoch milliseconds, for ``timestamp``."""
        return int((self.clock.monotonic() + self.shift) * 1000)

    def to_server(self, monotonic: float) -> float:
        return monotonic + self.shift

    def to_monotonic(self, server_epoch: float) -> float:
        return server_epoch - self.shift

    def uncertainty_at(self, monotonic: float) -> float:
        """Bound on the error of :meth:`to_server` at ``monotonic``: grows since the sync."""
        if self.synced_at is None:
            return self.uncertainty
        return self.uncertainty + self.drift * max(monotonic - self.synced_at, 0.0)

    def needs_sync(self) -> bool:
        if self.synced_at is None or self.doubted:
            return True
        return self.clock.monotonic() - self.synced_at >= self.resync_interval

    def update(self, *, sent: float, received: float, server_ms: int) -> None:
        """Record a server time read between monotonic ``sent`` and ``received``."""
        midpoint = (sent + received) / 2
        self._shift = server_ms / 1000 - midpoint
        # Half the round trip, plus the server's millisecond truncation.
        self.uncertainty = (received - sent) / 2 + 0.001
        self.round_trip = received - sent
        self.synced_at = received
        self.doubted = False
        self._changed()

    def doubt(self, error: float) -> None:
        """An answer showed this estimate off by up to ``error`` seconds, more than
        its uncertainty (Binance's clock stepped): the uncertainty grows to it
        until the next sync, which :meth:`needs_sync` now asks for."""
        if self.doubted and error <= self.uncertainty:
            return
        self.uncertainty = max(self.uncertainty, error)
        self.doubted = True
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        for listener in self._listeners:
            listener()

    def subscribe(self, listener: Callable[[], object]) -> None:
        """Call ``listener`` after every update (the governor re-derives its windows)."""
        self._listeners.append(listener)

    def __repr__(self) -> str:
        offset = (
            None
            if self._shift is None
            else self._shift - (self.clock.time() - self.clock.monotonic())
        )
        return (
            f"<ServerClock offset={offset if offset is None else round(offset, 4)}s "
            f"uncertainty={self.uncertainty:.4f}s synced={self.synced_at is not None}>"
        )
