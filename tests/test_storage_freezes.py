"""A freeze shared through Redis ends when the 429 said, in every process.

Each governor re-reports a freeze it is told of (its ``frozen`` hook) widened
by its clock margin; the storage used to publish that echo as a freeze of its
own, so two processes bounced one 429's freeze back and forth, each bounce
some tens of milliseconds later: the 2-process demo's auto-collection pool
stayed frozen for the rest of the run (1215 freezes, the last 78 s ahead,
after a single 429). Real redis-server, real clock (Redis answers real
sockets); one-second windows.
"""

from __future__ import annotations

import contextlib

import anyio

from binance_transfers import (
    Client,
    Governor,
    GovernorHooks,
    MemoryStorage,
    RateLimitError,
    RedisStorage,
    ThrottledError,
)
from binance_transfers._redis_server import RedisServer

from .conftest import demo_exchange, governor_on, synced
from .redis_child import LIMITS  # 60 weight per 1-s window on /api


class Freezes(GovernorHooks):
    """Every freeze a governor announces: (pool, until on Binance's clock, reason)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, float, str]] = []

    def frozen(self, pool: str, until: float, reason: str) -> None:
        self.seen.append((pool, until, reason))


async def test_a_429_freeze_is_not_bounced_between_processes_and_ends(
    redis_server: RedisServer,
) -> None:
    """Process A meets a 429 on /api (an outsider filled the window); B learns
    it through Redis. Each announces the freeze once, and neither is frozen
    once it is over (it grew by each bounce, for as long as they ran)."""
    sim = demo_exchange(limits=LIMITS)
    outsider = sim.client(
        governor=synced(
            Governor(LIMITS, clock=sim.clock, storage=MemoryStorage(), cold_start=False), sim
        )
    )
    storages = [await RedisStorage.connect(redis_server.url, processes=2) for _ in range(2)]
    hooks = [Freezes(), Freezes()]
    clients: list[Client] = []
    try:
        for storage, hook in zip(storages, hooks, strict=True):
            governor = governor_on(sim, LIMITS, storage, hooks=hook)
            clients.append(sim.client(governor=governor, retry_on_429=False))
        for client in clients:  # warm: each governor has had an answer
            await client.server_time()
        # Early in a window: the outsider fills it, A's next call earns the 429.
        await anyio.sleep(LIMITS.window - sim.clock.time() % LIMITS.window + 0.005)
        async with anyio.create_task_group() as tg:
            for _ in range(LIMITS.api_ip):
                tg.start_soon(outsider.server_time)
        with contextlib.suppress(RateLimitError, ThrottledError):
            await clients[0].server_time(max_wait=0.3)
        assert [e.status for e in sim.ledger.entries("server_time")][-1] == 429
        # Three windows: a bounced freeze would have moved its end ~40 times.
        await anyio.sleep(3 * LIMITS.window)
        # Over in both (whatever else, e.g. the outsider's 60 held for it, waits).
        frozen = [
            p.frozen_until for c in clients for p in c.governor.snapshot() if p.key == "api-ip"
        ]
    finally:
        for client in [*clients, outsider]:
            await client.aclose()
        for storage in storages:
            await storage.aclose()
    ends = [[until for pool, until, _ in hook.seen if pool.startswith("api-ip")] for hook in hooks]
    assert [len(e) for e in ends] == [1, 1], ends
    # B stops until the same end (widened by its clock's margin, not by bounces).
    assert abs(ends[1][0] - ends[0][0]) < 0.1, ends
    assert frozen == [None, None], (frozen, ends)
