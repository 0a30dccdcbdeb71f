"""What both kinds of shared counter hold: the pool, its Redis key, the storage."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._limits import PoolSpec
    from .._storage import StorageLink
    from ._storage import RedisStorage

__all__ = ["RedisCounter"]


class RedisCounter:
    """A pool's count shared through Redis (a window's leases, a rolling cap).

    ``key`` is the pool's key in the governor, ``redis_key`` its key in Redis
    (scoped by egress or account); ``link`` is the governor's side (its clock,
    where requests land, waking the pool).
    """

    __slots__ = ("_link", "_storage", "key", "limit", "period", "redis_key")

    def __init__(
        self, storage: RedisStorage, spec: PoolSpec, link: StorageLink, redis_key: str
    ) -> None:
        self._storage = storage
        self._link = link
        self.key = spec.key
        self.redis_key = redis_key
        self.limit = spec.limit
        self.period = spec.period
