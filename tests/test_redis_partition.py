"""RedisStorage when ONE process loses its route to Redis (a partition: the
others still reach it). R-1, on real redis-server and sockets
(1-s windows, ``time_scale=60``); the oracle is the simulated exchange's ledger.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream

from binance_transfers import RateLimitError, RedisStorage
from binance_transfers._redis_server import RedisServer

from .conftest import demo_exchange, governor_on, refusals
from .redis_child import LIMITS


class Proxy:
    """A TCP relay to Redis for ONE process: ``cut()`` black-holes it (a network
    partition of that process only: the bytes are read and dropped, the
    connection stays open, as a dead route does)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cut_off = False
        self.listen_port = 0

    async def _pipe(self, src: SocketStream, dst: SocketStream) -> None:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            async for chunk in src:
                if not self.cut_off:
                    await dst.send(chunk)

    async def _handle(self, client: SocketStream) -> None:
        async with (
            client,
            await anyio.connect_tcp("127.0.0.1", self.port) as upstream,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(self._pipe, client, upstream)
            tg.start_soon(self._pipe, upstream, client)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Proxy]:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        self.listen_port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, self._handle)
            yield self
            tg.cancel_scope.cancel()


async def test_one_partitioned_process_does_not_overrun_the_others(
    redis_server: RedisServer,
) -> None:
    """R-1. Two processes on one IP; only A loses its route to Redis
    (B still reaches it). A local share for A (limit // 2) beside B, which goes
    on leasing everything Redis has left, sends more than the limit in a
    window: 429s, then 418 bans. A process that lost Redis must admit nothing
    beyond the leases it holds."""
    sim = demo_exchange(limits=LIMITS)
    proxy = Proxy(redis_server.port)
    async with proxy.running():
        a = await RedisStorage.connect(
            f"redis://127.0.0.1:{proxy.listen_port}/0", processes=2, socket_timeout=0.2
        )
        b = await RedisStorage.connect(redis_server.url, processes=2, socket_timeout=0.2)
        done = [0, 0]

        async def caller(client: object, index: int) -> None:
            while True:
                try:
                    await client.server_time()  # type: ignore[attr-defined]
                except RateLimitError:
                    return
                done[index] += 1

        clients = []
        try:
            async with anyio.create_task_group() as tg:
                for index, storage in enumerate((a, b)):
                    governor = governor_on(sim, LIMITS, storage)
                    client = sim.client(governor=governor)
                    clients.append(client)
                    for _ in range(10):
                        tg.start_soon(caller, client, index)
                await anyio.sleep(1.2)
                proxy.cut_off = True  # A's route to Redis goes dark; B's does not
                await anyio.sleep(4.0)
                tg.cancel_scope.cancel()
        finally:
            for client in clients:
                await client.aclose()
            with anyio.move_on_after(1):
                await b.aclose()
            with anyio.move_on_after(1):
                await a.aclose()
    assert a.lost is not None  # A did fall back to local shares
    assert done[0] > 0 and done[1] > 0
    windows = sim.ledger.window_weights("api-ip")
    banned = len(sim.ledger.entries(status=418))
    assert sim.ledger.over_limit() == [], (windows, done, refusals(sim), banned)
    assert refusals(sim) == 0, (windows, banned)


async def test_a_closed_storage_stops_probing_a_lost_redis(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut off from Redis, a process probes it every tenth of a window; closed
    while a probe is on its way, it tries Redis no more (a probe that fails
    schedules the next one)."""
    sim = demo_exchange(limits=LIMITS)
    proxy = Proxy(redis_server.port)
    async with proxy.running():
        storage = await RedisStorage.connect(
            f"redis://127.0.0.1:{proxy.listen_port}/0", socket_timeout=0.2
        )
        governor = governor_on(sim, LIMITS, storage)
        async with sim.client(governor=governor) as client:
            with anyio.move_on_after(3):  # past a fresh Redis's stop
                while True:
                    await client.server_time()
            proxy.cut_off = True
            with anyio.move_on_after(1.5):  # its leases run out, then Redis is lost
                while True:
                    await client.server_time()
        assert storage.lost is not None
        # Nobody asks for leases now: the probe alone tries Redis. Close while
        # one is on its way (it fails when the connection closes).
        probing = anyio.Event()
        call = storage._call

        async def spy(batch: Any, probe: Any = None) -> list[Any]:
            if probe is not None:
                probing.set()
            return await call(batch, probe)

        monkeypatch.setattr(storage, "_call", spy)
        with anyio.fail_after(2):
            await probing.wait()
        await storage.aclose()
        tries = storage.round_trips
        await anyio.sleep(1.0)  # ten probes' worth
        assert storage.round_trips == tries
