"""RedisStorage against a real redis-server: leases, scopes, faults, shared budgets.

Each test gets its own redis-server (no persistence, a free loopback port),
stopped by its PID at the end. Windows are one second (``time_scale=60``) on
the real clock: Redis round trips are real I/O.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis
from anyio.streams.buffered import BufferedByteReceiveStream

from binance_transfers import (
    ENDPOINTS,
    Client,
    ConfigurationError,
    Governor,
    Limits,
    MemoryStorage,
    RateLimitError,
    RedisStorage,
    Storage,
)
from binance_transfers._redis_server import RedisServer, free_port
from binance_transfers.sim import SimulatedExchange, serve

from .conftest import demo_exchange, governor_on, refusals, synced
from .redis_child import LIMITS, synced_to_wall  # 60 weight per 1-s window on /api, 600 on /papi

ROOT = Path(__file__).resolve().parent.parent


async def hammer(
    sim: SimulatedExchange,
    storages: list[Storage],
    seconds: float,
    callers: int = 20,
    meanwhile: Callable[[list[int]], Coroutine[Any, Any, None]] | None = None,
    cold_start: bool | None = None,
) -> list[int]:
    """Each storage is one 'process': a governor and a client calling /api/v3/time
    from ``callers`` coroutines for ``seconds``, while ``meanwhile`` runs (it sees
    the counts). Returns the calls each one got answered; a caller stops at its
    first rate-limit error."""
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
            governor = governor_on(sim, LIMITS, storage, cold_start=cold_start)
            client = sim.client(governor=governor)
            clients.append(client)
            for _ in range(callers):
                tg.start_soon(caller, client, index)
        if meanwhile is not None:
            await meanwhile(done)  # as long as it takes
        else:
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
    sim = demo_exchange(limits=LIMITS)
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


async def test_without_redis_processes_of_one_account_overrun_its_rolling_cap() -> None:
    """The control: one MemoryStorage per process, each sure it is alone
    (``cold_start=False``, as with RedisStorage). Binance counts a rolling cap
    per account across every process, and no answer says what the others sent
    (caps have no usage header): three processes each send the 2 BNB transfers
    a period allows, and the exchange refuses what the first two left it.
    (IP weight is no such control any more: processes on one IP learn of each
    other from the usage headers and often hold, see the governor's sharing.)"""
    sim = demo_exchange(limits=LIMITS)
    sent = 0
    for _ in range(3):
        governor = Governor(
            LIMITS, clock=sim.clock, storage=MemoryStorage(), latency=0.02, cold_start=False
        )
        async with sim.client(governor=synced(governor, sim)) as client:
            for _ in range(2):
                with contextlib.suppress(RateLimitError):
                    await client.pmpro_bnb_transfer(amount="0.1", side="TO_UM", max_wait=0)
                    sent += 1
    assert sent == 2  # what the cap allows the account, whichever process sends it
    assert refusals(sim) > 0  # each later process sent one, believing it had 2


async def test_redis_lost_and_restarted_empty_mid_run(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis killed mid-run: every process admits only within the leases it holds
    (no local share: R-1) and no caller hangs; restarted empty: leases
    resume, and no window ever went over the limit."""
    sim = demo_exchange(limits=LIMITS)
    storages = [await RedisStorage.connect(redis_server.url, processes=3) for _ in range(3)]
    counts: dict[str, list[int]] = {}

    async def chaos(done: list[int]) -> None:
        await anyio.sleep(1.0)
        counts["lost"] = list(done)
        redis_server.kill()
        await anyio.sleep(1.5)
        counts["restarted"] = list(done)
        redis_server.start()  # same port, no data
        await anyio.sleep(3.5)  # leases resume after the windows anybody may hold
        counts["end"] = list(done)

    with caplog.at_level(logging.WARNING, logger="binance_transfers.redis"):
        try:
            await hammer(sim, list(storages), 0, meanwhile=chaos)
        finally:
            for storage in storages:
                await storage.aclose()
    assert sim.ledger.over_limit() == []
    assert refusals(sim) == 0
    lost, restarted, end = counts["lost"], counts["restarted"], counts["end"]
    # Without Redis, what the leases held covered (at most the window Redis
    # was lost in and the next: 2 windows' worth for everybody together).
    assert sum(restarted) - sum(lost) <= 2 * LIMITS.api_ip, counts
    # Back on Redis, every process goes on (nobody hung).
    assert all(b > a for a, b in zip(restarted, end, strict=True)), counts
    messages = [r.getMessage() for r in caplog.records]
    assert any("lost" in m and "only within the leases held" in m for m in messages), messages
    assert any("is back" in m for m in messages), messages
    # Back on Redis, the budget is used again: a whole window near the limit.
    windows = sim.ledger.window_weights("api-ip")
    assert max(list(windows.values())[-3:-1]) >= 0.9 * LIMITS.api_ip, windows


async def test_redis_restarted_empty_stops_new_leases_no_longer_than_needed(
    redis_server: RedisServer,
) -> None:
    """Redis killed early in window R and restarted empty a little later, in
    window B (R, unless the machine is slow): processes probe it while it is
    lost, so the restart's stop of new leases (R-6) ends after B + 1 (the last
    window a request sent by the first probe may land in, and the next). B + 2
    is used in full again (it was stopped when the first call after the restart
    came a window later), and nothing goes over the limit."""
    sim = demo_exchange(limits=LIMITS)
    storages = [await RedisStorage.connect(redis_server.url, processes=3) for _ in range(3)]
    marks: dict[str, int] = {}
    window = LIMITS.window

    async def chaos(done: list[int]) -> None:
        await anyio.sleep(1.5)  # running, past a fresh Redis's stop
        now = sim.clock.time()
        await anyio.sleep(window - now % window + 0.1)
        marks["killed"] = int(sim.clock.time() // window)
        redis_server.kill()
        await anyio.sleep(0.3)
        # Same port, no data. In a thread: the governors run meanwhile (the
        # start blocks until redis-server says it is ready, which a loaded
        # machine may take a while to say).
        await anyio.to_thread.run_sync(redis_server.start)
        # Back: the next probe comes within a tenth of a window, and the stop
        # covers the windows a request sent then may land in (a trip bound of
        # 0.02 s here, up to a few tenths on a loaded machine) and the next.
        marks["back"] = int((sim.clock.time() + window / 10 + 0.3) // window)
        await anyio.sleep(3.5)

    try:
        await hammer(sim, list(storages), 0, meanwhile=chaos)
    finally:
        for storage in storages:
            await storage.aclose()
    assert sim.ledger.over_limit() == []
    assert refusals(sim) == 0
    windows = sim.ledger.window_weights("api-ip")
    killed, back = marks["killed"], marks["back"]
    after = [windows.get(w, 0) for w in range(killed, back + 4)]
    # Not stopped: a stopped window gets nothing new (the defect: `R 60 60 0 60`).
    # Half the limit, not 90 %: on a loaded machine 20 callers in real time fill
    # 50 of 60 now and then (seen at load 7-10: [60, 35, 60, 60, 50]), which says
    # nothing of the stop.
    assert min(after[back - killed + 2 :]) >= LIMITS.api_ip // 2, (after, back - killed)


async def test_a_sigkilled_process_leases_come_back_with_their_windows(
    redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    """A process holding leases is SIGKILLed: its leases still count in their
    windows (they may have been spent), and the window after them is whole again."""
    child = await anyio.open_process(
        [sys.executable, "-m", "tests.redis_child", "hold", redis_server.url], cwd=ROOT
    )
    try:
        assert child.stdout is not None
        line = await BufferedByteReceiveStream(child.stdout).receive_until(b"\n", 200)
        _, child_id, first = line.decode().split()
        window = int(first)
        key = "{binance_transfers}:ip:default:api-ip:"
        held = {w: int(await raw.hget(f"{key}{w}", child_id) or 0) for w in (window, window + 1)}
        child.kill()
        await child.wait()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await child.aclose()
    assert held[window] >= 10  # it took 10 permits there
    sim = demo_exchange(limits=LIMITS)
    async with await RedisStorage.connect(redis_server.url) as storage:
        await hammer(sim, [storage], window + 3.05 - sim.clock.time())
    windows = sim.ledger.window_weights("api-ip")
    for w in (window, window + 1):
        assert windows.get(w, 0) <= LIMITS.api_ip - held[w], (windows, held)
    # The window after: more than what was left beside the dead process's lease.
    assert windows[window + 2] > LIMITS.api_ip - max(held.values()), (windows, held)


async def test_processes_share_one_budget_against_the_exchange_over_tcp(
    redis_server: RedisServer,
) -> None:
    """Three OS processes, 25 coroutines each, saturating /papi on one account and
    one IP through Redis: no 429 or 418 and no window over its limit (the
    exchange's ledger), the pool nearly full, and no process starved."""
    sim = demo_exchange(limits=LIMITS)
    async with serve(sim) as server:
        command = [sys.executable, "-m", "tests.redis_child", "run", redis_server.url, server.url]
        # Each runs 4 s from its first answer (a fresh Redis first stops leases
        # for a window or more: see RedisStorage, R-6), so whole windows overlap.
        results = await run_all([[*command, "4", "25"] for _ in range(3)])
    results = [out.split("done", 1)[1] for out in results]  # after any log lines
    assert "None" not in " ".join(results), results  # every process got answers
    done = [int(out.split()[0]) for out in results]
    assert sim.ledger.over_limit() == []
    assert refusals(sim) == 0
    # The windows all three ran through from start to end.
    start = max(int(out.split()[1]) for out in results) + 1
    end = min(int(out.split()[2]) for out in results)
    windows = sim.ledger.window_weights("papi-ip")
    full = [windows.get(w, 0) for w in range(start, end)]
    assert full, (results, windows)
    assert statistics.median(full) >= 0.9 * LIMITS.papi_ip, (full, windows)
    assert min(done) >= 0.15 * sum(done), done


async def run_all(commands: list[list[str]]) -> list[str]:
    """Start the commands, wait until each prints ``ready``, then tell them all
    ``go`` at once (a loaded machine may start them seconds apart: they must
    still run side by side); their outputs after ``ready`` (each must exit 0)."""
    children = [await anyio.open_process(command, cwd=ROOT, stderr=None) for command in commands]
    try:
        readers = []
        for child in children:
            assert child.stdout is not None
            reader = BufferedByteReceiveStream(child.stdout)
            line = await reader.receive_until(b"\n", 65536)
            assert line == b"ready", line.decode(errors="replace")
            readers.append(reader)
        for child in children:
            assert child.stdin is not None
            await child.stdin.send(b"go\n")
        outputs = [""] * len(children)

        async def drain(index: int) -> None:
            chunks = []
            with contextlib.suppress(anyio.EndOfStream):
                while True:
                    chunks.append(await readers[index].receive())
            outputs[index] = b"".join(chunks).decode()
            assert await children[index].wait() == 0, outputs[index]

        async with anyio.create_task_group() as tg:
            for index in range(len(children)):
                tg.start_soon(drain, index)
        return outputs
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
            await child.aclose()


async def test_closing_gives_back_what_was_leased_and_not_used(
    redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    """One permit taken, the rest of the lease returned at close: the next
    process finds the window whole but for that one unit."""
    sim = demo_exchange(limits=LIMITS)
    async with await RedisStorage.connect(redis_server.url) as storage:
        governor = governor_on(sim, LIMITS, storage)
        await governor.acquire(ENDPOINTS["server_time"])
        window = int(governor.server_clock.now() // LIMITS.window)
        key = f"{{binance_transfers}}:ip:default:api-ip:{window}"
        assert int(await raw.hget(key, "t") or 0) > 1  # a block, not one unit
    assert await raw.hget(key, "t") == "1"
    assert await raw.hget(key, storage.id) == "1"


async def test_a_429_freeze_is_honoured_by_the_other_processes(
    redis_server: RedisServer,
) -> None:
    """(R-7) Issue 10: "429 and 418 freezes that every process honours". A client outside
    Redis fills the /api window; process A on Redis gets the 429 (and freezes its
    own pool until Retry-After). Processes B and C on the same Redis and egress
    know nothing of it and send anyway: one 429 per process, where a shared freeze
    costs one. (Binance bans an IP that keeps sending after 429s.) The others
    send 50 ms after the 429: a freeze reaches them within a Redis round trip."""
    from binance_transfers import ThrottledError

    sim = demo_exchange(limits=LIMITS)
    outsider_governor = synced(
        Governor(LIMITS, clock=sim.clock, storage=MemoryStorage(), cold_start=False), sim
    )
    storages = [await RedisStorage.connect(redis_server.url, processes=3) for _ in range(3)]
    clients = [
        sim.client(
            governor=governor_on(sim, LIMITS, s),
            retry_on_429=False,
        )
        for s in storages
    ]
    try:
        for client in clients:  # warm: each governor has had an answer
            await client.server_time()
        # Start early in a window: everything below happens inside it.
        await anyio.sleep(LIMITS.window - sim.clock.time() % LIMITS.window + 0.005)
        async with (
            sim.client(governor=outsider_governor) as outsider,
            anyio.create_task_group() as tg,
        ):
            for _ in range(LIMITS.api_ip):
                tg.start_soon(outsider.server_time)
        for client in clients:
            with contextlib.suppress(RateLimitError, ThrottledError):
                await client.server_time(max_wait=0.3)
            # Processes learn of a freeze through Redis: one round trip after the
            # 429, not at once (a request already on its way cannot be recalled).
            await anyio.sleep(0.05)
    finally:
        for client in clients:
            await client.aclose()
        for storage in storages:
            await storage.aclose()
    statuses = [e.status for e in sim.ledger.entries("server_time")]
    statuses = statuses[len(clients) :]
    assert statuses[: LIMITS.api_ip] == [200] * LIMITS.api_ip  # the outsider's window
    windows = sim.ledger.window_weights("api-ip")
    assert statuses.count(429) + statuses.count(418) <= 1, (statuses[LIMITS.api_ip :], windows)
    assert statuses.count(429) == 1, (statuses[LIMITS.api_ip :], windows)  # A met the full window


async def test_a_process_joining_right_after_redis_restarts_empty_does_not_overrun(
    redis_server: RedisServer,
) -> None:
    """(R-6) A and B saturate /api through Redis; Redis restarts empty (a supervisor's
    quick restart, or a failover to an empty replica) and process C starts right
    after. C's first boot token *is* the new boot, so no "rebuilt" stop is set for
    it: Redis leases C the windows in which A and B still hold (unregistered)
    leases. The ledger shows windows over the limit, 429s and 418 bans.
    (Without C, the same restart holds: the fault is the newcomer.)"""
    sim = demo_exchange(limits=LIMITS)
    storages: list[RedisStorage] = []
    clients = []
    done: dict[str, int] = {}

    async def caller(client: object, name: str) -> None:
        while True:
            try:
                await client.server_time()  # type: ignore[attr-defined]
            except RateLimitError:
                return
            done[name] = done.get(name, 0) + 1

    try:
        async with anyio.create_task_group() as tg:

            async def start(name: str) -> None:
                storage = await RedisStorage.connect(redis_server.url, processes=3)
                storages.append(storage)
                governor = governor_on(sim, LIMITS, storage)
                client = sim.client(governor=governor)
                clients.append(client)
                for _ in range(10):
                    tg.start_soon(caller, client, name)

            await start("A")
            await start("B")
            await anyio.sleep(1.3)
            redis_server.kill()
            redis_server.start()  # same port, no data
            await start("C")
            await anyio.sleep(3.0)
            tg.cancel_scope.cancel()
    finally:
        for client in clients:
            await client.aclose()
        for storage in storages:
            with anyio.move_on_after(1):
                await storage.aclose()
    windows = sim.ledger.window_weights("api-ip")
    banned = len(sim.ledger.entries(status=418))
    assert sim.ledger.over_limit() == [], (windows, done, refusals(sim), banned)
    assert refusals(sim) == 0, (windows, done, banned)


async def test_no_restart_warning_on_a_first_reply_only_on_a_real_restart(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A storage that never saw a boot token (``from_url``, as ``limits --redis``
    builds it, or ``connect`` to a fresh Redis) says nothing of a restart on its
    first reply; one that knew a token says it when Redis comes back empty."""
    sim = demo_exchange(limits=LIMITS)

    async def one_call(storage: RedisStorage) -> None:
        governor = governor_on(sim, LIMITS, storage)
        async with sim.client(governor=governor) as client:
            await client.server_time()

    with caplog.at_level(logging.WARNING, logger="binance_transfers.redis"):
        cli = RedisStorage.from_url(redis_server.url)
        await one_call(cli)
        await cli.aclose()
        async with await RedisStorage.connect(redis_server.url) as storage:
            await one_call(storage)
            assert not [r for r in caplog.records if "restarted" in r.getMessage()]
            redis_server.kill()
            redis_server.start()  # same port, no data
            await one_call(storage)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("restarted" in m for m in messages) == 1, messages


async def test_leases_come_in_whole_requests(redis_server: RedisServer) -> None:
    """PM Pro auto-collection's IP pool holds 8 calls of 1500 a window; with 4
    processes a lease is ``limit / 16`` = 750, half a call. A process that has
    admitted a call and leases its next block in advance must not be left with
    half a call: nobody can use it, and the window loses a call for every two
    such halves (the demo: 75-87.5 % of that pool with 4 processes). Every lease a
    process holds is whole calls."""
    limits = Limits(time_scale=60)
    endpoint = ENDPOINTS["pmpro_auto_collect"]
    async with await RedisStorage.connect(redis_server.url, processes=4, fresh=True) as storage:
        governor = synced_to_wall(Governor(limits, storage=storage, latency=0.02, cold_start=False))
        for _ in range(3):
            await governor.acquire(endpoint, max_wait=5)  # never sent: it only counts
            while storage._task is not None:  # the lease asked for in advance
                await storage._task
            [counter] = storage._counters[f"sapi-ip {endpoint.method} {endpoint.path}"]
            assert counter._grant, counter
            assert all(g % endpoint.ip_weight == 0 for g in counter._grant.values()), counter
