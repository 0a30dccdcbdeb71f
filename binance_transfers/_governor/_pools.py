"""Pools and their counters, by kind.

* ``_pool``: what every pool has (its queue's bookkeeping, its freeze, cold start);
* ``_fixed``: fixed windows aligned to Binance's clock (IP and UID weight);
* ``_sharing``: a fixed window shared with another governor on the IP;
* ``_caps``: rolling caps on calls.
"""

from ._caps import CapPool
from ._fixed import FixedPool
from ._pool import Pool

__all__ = ["CapPool", "FixedPool", "Pool"]
