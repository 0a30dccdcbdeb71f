"""B8-1: a 429 of our own, met while another process's freeze is on,
must still reach the other processes when it ends later than theirs.

The freeze-echo fix (91d2e85, ``_redis/_freezes.py``) stops publishing the
governor's re-report of a freeze another process published. But the governor
then holds that freeze widened by its clock margin, and drops any later 429 of
its own that ends within that widened freeze (``_freeze``: ``until <=
pool.frozen_until``): it is never told to the storage. Before the fix the
widened echo itself was published, which covered it (and bounced: the bug the
fix removes). Now process A resumes at its own 429's end while Binance told B
(same IP) to wait longer: A sends during a Retry-After Binance gave this IP.

Real redis-server and sockets (pub/sub), one-second windows.
"""

from __future__ import annotations

import anyio

from binance_transfers import ENDPOINTS, Client, Governor, GovernorHooks, RedisStorage
from binance_transfers._governor._pool import Pool
from binance_transfers._redis_server import RedisServer

from .conftest import demo_exchange, governor_on
from .redis_child import LIMITS  # 60 weight per 1-s window on /api


def api_pool(governor: Governor) -> Pool:
    (pool,) = [p for key, p in governor._pools.items() if key.startswith("api-ip")]
    return pool


class Told(GovernorHooks):
    """Each freeze a governor announces (its ``frozen`` hook), as an event."""

    def __init__(self) -> None:
        self.event = anyio.Event()

    def frozen(self, pool: str, until: float, reason: str) -> None:
        self.event.set()

    async def next(self, limit: float) -> bool:
        """True once a freeze is announced within ``limit`` s (real time: pub/sub)."""
        with anyio.move_on_after(limit):
            await self.event.wait()
        told, self.event = self.event.is_set(), anyio.Event()
        return told


async def test_our_own_later_429_is_published_during_another_process_freeze(
    redis_server: RedisServer,
) -> None:
    sim = demo_exchange(limits=LIMITS)
    endpoint = ENDPOINTS["server_time"]
    storages = [await RedisStorage.connect(redis_server.url, processes=2) for _ in range(2)]
    clients: list[Client] = []
    told = [Told(), Told()]
    try:
        for storage, hook in zip(storages, told, strict=True):
            clients.append(sim.client(governor=governor_on(sim, LIMITS, storage, hooks=hook)))
        for client in clients:  # each governor's pools are on the storage, its listener up
            await client.server_time()
        a, b = (c.governor for c in clients)
        clock = a.server_clock.clock
        # Early in a window: B writes one request; its answer comes late (a 429).
        await anyio.sleep(LIMITS.window - sim.clock.time() % LIMITS.window + 0.05)
        b_permit = b.renew(await b.acquire(endpoint))
        assert b_permit is not None
        b_sent = clock.monotonic()
        # A meets a 429 first: Retry-After 0.3 s. B is told through Redis.
        a_permit = a.renew(await a.acquire(endpoint))
        assert a_permit is not None
        now = clock.monotonic()
        a.observe(a_permit, sent=now - 0.01, received=now, status=429, retry_after=0.3)
        a_until = api_pool(a).frozen_until
        assert await told[0].next(0) and await told[1].next(2.0)  # A's own; B through Redis
        b_frozen = api_pool(b).frozen_until  # A's end, widened by B's clock margin
        assert b_frozen > a_until, (b_frozen, a_until)
        # B's own 429 (its request reached Binance a little later): Binance tells
        # this IP to wait until between A's end and B's widened copy of it.
        own_until = (a_until + b_frozen) / 2
        now = clock.monotonic()
        b.observe(b_permit, sent=b_sent, received=now, status=429, retry_after=own_until - now)
        # Every process on the IP must now hold off until B's end too.
        await told[0].next(0.5)
        assert api_pool(a).frozen_until >= own_until - 0.001, (
            "A resumes before the end of the 429 Binance gave B (same IP)",
            api_pool(a).frozen_until - a_until,
            own_until - a_until,
        )
    finally:
        for client in clients:
            await client.aclose()
        for storage in storages:
            await storage.aclose()
