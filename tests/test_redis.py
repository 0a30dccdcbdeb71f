"""RedisStorage against a real redis-server: leases, scopes, faults, shared budgets.

Each test gets its own redis-server (no persistence, a free loopback port),
stopped by its PID at the end. Windows are one second (``time_scale=60``) on
the real clock: Redis round trips are real I/O.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anyio
import pytest
import redis.asyncio as aioredis

from binance_transfers import (
    Client,
    ConfigurationError,
    Governor,
    Limits,
    MemoryStorage,
    RateLimitError,
    RedisStorage,
    Storage,
)
from binance_transfers.sim import SimulatedExchange

from .redis_server import RedisServer, free_port

LIMITS = Limits(api_ip=60, time_scale=60)  # 60 weight per 1-s window on /api


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


def exchange() -> SimulatedExchange:
    sim = SimulatedExchange(limits=LIMITS)
    sim.add_demo_account()
    return sim


def synced(governor: Governor, sim: SimulatedExchange) -> Governor:
    """Read the exchange's clock as a signed call would (server_time alone does not sync)."""
    clock = governor.server_clock
    mono = clock.clock.monotonic()
    clock.update(sent=mono - 0.001, received=mono + 0.001, server_ms=round(sim.clock.time() * 1000))
    return governor


def refusals(sim: SimulatedExchange) -> int:
    """Answers with 429 or 418, as the exchange's ledger recorded them."""
    return len(sim.ledger.entries(status=429)) + len(sim.ledger.entries(status=418))


async def hammer(
    sim: SimulatedExchange, storages: list[Storage], seconds: float, callers: int = 20
) -> list[int]:
    """Each storage is one 'process': a governor and a client calling /api/v3/time
    from ``callers`` coroutines for ``seconds``. Returns the calls each one got
    answered; a caller stops at its first rate-limit error."""
    done = [0] * len(storages)

    async def caller(client: Client, index: int) -> None:
        while True:
            try:
                await client.server_time()
            except RateLimitError:
                return
            done[index] += 1

    clients = []
    async with anyio.create_task_group() as tg:
        for index, storage in enumerate(storages):
            governor = synced(Governor(LIMITS, clock=sim.clock, storage=storage, latency=0.02), sim)
            client = sim.client(governor=governor)
            clients.append(client)
            for _ in range(callers):
                tg.start_soon(caller, client, index)
        await anyio.sleep(seconds)
        tg.cancel_scope.cancel()
    for client in clients:
        await client.aclose()
    return done


async def test_unreachable_at_start_is_a_configuration_error() -> None:
    """Nothing listens there: a clear ConfigurationError, and no password in it."""
    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    with pytest.raises(ConfigurationError, match="unreachable") as caught:
        await RedisStorage.connect(url)
    assert "hunter2" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)


async def test_processes_sharing_redis_never_exceed_the_ip_limit(
    redis_server: RedisServer,
) -> None:
    """Three governors (three processes' worth) on one IP: no window over the limit, no 429."""
    sim = exchange()
    storages = [await RedisStorage.connect(redis_server.url) for _ in range(3)]
    try:
        done = await hammer(sim, list(storages), 2.5)
    finally:
        for storage in storages:
            await storage.aclose()
    assert sim.ledger.over_limit() == []
    assert refusals(sim) == 0
    windows = sim.ledger.window_weights("api-ip")
    assert max(windows.values()) > LIMITS.api_ip * 0.8, windows  # the budget is used
    assert min(done) > 0.15 * sum(done), done  # nobody starved


async def test_without_redis_the_same_processes_earn_429s() -> None:
    """The control: one MemoryStorage per process, the same load is refused by the exchange."""
    sim = exchange()
    await hammer(sim, [MemoryStorage() for _ in range(3)], 1.5)
    assert sim.ledger.over_limit() != [] or refusals(sim) > 0
