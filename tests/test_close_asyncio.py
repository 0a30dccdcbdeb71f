"""aclose() on asyncio stops calls by cancelling their task once, and takes that back.

A call waiting for its permit is stopped by ``aclose()``: its caller gets
:class:`ClientClosedError`, nothing is sent, and its task carries no
cancellation left over (an ``asyncio.timeout`` later in the same task still
works). A caller cancelled by anyone else at the same moment still gets its
cancellation: closing never swallows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from decimal import Decimal
from pathlib import Path

import httpx
import looptime
import pytest

from binance_transfers import (
    BnbTransferSide,
    Client,
    ClientClosedError,
    Governor,
    GovernorHooks,
    TransferType,
)
from binance_transfers._transport import ExchangeOutcome
from binance_transfers.sim import Fault, SimulatedExchange

from .conftest import API_KEY, SECRET, FakeBinance, ok

fake_time = looptime.enabled(strict=True)


async def _third_bnb_transfer_waiting(
    exchange: SimulatedExchange,
) -> tuple[Client, asyncio.Future[object], list[int]]:
    """A client whose 3rd PM Pro BNB transfer waits ~10 min for the 2-per-10-min cap."""
    client = exchange.client()
    for n in (1, 2):
        await client.pmpro_bnb_transfer(amount=f"0.{n}", side=BnbTransferSide.TO_UM)
    left: list[int] = []

    async def caller() -> object:
        try:
            return await client.pmpro_bnb_transfer(amount="0.3", side=BnbTransferSide.TO_UM)
        finally:
            task = asyncio.current_task()
            assert task is not None
            left.append(task.cancelling())

    queued = asyncio.ensure_future(caller())
    await asyncio.sleep(1)
    assert not queued.done()
    return client, queued, left


@fake_time
async def test_aclose_stops_a_waiting_call_and_leaves_its_task_uncancelled(
    exchange: SimulatedExchange,
) -> None:
    """The waiting caller gets ClientClosedError (nothing sent); its task has no
    cancellation pending afterwards, so a timeout it sets later still fires as one."""
    client, queued, left = await _third_bnb_transfer_waiting(exchange)
    await client.aclose()
    with pytest.raises(ClientClosedError, match="nothing was sent"):
        await queued
    assert left == [0]
    assert len(exchange.ledger.entries("pmpro_bnb_transfer")) == 2

    async def later() -> str:
        with pytest.raises(ClientClosedError):
            await client.pmpro_bnb_transfer(amount="0.4", side=BnbTransferSide.TO_UM)
        task = asyncio.current_task()
        assert task is not None
        try:
            async with asyncio.timeout(5):
                await asyncio.sleep(10)
        except TimeoutError:
            return f"timeout, cancelling={task.cancelling()}"
        return "no timeout"

    assert await later() == "timeout, cancelling=0"


@fake_time
async def test_a_caller_cancelled_as_the_client_closes_gets_its_cancellation(
    exchange: SimulatedExchange,
) -> None:
    """Cancelled by its owner and by aclose() in the same turn: CancelledError, not
    ClientClosedError (the owner's cancellation is never swallowed); nothing sent."""
    client, queued, left = await _third_bnb_transfer_waiting(exchange)
    queued.cancel()
    await client.aclose()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert left == [1]  # the owner's, still pending: its task ends cancelled
    assert len(exchange.ledger.entries("pmpro_bnb_transfer")) == 2


@fake_time
async def test_a_timeout_expiring_as_the_client_closes_raises_timeout_error(
    exchange: SimulatedExchange,
) -> None:
    """asyncio.timeout() around the call, expiring in the turn aclose() runs: the
    caller's timeout still reads as TimeoutError."""
    client = exchange.client()
    for n in (1, 2):
        await client.pmpro_bnb_transfer(amount=f"0.{n}", side=BnbTransferSide.TO_UM)
    loop = asyncio.get_running_loop()
    at = loop.time() + 5

    async def caller() -> str:
        try:
            async with asyncio.timeout_at(at):
                await client.pmpro_bnb_transfer(amount="0.3", side=BnbTransferSide.TO_UM)
        except TimeoutError:
            return "timeout"
        except ClientClosedError:
            return "closed"
        return "sent"

    queued = asyncio.ensure_future(caller())
    await asyncio.sleep(5)  # the timeout's handle runs in this turn, before the close
    await client.aclose()
    assert await queued == "timeout"
    assert len(exchange.ledger.entries("pmpro_bnb_transfer")) == 2


async def test_aclose_does_not_cut_off_an_on_detached_hook_running_in_the_caller(
    fake: FakeBinance,
) -> None:
    """A caller cancelled just as its answer arrived hands the outcome to its
    (async) on_detached hook from its own task; aclose() meanwhile neither cuts that
    hook off nor turns the caller's cancellation into anything else."""
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[ExchangeOutcome] = []

    async def on_detached(outcome: ExchangeOutcome) -> None:
        started.set()
        await release.wait()
        finished.append(outcome)

    client = Client(
        API_KEY,
        SECRET,
        transport=httpx.MockTransport(fake),
        governor=Governor(),
        on_detached=on_detached,
    )
    report = client._transport.on_outcome
    assert report is not None
    caller: asyncio.Task[object] | None = None

    async def cancel_the_caller_next(outcome: ExchangeOutcome) -> None:
        assert caller is not None
        await report(outcome)
        asyncio.get_running_loop().call_soon(caller.cancel)  # before it resumes

    client._transport.on_outcome = cancel_the_caller_next
    fake.script("POST", "/sapi/v1/asset/transfer", ok({"tranId": 7}))
    caller = asyncio.create_task(
        client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
    )
    await started.wait()
    closing = asyncio.create_task(client.aclose())
    await asyncio.sleep(0.05)
    release.set()
    await closing
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert [(o.data, o.detached) for o in finished] == [({"tranId": 7}, True)]
    assert len(fake.transfers) == 1


@fake_time
async def test_aclose_lets_an_async_on_detached_hook_record_the_outcome(
    exchange: SimulatedExchange,
) -> None:
    """The caller cancelled as its answer arrives, its on_detached hook
    awaiting (writing the outcome somewhere) when aclose() runs: the hook finishes."""
    caller: asyncio.Task[object] | None = None
    loop = asyncio.get_running_loop()

    class CancelAsTheAnswerArrives(GovernorHooks):
        def answered(self, endpoint: str, status: int | None, seconds: float | None) -> None:
            # In the request's own task as it reads the answer: the caller's
            # cancellation lands in the same turn, after its result is handed over.
            if endpoint == "universal_transfer" and caller is not None:
                loop.call_soon(caller.cancel)

    started = asyncio.Event()
    recorded: list[ExchangeOutcome] = []

    async def on_detached(outcome: ExchangeOutcome) -> None:
        started.set()
        await asyncio.sleep(1.0)
        recorded.append(outcome)

    governor = Governor(exchange.limits, clock=exchange.clock, hooks=CancelAsTheAnswerArrives())
    client = exchange.client(governor=governor, on_detached=on_detached)
    caller = asyncio.ensure_future(
        client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount=Decimal("1"))
    )
    await asyncio.wait_for(started.wait(), 60)
    assert len(exchange.ledger.executed("universal_transfer")) == 1
    await client.aclose()
    with contextlib.suppress(asyncio.CancelledError):
        await caller
    assert caller.cancelled()
    assert [o.data is not None for o in recorded] == [True]


