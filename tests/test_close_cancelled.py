"""``async with client`` unwinding under ``asyncio.timeout`` while transfers fly.

Closing runs to its end, and a cancelled publish keeps its
answered tranIds. Here 20 transfers (latency 0.5 s) are on the wire when the
``asyncio.timeout`` around ``async with Client(journal=..., claims=...)``
fires, and the closing task is cancelled twice more while it closes. After:
every transfer the exchange executed is journaled ``done`` (none ``open``),
its tranId is published as answered in the claims file, each reached its
caller's ``on_detached`` hook, and the caller sees ``TimeoutError``.
Real time: the journal's writer thread and a fake clock race (looptime
advances to the timeout before the intent is written). The timeout fires once
all 20 are on their way to the exchange (a fixed 0.3 s was not enough for a
loaded machine to write any: nothing executed, nothing to check).
"""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from binance_transfers import Governor, TransferType
from binance_transfers._claims import ANSWERED
from binance_transfers._endpoints import Endpoint
from binance_transfers._transport import ExchangeOutcome
from binance_transfers.sim import Fault, SimulatedExchange
from binance_transfers.sim._exchange import Incoming, Outgoing

UNIVERSAL = "universal_transfer"


async def test_a_close_cancelled_again_and_again_journals_and_publishes_everything(
    tmp_path: Path,
) -> None:
    exchange = SimulatedExchange(seed=5)
    exchange.add_demo_account()
    exchange.faults.add(Fault.latency(0.5), endpoint=UNIVERSAL, probability=1.0)
    journal, claims = tmp_path / "journal.sqlite", tmp_path / "claims.sqlite"
    detached: list[ExchangeOutcome] = []
    on_the_wire: list[str] = []
    all_sent = asyncio.Event()
    handle = exchange.handle

    async def travel(endpoint: Endpoint, request: Incoming) -> Outgoing:
        if endpoint.name == UNIVERSAL:
            on_the_wire.append(request.path)
            if len(on_the_wire) == 20:
                all_sent.set()
        return await handle(endpoint, request)

    exchange.handle = travel  # type: ignore[method-assign]
    deadline = asyncio.timeout(None)

    async def run() -> None:
        async with (
            deadline,
            exchange.client(
                governor=Governor(exchange.limits, clock=exchange.clock, cold_start=False),
                journal=journal,
                claims=claims,
                on_detached=detached.append,
            ) as client,
            asyncio.TaskGroup() as tg,
        ):
            for i in range(20):
                tg.create_task(
                    client.transfer(
                        type=TransferType.MAIN_UMFUTURE, asset="USDT", amount=Decimal(i + 1)
                    )
                )

    task = asyncio.ensure_future(run())
    await asyncio.wait_for(all_sent.wait(), 60)
    deadline.reschedule(asyncio.get_running_loop().time())  # the timeout fires now
    await asyncio.sleep(0.05)  # closing, waiting for the answers (0.5 s away)
    for _ in range(2):
        task.cancel()
        await asyncio.sleep(0.05)
    with pytest.raises((TimeoutError, asyncio.CancelledError)):
        await task

    executed = {int(str(e.result)) for e in exchange.ledger.executed(UNIVERSAL)}
    assert len(executed) == 20
    with sqlite3.connect(journal) as conn:
        states = dict(conn.execute("SELECT state, count(*) FROM intents GROUP BY state").fetchall())
        done = {row[0] for row in conn.execute("SELECT tran_id FROM intents WHERE state = 'done'")}
    assert states == {"done": 20}, states
    assert done == executed
    with sqlite3.connect(claims) as conn:
        published = dict(conn.execute("SELECT tran_id, owner FROM claims").fetchall())
    assert published == dict.fromkeys(executed, ANSWERED)
    assert {int(str(d.data["tranId"])) for d in detached if d.data} == executed
