"""In-flight weight that outlives its window, across processes sharing Redis.

A request written near a window's end is charged to the windows its landing
interval covers; if it is late (a stall: the 2-process demo's flake, trips of
0.5 s after 0.2 s), the governor counts it in the next window too (a "ghost")
when it opens that window, and a shared storage claims it in Redis then.
Another process may have leased and spent the whole next window by then: one
429, then bans. The storage now claims our in-flight weight in the next
window before it begins, while Redis still has it. Real redis-server, real
clock; one-second windows.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import anyio

from binance_transfers import ENDPOINTS, RateLimitError, RedisStorage, ThrottledError
from binance_transfers._limits import pools_for
from binance_transfers._redis_server import RedisServer
from binance_transfers._storage import StorageLink, WindowCounter
from binance_transfers.sim import Fault

from .conftest import client_on, demo_exchange, refusals
from .redis_child import LIMITS  # 60 weight per 1-s window on /api

LATE = 0.3  # seconds the exchange reads B's burst late: into the next window


async def test_a_late_burst_of_one_process_is_counted_before_another_fills_the_next_window(
    redis_server: RedisServer,
) -> None:
    """B writes 20 calls of weight 1 in the last tenth of window w, after fast
    answers (trips of milliseconds); the exchange sees them 0.3 s later, in
    w+1. A saturates w+1 from its start. Window w+1 holds at most 60 and
    nobody earns a 429 (it was 62 of 60, a 429 and 8-12 bans every run)."""
    sim = demo_exchange(limits=LIMITS)
    storages = [await RedisStorage.connect(redis_server.url, processes=2) for _ in range(2)]
    a, b = (client_on(sim, LIMITS, storage) for storage in storages)
    window = LIMITS.window

    async def call(client: object) -> None:
        with contextlib.suppress(RateLimitError, ThrottledError):
            await client.server_time(max_wait=2 * window)  # type: ignore[attr-defined]

    try:
        for _ in range(5):  # warm: each governor learns trips of milliseconds
            await a.server_time()
            await b.server_time()
        await anyio.sleep(window - sim.clock.time() % window + 0.9 * window)
        w = int(sim.clock.time() // window)
        sim.faults.add(Fault.latency(LATE), endpoint="server_time", times=20)
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(call, b)
            await anyio.sleep(0.1 * window + 0.01)  # window w+1 has begun
            for _ in range(70):
                tg.start_soon(call, a)
    finally:
        for client in (a, b):
            await client.aclose()
        for storage in storages:
            await storage.aclose()
    windows = sim.ledger.window_weights("api-ip")
    late = [e for e in sim.ledger.entries("server_time") if e.latency >= LATE]
    assert len(late) == 20 and {int(e.arrived // window) for e in late} == {w + 1}
    assert refusals(sim) == 0, (windows, sim.ledger.entries(status=429))
    assert max(windows.values()) <= LIMITS.api_ip, windows


async def _leases_settled(*storages: RedisStorage) -> None:
    """Until every lease request on its way has its answer."""
    for storage in storages:
        while storage._task is not None:
            await storage._task


#: /api's pool on one IP (60 a window) and a link on the real clock.
SPEC = next(s for s in pools_for(ENDPOINTS["server_time"], LIMITS, "demo") if s.per_ip)
LINK = StorageLink(lambda key: None, time.time, lambda period: (int(time.time() // period),) * 2)


@contextlib.asynccontextmanager
async def _forced_past_the_limit(
    url: str,
) -> AsyncIterator[tuple[WindowCounter, WindowCounter, int]]:
    """Two processes' counters of one pool: A has leased all of window ``w``
    (ahead: no window ends meanwhile); B then counted 5 of its own there, over
    its lease (none): claimed, granted by force (65 of 60). Yields (A, B, w)."""
    # The test started this Redis: nothing it does not know of counts.
    storages = [await RedisStorage.connect(url, processes=2, fresh=True) for _ in range(2)]
    try:
        a, b = (storage.window_counter(SPEC, LINK) for storage in storages)
        w = int(time.time() // SPEC.period) + 2
        a._ask(w, SPEC.limit)  # type: ignore[attr-defined]
        await _leases_settled(*storages)
        b.add(w, 5)
        await _leases_settled(*storages)
        yield a, b, w
        await _leases_settled(*storages)
    finally:
        for storage in storages:
            await storage.aclose()


async def test_a_grant_forced_past_the_limit_is_no_room_once_its_charge_is_given_back(
    redis_server: RedisServer,
) -> None:
    """A leased all of a window; B then counts a late request of its own there
    (a ghost: it may land there), which Redis grants past the limit (65 of 60).
    B's request is answered elsewhere and its charge given back: the forced 5
    were never Redis's to give, so B may not admit them: the window holds A's
    60, no more (B reused them: 65; the 2-process demo's other 429, 9 of 8)."""
    async with _forced_past_the_limit(redis_server.url) as (a, b, w):
        b.remove(w, 5)  # it landed in the window before
        admitted = [c.try_add(w, 1, SPEC.limit) for c in (a, b) for _ in range(SPEC.limit)]
    assert sum(x is not None for x in admitted) <= SPEC.limit, admitted.count(None)


async def test_a_grant_forced_past_the_limit_shrinks_the_unused_leases_of_the_others(
    redis_server: RedisServer,
) -> None:
    """A leased all of a window and has not used it yet; B counts a late
    request of its own there, which Redis grants past the limit (65 of 60):
    it may land there. A hears of it and holds back the excess: A's 55 and
    B's 5, no more (A spent all 60 it held: the 2-process demo's 429 with a
    hog, 9 calls of 8, 1 run in 12)."""
    async with _forced_past_the_limit(redis_server.url) as (a, _, w):
        await anyio.sleep(0.1)  # a message through Redis
        admitted = [a.try_add(w, 1, SPEC.limit) for _ in range(SPEC.limit)]
    assert sum(x is not None for x in admitted) + 5 <= SPEC.limit, admitted.count(None)
