"""aclose() on asyncio stops calls by cancelling their task once, and takes that back.

A call waiting for its permit is stopped by ``aclose()``: its caller gets
:class:`ClientClosedError`, nothing is sent, and its task carries no
cancellation left over (an ``asyncio.timeout`` later in the same task still
works). A caller cancelled by anyone else at the same moment still gets its
cancellation: closing never swallows it.
"""

from __future__ import annotations

import asyncio

import looptime
import pytest

from binance_transfers import BnbTransferSide, Client, ClientClosedError
from binance_transfers.sim import SimulatedExchange

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
