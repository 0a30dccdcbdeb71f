"""The rate-limit governor: every request waits here for a permit.

One idea per module:

* ``_geometry``: where a request sent now may land on Binance's clock (the
  clock estimate, its drift, the trip bound, the guard band): the margins;
* ``_pools``: fixed windows and rolling caps, and their counters;
* ``_queue``: the wait queue (FIFO per pool, one timer, no polling);
* ``_feedback``: what answers teach (landing, usage headers, 429s, bans);
* ``_core``: :class:`Governor`, its public API and hooks.
"""

from ._core import Governor, GovernorHooks, GovernorStats, PoolSnapshot
from ._queue import Permit

__all__ = ["Governor", "GovernorHooks", "GovernorStats", "Permit", "PoolSnapshot"]