@fake_time
@pytest.mark.parametrize("order", ["timeout-then-close", "close-then-timeout", "close-only"])
async def test_a_transfer_on_the_wire_reaches_its_caller_or_on_detached_when_closing(
    exchange: SimulatedExchange, order: str
) -> None:
    """The caller's own timeout and aclose() both hit a transfer on the
    wire (either order): the executed transfer reaches the caller (a result) or, the
    caller gone, on_detached; exactly one of them."""
    exchange.faults.add(Fault.latency(2.0), endpoint="universal_transfer", probability=1.0)
    detached: list[ExchangeOutcome] = []
    client = exchange.client(on_detached=detached.append)
    await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount=Decimal("1"))
    results: list[object] = []
    errors: list[BaseException] = []

    async def caller(limit: float) -> None:
        try:
            async with asyncio.timeout(limit):
                results.append(
                    await client.transfer(
                        type=TransferType.MAIN_UMFUTURE, asset="USDT", amount=Decimal("2")
                    )
                )
        except BaseException as exc:  # every way out is recorded
            errors.append(exc)

    timeout = {"timeout-then-close": 0.5, "close-then-timeout": 1.0, "close-only": 100.0}[order]
    task = asyncio.ensure_future(caller(timeout))
    await asyncio.sleep(0.5 if order != "timeout-then-close" else 0.75)
    await client.aclose()
    await task
    assert len(exchange.ledger.executed("universal_transfer")) == 2
    told = len(results) + len([d for d in detached if d.data is not None])
    assert told == 1, (order, results, errors, detached)
    if order == "close-only":
        assert results and not errors
    else:
        assert [type(e) for e in errors] == [TimeoutError] and detached[0].detached


