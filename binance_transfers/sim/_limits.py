"""Rate limits as Binance counts them: fixed windows, rolling caps, IP bans.

* Weight pools (IP and UID) count in fixed windows aligned to the server's
  clock: window ``n`` covers server epoch ``[n * w, (n + 1) * w)`` with
  ``w = limits.window``. Every request that arrives is counted, including the
  ones refused afterwards for their signature or timestamp, and the ones
  answered 429: Binance counts what it receives.
* Which pools a request draws from comes from :func:`binance_transfers.pools_for`,
  exactly as the governor computes it; per-IP pools are then keyed by the
  caller's IP, account pools and caps by the account.
* A request that takes a pool over its limit is answered 429 with
  ``Retry-After`` (seconds to the window's end). A caller that sends another
  over-limit request to that pool before then has ignored the 429: its IP is
  banned (418), for ``BanPolicy.first`` seconds, then twice as long each time,
  up to three days. Durations are divided by ``limits.time_scale``.
* Rolling call caps (500 auto-collections an hour) count the calls executed
  in the last ``period`` seconds of the monotonic clock, per account: a call
  refused (for its parameters, a balance...) has not used the function. A
  call over a cap is answered 429 each time; caps never lead to a ban.
"""

from __future__ import annotations

import math
from collections import deque

import attrs

from .._endpoints import Endpoint
from .._limits import Limits, PoolKind, PoolSpec, pools_for
from ._ledger import Charge

__all__ = ["BanPolicy", "RateLimiter"]


@attrs.frozen(kw_only=True)
class BanPolicy:
    """How the exchange bans IPs that keep sending after a 429.

    Durations are in unscaled seconds (divided by ``Limits.time_scale``).
    ``prefixes`` lists the API families that ban; some of Binance's newer
    pages say ``/sapi`` only ever answers 429, so leave ``"sapi"`` out to
    simulate that.
    """

    first: float = 120.0
    """Binance's shortest ban: 2 minutes."""
    factor: float = 2.0
    longest: float = 3 * 24 * 3600.0
    """Binance's longest: 3 days."""
    prefixes: frozenset[str] = frozenset({"api", "papi", "sapi"})


@attrs.define
class Exceeded:
    """A pool a request would take over its limit."""

    spec: PoolSpec
    retry_after: float
    """Seconds until the pool could take the request again."""


@attrs.define
class _Window:
    index: int
    used: int


class RateLimiter:
    """The exchange's counters; all times are passed in by the caller."""

    def __init__(self, limits: Limits, bans: BanPolicy) -> None:
        self.limits = limits
        self.bans = bans
        self._windows: dict[tuple[str | None, str], _Window] = {}
        self._calls: dict[str, deque[float]] = {}
        self._backoff: dict[tuple[str, str], float] = {}
        self._banned: dict[str, float] = {}
        self._ban_count: dict[str, int] = {}

    def pools(self, endpoint: Endpoint, account: str | None) -> tuple[PoolSpec, ...]:
        """The pools a request draws from; without a known account, only the IP's."""
        specs = pools_for(endpoint, self.limits, account or "?")
        if account is None:
            return tuple(s for s in specs if s.per_ip)
        return specs

    # -- bans ------------------------------------------------------------------

    def banned_until(self, ip: str, now: float) -> float | None:
        """Monotonic end of ``ip``'s ban, if it is banned at ``now``."""
        until = self._banned.get(ip)
        return until if until is not None and now < until else None

    def ban(self, ip: str, now: float) -> float:
        """Ban ``ip`` (longer each time); return the ban's monotonic end."""
        count = self._ban_count.get(ip, 0)
        self._ban_count[ip] = count + 1
        policy = self.bans
        seconds = min(policy.first * policy.factor**count, policy.longest)
        until = now + seconds / self.limits.time_scale
        self._banned[ip] = until
        # A fresh start after the ban: the next over-limit request earns a 429 first.
        for key in [k for k in self._backoff if k[0] == ip]:
            del self._backoff[key]
        return until

    # -- weight ----------------------------------------------------------------

    def charge(
        self,
        specs: tuple[PoolSpec, ...],
        ip: str,
        server_now: float,
    ) -> tuple[list[Charge], list[Exceeded]]:
        """Count a request arriving at ``server_now`` in its fixed-window pools."""
        charges, exceeded = [], []
        for spec in specs:
            if spec.kind is PoolKind.CAP:
                continue
            owner = ip if spec.per_ip else None
            index = int(server_now // spec.period)
            window = self._window(owner, spec.key, index)
            window.used += spec.weight
            charges.append(
                Charge(
                    pool=spec.key,
                    kind=spec.kind,
                    ip=owner,
                    weight=spec.weight,
                    window=index,
                    limit=spec.limit,
                )
            )
            if window.used > spec.limit:
                exceeded.append(Exceeded(spec, (index + 1) * spec.period - server_now))
        return charges, exceeded

    def used(self, spec: PoolSpec, ip: str, server_now: float) -> int:
        """Weight counted so far in the current window of ``spec``."""
        owner = ip if spec.per_ip else None
        window = self._windows.get((owner, spec.key))
        index = int(server_now // spec.period)
        return window.used if window is not None and window.index == index else 0

    def _window(self, owner: str | None, key: str, index: int) -> _Window:
        window = self._windows.get((owner, key))
        if window is None or window.index != index:
            # Binance's count restarts at the window boundary: nothing carries over.
            window = self._windows[(owner, key)] = _Window(index, 0)
        return window

    def ignored_backoff(self, ip: str, exceeded: list[Exceeded], now: float) -> bool:
        """Whether ``ip`` sent this over-limit request while told to back off.

        Also records the new back-off the 429 answer is about to announce.
        """
        ignored = False
        for item in exceeded:
            key = (ip, item.spec.key)
            until = self._backoff.get(key)
            if until is not None and now < until:
                ignored = True
            self._backoff[key] = max(until or now, now + item.retry_after)
        return ignored

    def bans_on(self, endpoint: Endpoint) -> bool:
        return endpoint.prefix in self.bans.prefixes

    # -- rolling caps ----------------------------------------------------------

    def admit_call(self, specs: tuple[PoolSpec, ...], now: float) -> float | None:
        """Count one call in every rolling cap; None if admitted, else seconds to wait.

        A call refused by one cap is counted in none.
        """
        caps = [s for s in specs if s.kind is PoolKind.CAP]
        wait = 0.0
        for spec in caps:
            calls = self._calls.setdefault(spec.key, deque())
            while calls and calls[0] <= now - spec.period:
                calls.popleft()
            if len(calls) >= spec.limit:
                # The call that frees a slot is the limit-th most recent one.
                wait = max(wait, calls[len(calls) - spec.limit] + spec.period - now)
        if wait > 0:
            return wait
        for spec in caps:
            self._calls[spec.key].append(now)
        return None

    def release_call(self, specs: tuple[PoolSpec, ...], now: float) -> None:
        """Take back the call :meth:`admit_call` counted at ``now``: it was not executed."""
        for spec in specs:
            calls = self._calls.get(spec.key) if spec.kind is PoolKind.CAP else None
            if calls and calls[-1] == now:
                calls.pop()

    def retry_after_header(self, seconds: float) -> str:
        """``Retry-After`` as Binance sends it: whole seconds, fractions when scaled."""
        if self.limits.time_scale == 1:
            return str(max(1, math.ceil(seconds)))
        return f"{math.ceil(seconds * 1000) / 1000:.3f}".rstrip("0").rstrip(".") or "0"
