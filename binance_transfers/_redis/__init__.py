"""One budget for many processes: the governor's counts leased from Redis.

Binance counts UID weight and rolling caps per account across every IP, and IP
weight per IP across every process behind it. :class:`RedisStorage` lets the
governors of many processes (and hosts) share those budgets without a round
trip per request, the way Doorman (YouTube's distributed client-side rate
limiter) does it: each process *leases* blocks of a window's capacity from
Redis and admits requests locally, within its lease, at the in-process speed.

* **Windows.** A pool's window ``w`` (its index on Binance's clock, as in the
  governor) is one Redis hash: the total leased (``t``) and each process's
  lease. One Lua script grants leases for any number of pools at once, never
  more than ``limit - total``; the sum of the leases of a window is therefore
  never above the limit, and a process only admits what its lease covers: the
  governor's all-or-nothing admission over several pools stays local and exact.
* **Lease size.** A process asks for a block sized by the number of live
  processes (``limit / (4 n)``, at least what a waiting request needs) and
  asks for the next one before the current one runs out, so the hot path
  never waits on Redis except at the first request of a window.
* **Scopes.** IP pools are named by ``egress`` (every process leaving through
  the same IP must use the same label); account pools (UID weight) carry the
  account in their key and are shared by every process of that account.
* **Faults.** Unreachable at :meth:`RedisStorage.connect`: :class:`ConfigurationError`.
  Lost mid-run: the process admits only within the leases it holds (the
  current and the next window at most) until Redis answers again, and retries
  every tenth of a window. There is no local share: a process cannot tell
  Redis down from its own route to Redis down (a partition), and in a
  partition the others go on leasing everything Redis has left, so any share
  taken here would come on top of the limit (R-1). A process
  SIGKILLed loses its leases with the windows they belong to (their keys
  expire). Redis restarted empty: the first process to reach it creates a
  new boot token, which stops all new leases up to the last window a request
  sent then may land in, and the next (every lease still held was taken
  before, so for no later window); every process re-registers what it holds,
  and counts are raised to what Binance's usage headers report. Every process
  that lost Redis (a failed call, or its pub/sub connection broken) probes it
  every tenth of a window, needed or not, so the token is created, and the
  stop set, as soon as Redis is back: a stop set by a first call a window
  later would cost a window more. A process that finds no boot token at all
  (a fresh Redis, or one restarted empty) cannot tell the two apart: it stops
  new leases the same way, which costs a fresh Redis its first window or two.
* **Freezes.** A 429 or 418 one process meets is published (a key per pool,
  one per egress for a ban, and a pub/sub message): every process stops its
  pools until the freeze's end, within a Redis round trip, and the lease
  script grants nothing in a frozen pool.

* **Rolling caps** (500 auto-collections an hour, per account) are one sorted
  set per cap, shared by every process of the account: each call holds a
  member scored by when it stops counting on Binance's clock (``+inf`` while
  held or in flight, ``answer + period`` once answered, as the in-process cap
  counts it). One Lua script drops what stopped counting and grants members
  while the count stays within the limit; a process leases as many as callers
  wait for and admits locally on them. A process that loses Redis admits
  nothing new on a cap (no local share); one silent for a liveness span
  (``max(period / 20, 3 socket timeouts)``) is dead: its held calls count
  until a period and two spans after its last contact (it may have sent them
  until half a span after it). Each cap's set holds a token of its own (a
  member at ``-inf``): a cap met without it (new, Redis restarted empty,
  flushed, or the set alone evicted: whatever loses the calls loses the token
  with them) grants nothing for a period and a span, since the calls of
  processes that exited before are not known (live processes re-register
  theirs within a span). ``connect(fresh=True)`` vouches for a Redis just
  started for the budget: a cap first met there since does not stop. See
  :class:`SharedCallCounter`.

The modules: ``_scripts`` (the Lua scripts), ``_counter`` (what both kinds of
counter hold), ``_windows`` (a pool's window leases, the governor's side),
``_caps`` (rolling caps), ``_leasing`` (the storage's lease round trips, Redis
lost and probed), ``_freezes`` (429s and bans shared), ``_storage``
(:class:`RedisStorage`: connecting, the Storage protocol, closing).
"""

from ._caps import SharedCallCounter
from ._storage import RedisStorage, storage_from_url
from ._windows import LeasedWindowCounter

__all__ = ["LeasedWindowCounter", "RedisStorage", "SharedCallCounter", "storage_from_url"]
