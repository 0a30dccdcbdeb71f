"""What the governor tells the outside: hooks, and the errors it refuses with."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from .._endpoints import Endpoint
from .._exceptions import IPBannedError, ThrottledError
from ._geometry import Geometry
from ._queue import Plan

__all__ = ["PERMIT_WAIT", "GovernorHooks", "Reporting", "overridden"]

log = logging.getLogger("binance_transfers.governor")

#: Seconds the call running in this context spent queued for permits, when a
#: caller counts them (the client's per-transfer log record sets ``[0.0]``).
#: Added to only when a call had to queue: the uncontended path stays untouched.
PERMIT_WAIT: ContextVar[list[float] | None] = ContextVar(
    "binance_transfers_permit_wait", default=None
)


class GovernorHooks:
    """Subclass and override what you want to measure; every method is a no-op.

    Hooks run synchronously inside the governor: keep them short. A hook left
    as the no-op costs nothing on the uncontended path. A hook that raises is
    logged (``binance_transfers.governor``, ERROR) and otherwise ignored: it
    never reaches the caller, loses a permit or changes how an answer is read.
    """

    def throttled(self, endpoint: str, wait: float) -> None:
        """A call has to wait an estimated ``wait`` seconds for a permit."""

    def admitted(self, endpoint: str, waited: float) -> None:
        """A call got its permit after waiting ``waited`` seconds (0: at once).

        Fires for every permit, immediate or queued."""

    def refused(self, endpoint: str, reason: str, retry_after: float) -> None:
        """A call got no permit: ``reason`` is ``"throttled"`` (no room within
        ``max_wait``) or ``"banned"``; ``retry_after`` seconds is the earliest retry."""

    def frozen(self, pool: str, until: float, reason: str) -> None:
        """A pool stops until Binance epoch ``until`` (a 429 or a ban)."""

    def usage(self, pool: str, used: int, limit: int) -> None:
        """Binance reported weight spent elsewhere; ``used`` is the new count."""

    def answered(self, endpoint: str, status: int | None, seconds: float | None) -> None:
        """A permitted request's answer came: HTTP ``status`` after ``seconds`` (None and
        None: no answer, a timeout or a dropped connection). Fires for every request
        written, 429s and 418s included."""

    def transferred(self, endpoint: str, outcome: str, seconds: float) -> None:
        """A client's mutating call ended after ``seconds``, however it ended.

        ``outcome`` is one word: ``done``, ``refused``, ``unknown``,
        ``not_executed``, ``throttled``, ``banned``, ``rate_limited``,
        ``invalid``, ``closed``, ``cancelled`` or ``error`` (as in the
        ``binance_transfers.transfers`` log record). Fired by the client."""


def overridden(hooks: GovernorHooks, name: str) -> Any:
    """The bound hook ``name`` if ``hooks`` overrides it, else None (a no-op costs nothing)."""
    method = getattr(type(hooks), name)
    return getattr(hooks, name) if method is not getattr(GovernorHooks, name) else None


class Reporting:
    """The governor's hooks and refusals (a mixin: the governor supplies the state)."""

    hooks: GovernorHooks
    _on_refused: Callable[[str, str, float], None] | None
    _publish_freeze: Callable[[str, float], None] | None
    _banned_until: float

    def _geometry(self, now: float) -> Geometry:
        raise NotImplementedError

    def _retry_at(self, endpoint: Endpoint, plan: Plan, now: float) -> float:
        raise NotImplementedError

    @staticmethod
    def _hook(method: Any, *args: Any) -> None:
        """Call a hook; one that raises is logged, never allowed to change an outcome.

        Hooks run between charging a pool and returning its permit, and while
        an answer is being read: an exception there would leak weight, or turn
        a confirmed transfer into an unknown one.
        """
        try:
            method(*args)
        except Exception:
            log.exception("governor hook %s() failed (ignored)", method.__name__)

    def _waited(self, endpoint: Endpoint, wait: float) -> None:
        self._hook(self.hooks.throttled, endpoint.name, wait)
        log.debug("%s waits for a permit (about %.3f s)", endpoint.name, wait)

    def _admitted(self, endpoint: Endpoint, waited: float) -> None:
        self._hook(self.hooks.admitted, endpoint.name, waited)
        waits = PERMIT_WAIT.get()  # runs in the caller's context (after its wait)
        if waits is not None:
            waits[0] += waited

    def _frozen_hook(self, pool: str, until: float, reason: str) -> None:
        self._hook(self.hooks.frozen, pool, until, reason)
        if self._publish_freeze is not None:  # tell the other processes
            self._publish_freeze(pool, until)

    def _usage_hook(self, pool: str, used: int, limit: int) -> None:
        self._hook(self.hooks.usage, pool, used, limit)

    def _refuse(
        self, endpoint: Endpoint, error: ThrottledError | IPBannedError
    ) -> ThrottledError | IPBannedError:
        if self._on_refused is not None:
            reason = "banned" if isinstance(error, IPBannedError) else "throttled"
            self._hook(self._on_refused, endpoint.name, reason, error.retry_after)
        return error

    def _ban_error(self, now: float) -> IPBannedError:
        return IPBannedError(
            "IP banned by Binance (HTTP 418)",
            retry_at=self._banned_until + self._geometry(now).shift,
            retry_after=self._banned_until - now,
        )

    def _throttled(
        self, endpoint: Endpoint, plan: Plan, now: float, max_wait: float | None
    ) -> ThrottledError:
        at = self._retry_at(endpoint, plan, now)
        error = ThrottledError(
            f"{endpoint.name}: no permit within max_wait={_rounded(max_wait)} s",
            retry_at=at + self._geometry(now).shift,
            retry_after=max(at - now, 0.0),
        )
        self._refuse(endpoint, error)
        return error


def _rounded(seconds: float | None) -> float | None:
    """Seconds fit to print (a deadline's remainder reads 0.19999846800010346)."""
    return None if seconds is None else round(seconds, 3)
