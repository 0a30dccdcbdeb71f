"""The rate-limit governor: every request waits here for a permit.

One idea per module:

* ``_geometry``: where a request sent now may land on Binance's clock (the
  clock estimate, its drift, the trip bound, the guard band): the margins;
* ``_pools``: the pools, by kind: ``_pool`` (what every pool has: its queue's
  bookkeeping, its freeze, cold start), ``_fixed`` (fixed windows and their
  counters), ``_reports`` (what usage headers say of a window and of
  others; ``_writes``: ours in flight by write time; ``_doubts``: windows
  not known, of ours in flight or lost and of ambiguous reports), ``_probes`` (when
  requests whose answers bring news may leave), ``_sharing`` (a
  window shared with another governor on the IP), ``_caps`` (rolling caps);
* ``_queue``: the wait queue (FIFO per pool, one timer, no polling);
* ``_feedback``: what answers teach (landing, usage headers, 429s, bans);
* ``_plans``: which pools a call draws on, and forgetting the idle ones;
* ``_hooks``: what the governor tells the outside (hooks, refusals);
* ``_snapshot``: what it shows (``snapshot()``, ``stats()``);
* ``_core``: :class:`Governor`, its public API.
"""

from ._core import Governor, GovernorHooks, GovernorStats, PoolSnapshot
from ._queue import Permit

__all__ = ["Governor", "GovernorHooks", "GovernorStats", "Permit", "PoolSnapshot"]
