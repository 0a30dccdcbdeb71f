"""Settling across processes of one account: a history row is claimed once, by one of them.

Two clients of one account stand for two processes (each has its own
reconciler, as a process would). Universal transfers are settled from
Binance's history by type, asset, amount and time: identical transfers of two
processes look alike, so the ``tranId`` of one process's confirmed transfer,
or of another process's settlement, must not settle this one's unknown outcome.
That needs claims both see: Redis (when the governor's storage is Redis) or a
shared SQLite claims file (``Client(claims=PATH)``).

Real time (Redis answers real sockets): recvWindow 1 s and settle margins of
0.2 s keep each settlement under two seconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from binance_transfers import (
    Client,
    ConfigurationError,
    Governor,
    Limits,
    OutcomeUnknownError,
    RedisStorage,
    TransferType,
)
from binance_transfers._redis_server import RedisServer
from binance_transfers.sim import Fault, SimulatedExchange

MARGIN = 0.2
RECV_WINDOW = 1000

# Two processes' clients of one account, given an exit stack.
Pair = Callable[[AsyncExitStack], Any]


@pytest.fixture
def exchange() -> SimulatedExchange:
    # Windows 600 times shorter: a fresh Redis stops new leases until the longest
    # window a request may still land in is over (a minute's becomes 0.1 s).
    sim = SimulatedExchange(limits=Limits(time_scale=600))
    sim.add_demo_account()
    return sim


@pytest.fixture
def redis_server() -> Any:
    with RedisServer() as server:
        yield server


async def _redis_clients(
    exchange: SimulatedExchange, redis_server: RedisServer, stack: AsyncExitStack
) -> list[Client]:
    clients = []
    for _ in range(2):
        storage = await stack.enter_async_context(await RedisStorage.connect(redis_server.url))
        governor = Governor(exchange.limits, clock=exchange.clock, storage=storage)
        # Synced before its first permit, as tests/test_redis.py does: the stop a
        # fresh Redis sets is counted on Binance's clock.
        clock = governor.server_clock
        mono = clock.clock.monotonic()
        server_ms = round(exchange.clock.time() * 1000)
        clock.update(sent=mono - 0.001, received=mono + 0.001, server_ms=server_ms)
        client = exchange.client(governor=governor, settle_margin=MARGIN, recv_window=RECV_WINDOW)
        clients.append(await stack.enter_async_context(client))
    return clients


async def _sqlite_clients(
    exchange: SimulatedExchange, path: Path, stack: AsyncExitStack
) -> list[Client]:
    clients = []
    for _ in range(2):
        client = exchange.client(settle_margin=MARGIN, recv_window=RECV_WINDOW, claims=path)
        clients.append(await stack.enter_async_context(client))
    return clients


@pytest.fixture(params=["redis", "sqlite"])
async def pair(
    request: pytest.FixtureRequest, exchange: SimulatedExchange, tmp_path: Path
) -> AsyncIterator[list[Client]]:
    async with AsyncExitStack() as stack:
        if request.param == "redis":
            server = stack.enter_context(RedisServer())
            yield await _redis_clients(exchange, server, stack)
        else:
            yield await _sqlite_clients(exchange, tmp_path / "claims.sqlite", stack)


async def unknown_transfer(client: Client) -> OutcomeUnknownError:
    with pytest.raises(OutcomeUnknownError) as caught:
        await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="7")
    return caught.value


def executed_ids(exchange: SimulatedExchange) -> list[Any]:
    return [entry.result for entry in exchange.ledger.executed("universal_transfer")]


async def test_another_process_s_confirmed_transfer_does_not_settle_this_one(
    exchange: SimulatedExchange, pair: list[Client]
) -> None:
    """Process B's identical transfer executed (and B knows it); A's was dropped unexecuted
    without executing: A's unknown outcome is not executed. Per-process claims took B's row."""
    one, other = pair
    exchange.faults.add(Fault.drop(executes=False), endpoint="universal_transfer", times=1)
    unknown = await unknown_transfer(one)
    await other.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="7")
    assert len(executed_ids(exchange)) == 1
    settled = await one.reconcile(unknown)
    assert settled.executed is False, settled


async def test_two_processes_settling_identical_unknowns_claim_the_row_once(
    exchange: SimulatedExchange, pair: list[Client]
) -> None:
    """A's transfer executed (answer lost), B's was dropped unexecuted: both unknown,
    identical, settled at the same time. Exactly one of them is executed."""
    import anyio

    one, other = pair
    exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    first = await unknown_transfer(one)
    exchange.faults.add(Fault.drop(executes=False), endpoint="universal_transfer", times=1)
    second = await unknown_transfer(other)
    (executed,) = executed_ids(exchange)
    verdicts: dict[int, Any] = {}

    async def settle(n: int, client: Client, error: OutcomeUnknownError) -> None:
        verdicts[n] = await client.reconcile(error)

    async with anyio.create_task_group() as tg:
        tg.start_soon(settle, 0, one, first)
        tg.start_soon(settle, 1, other, second)
    assert sorted(bool(v.executed) for v in verdicts.values()) == [False, True], verdicts
    assert [v.tran_id for v in verdicts.values() if v.executed] == [executed]


class _Unreachable:
    """A claims store that never answers a claim (a Redis gone, a locked file)."""

    def __init__(self) -> None:
        self.published: list[int] = []

    async def claim(self, account: str, tran_id: int, owner: str, at_ms: int) -> str:
        raise ConfigurationError("the claims store did not answer")

    def answered(self, account: str, tran_id: int, at_ms: int) -> None:
        self.published.append(tran_id)

    async def aclose(self) -> None:
        return None


async def test_a_claims_store_that_does_not_answer_leaves_the_outcome_unsettled(
    exchange: SimulatedExchange,
) -> None:
    """The row cannot be claimed, so nobody can say whose it is: executed=None, not a guess
    ("executed" might take another process's row; "not executed" would authorise a resend)."""
    store = _Unreachable()
    client = exchange.client(settle_margin=MARGIN, recv_window=RECV_WINDOW, claims=store)
    async with client:
        exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
        unknown = await unknown_transfer(client)
        await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="7")
        settled = await client.reconcile(unknown)
    assert settled.executed is None
    assert "could not be read" in settled.reason
    assert store.published == executed_ids(exchange)[1:]  # its own answer was published
