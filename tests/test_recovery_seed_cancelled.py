"""A call cancelled while the journal seeds the governor leaves it unseeded, not seeded.

Before its first mutating call a client tells the governor what earlier runs
sent to endpoints with rolling caps (PM Pro's BNB transfer: 2 per 10
minutes), so that a restarted process does not take a full cap as unused and
earn a 429 (which counts towards a ban and stops the pool for 10 minutes). The
first caller seeds; the others wait for it. That first caller may be cancelled
(a timeout, a task group, ``aclose()``) while the journal reads its rows: the
others must then seed themselves, not proceed as if it had finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import pytest

from binance_transfers import BnbTransferSide, ThrottledError
from binance_transfers._journal import Journal
from binance_transfers.sim import SimulatedExchange


async def test_a_caller_cancelled_while_seeding_leaves_the_seed_to_the_next(
    exchange: SimulatedExchange, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "journal.sqlite"
    async with exchange.client(journal=journal) as before:
        for n in (1, 2):
            await before.pmpro_bnb_transfer(amount=f"0.{n}", side=BnbTransferSide.TO_UM)
    reading = asyncio.Event()
    read = Journal.sent_since

    async def slow_read(self: Journal, since_ms: Mapping[str, int]) -> dict[str, list[int]]:
        reading.set()
        await asyncio.sleep(0.05)  # the rows are still on their way from the disk
        return await read(self, since_ms)

    monkeypatch.setattr(Journal, "sent_since", slow_read)
    # The process restarts on the same journal, within the 10 minutes.
    async with exchange.client(journal=journal) as client:
        first = asyncio.ensure_future(
            client.pmpro_bnb_transfer(amount="0.3", side=BnbTransferSide.TO_UM)
        )
        other = asyncio.ensure_future(
            client.pmpro_bnb_transfer(amount="0.4", side=BnbTransferSide.TO_UM, max_wait=1)
        )
        await reading.wait()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        with pytest.raises(ThrottledError):  # the cap is full: about 10 minutes to wait
            await other
    assert [e.status for e in exchange.ledger.entries("pmpro_bnb_transfer")] == [200, 200]
