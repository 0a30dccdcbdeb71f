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

from collections.abc import AsyncIterator
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

from . import test_reconcile
from .conftest import demo_exchange, synced
from .test_reconcile import unknown_transfer

MARGIN = 0.2
RECV_WINDOW = 1000


@pytest.fixture
def exchange() -> SimulatedExchange:
    # Windows 600 times shorter: a fresh Redis stops new leases until the longest
    # window a request may still land in is over (a minute's becomes 0.1 s).
    return demo_exchange(limits=Limits(time_scale=600))


def client_of(exchange: SimulatedExchange, **kwargs: Any) -> Client:
    """A process's client: short settle margin and recvWindow (see the module's docstring)."""
    return exchange.client(settle_margin=MARGIN, recv_window=RECV_WINDOW, **kwargs)


async def _redis_clients(
    exchange: SimulatedExchange, redis_server: RedisServer, stack: AsyncExitStack
) -> list[Client]:
    clients = []
    for _ in range(2):
        storage = await stack.enter_async_context(await RedisStorage.connect(redis_server.url))
        # Synced before its first permit: the stop a fresh Redis sets is counted on
        # Binance's clock.
        governor = synced(
            Governor(exchange.limits, clock=exchange.clock, storage=storage), exchange
        )
        clients.append(await stack.enter_async_context(client_of(exchange, governor=governor)))
    return clients


async def _sqlite_clients(
    exchange: SimulatedExchange, path: Path, stack: AsyncExitStack
) -> list[Client]:
    return [await stack.enter_async_context(client_of(exchange, claims=path)) for _ in range(2)]


@pytest.fixture(params=["redis", "sqlite"])
async def pair(
    request: pytest.FixtureRequest, exchange: SimulatedExchange, tmp_path: Path
) -> AsyncIterator[list[Client]]:
    async with AsyncExitStack() as stack:
        if request.param == "redis":
            server = request.getfixturevalue("redis_server")  # only for this case
            yield await _redis_clients(exchange, server, stack)
        else:
            yield await _sqlite_clients(exchange, tmp_path / "claims.sqlite", stack)


def executed_ids(exchange: SimulatedExchange) -> list[Any]:
    return test_reconcile.executed_ids(exchange, "universal_transfer")


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
    client = client_of(exchange, claims=store)
    async with client:
        exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
        unknown = await unknown_transfer(client)
        await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="7")
        settled = await client.reconcile(unknown)
    assert settled.executed is None
    assert "could not be read" in settled.reason
    assert store.published == executed_ids(exchange)[1:]  # its own answer was published


async def test_a_moved_journal_still_owns_the_row_its_crashed_settlement_claimed(
    exchange: SimulatedExchange, tmp_path: Path
) -> None:
    """A settlement claimed its row in the shared claims, then the process died before its
    verdict was journaled; the journal file was moved before recover(). The claim is still
    this request's: executed, not "someone else's row, so not executed" (a resend)."""
    import os
    import sqlite3

    claims, first_path = tmp_path / "claims.sqlite", tmp_path / "old" / "j.sqlite"
    first_path.parent.mkdir()
    exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    async with client_of(exchange, claims=claims, journal=first_path) as client:
        unknown = await unknown_transfer(client)
        settled = await client.reconcile(unknown)
    assert settled.executed is True
    # The crash: the claim is in the claims file, the verdict never reached the journal.
    with sqlite3.connect(first_path) as conn:
        conn.execute("UPDATE intents SET state = 'unknown', note = NULL")
    conn.close()
    moved = tmp_path / "new" / "j.sqlite"
    moved.parent.mkdir()
    os.rename(first_path, moved)
    async with client_of(exchange, claims=claims, journal=moved) as later:
        (recovered,) = await later.recover()
    assert recovered.executed is True, recovered
    assert recovered.tran_id == settled.tran_id == executed_ids(exchange)[0]


async def test_a_copy_settled_in_another_process_and_the_row_recovered_agree(
    exchange: SimulatedExchange, tmp_path: Path
) -> None:
    """Process A's transfer executed, answer lost; a copy of its error (pickled) is settled
    by process B; A then restarts and recover()s the row. Both settle one request: the
    claim B made is the row's own, so both say executed (not B "executed", A "not executed":
    A's journal would then authorise a resend)."""
    import pickle

    claims, journal = tmp_path / "claims.sqlite", tmp_path / "j.sqlite"
    exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    async with client_of(exchange, claims=claims, journal=journal) as first:
        unknown = await unknown_transfer(first)
    copy = pickle.loads(pickle.dumps(unknown))  # noqa: S301 - our own bytes
    async with client_of(exchange, claims=claims) as other:
        elsewhere = await other.reconcile(copy)
    assert elsewhere.executed is True
    async with client_of(exchange, claims=claims, journal=journal) as restarted:
        (recovered,) = await restarted.recover()
    assert recovered.executed is True, recovered
    assert recovered.tran_id == elsewhere.tran_id == executed_ids(exchange)[0]