@fake_time
async def test_aclose_in_the_turn_a_waiting_calls_permit_comes_writes_nothing(
    exchange: SimulatedExchange,
) -> None:
    """The queue leader's wake-up and aclose() in the same loop turn:
    the request task takes its permit first, but nothing is written after close
    (ClientClosedError, nothing sent, the permit given back)."""
    client = exchange.client()
    for n in (1, 2):  # PM Pro's BNB transfer: 2 per 10 minutes
        await client.pmpro_bnb_transfer(amount=f"0.{n}", side=BnbTransferSide.TO_UM)
    caller = asyncio.ensure_future(
        client.pmpro_bnb_transfer(amount="0.3", side=BnbTransferSide.TO_UM)
    )
    await asyncio.sleep(1)
    assert not caller.done()
    loop = asyncio.get_running_loop()
    # The leader's wake-up: anyio's move_on_after timer.
    timers = [
        h
        for h in loop._scheduled  # type: ignore[attr-defined]
        if getattr(h._callback, "__name__", "") == "_timeout" and not h.cancelled()
    ]
    assert len(timers) == 1, timers
    # Woken just before it in the same loop iteration, this task runs aclose()
    # after anyio cancelled the leader and before the leader resumes.
    woken: asyncio.Future[None] = loop.create_future()
    loop.call_at(timers[0].when() - 5e-10, woken.set_result, None)
    await woken
    await client.aclose()
    with pytest.raises(ClientClosedError, match="nothing was sent"):
        await caller
    assert len(exchange.ledger.entries("pmpro_bnb_transfer")) == 2


def _last_state(journal: Path) -> str:
    """The journal's last row, as a process started after a crash now would read it."""
    if not journal.exists():
        return "no journal yet"
    with contextlib.closing(sqlite3.connect(journal)) as conn:
        try:
            row = conn.execute("SELECT state FROM intents ORDER BY id DESC LIMIT 1").fetchone()
        except sqlite3.OperationalError:  # its table not created yet
            return "no table yet"
    return str(row[0]) if row else "no row"


async def test_aclose_hands_the_answer_over_only_once_the_journal_has_it(
    exchange: SimulatedExchange, tmp_path: Path
) -> None:
    """A call with no history to settle it (PM auto-collection) waits, after
    its answer, for the journal to commit its outcome; aclose() meanwhile (the journal's
    file locked by another connection) does not hand the caller its result before the
    row is done on disk. Real time: the journal writes in its own thread."""
    journal = tmp_path / "journal.sqlite"
    exchange.faults.add(Fault.latency(0.3), endpoint="pm_auto_collect", probability=1.0)
    client = exchange.client(journal=journal)
    seen: list[str] = []

    async def caller() -> None:
        await client.pm_auto_collect()
        seen.append(_last_state(journal))  # what a crash right now would leave

    task = asyncio.ensure_future(caller())
    for _ in range(200):  # until the intent is committed and the request on the wire
        await asyncio.sleep(0.01)
        if _last_state(journal) == "open":
            break
    lock = sqlite3.connect(journal, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # the journal's writer now waits (busy_timeout 5 s)
    try:
        await asyncio.sleep(0.4)  # the answer came; the caller waits for its flush
        closing = asyncio.ensure_future(client.aclose())
        await asyncio.sleep(0.2)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    await closing
    await task
    assert seen == ["done"]
