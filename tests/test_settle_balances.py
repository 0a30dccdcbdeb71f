"""What the balances cannot settle: reconcile_margin_transfer says so, and why.

tests/sim/test_balances.py settles dropped margin transfers either way; here
the two cases that stop before any balance is read again: an error with no
timestamp (no moment after which the request cannot execute) and a baseline
read after the request may have executed (it may already include the move).
"""

from __future__ import annotations

import anyio
import looptime
import pytest

from binance_transfers import Client, OutcomeUnknownError, SettleBy
from binance_transfers._models import MarginTransferDirection
from binance_transfers.sim import Fault, SimulatedExchange

DESK = "desk-1@sim.invalid"
ENDPOINT = "sub_account_margin_transfer"

fake_time = looptime.enabled(strict=True)


async def _unknown_margin_transfer(client: Client) -> OutcomeUnknownError:
    with pytest.raises(OutcomeUnknownError) as caught:
        await client.sub_account_margin_transfer(
            email=DESK,
            asset="USDT",
            amount="30",
            direction=MarginTransferDirection.SPOT_TO_MARGIN,
        )
    return caught.value


@pytest.fixture
def exchange(exchange: SimulatedExchange) -> SimulatedExchange:
    """The demo exchange (conftest's), whose next margin transfer is dropped
    after it executed."""
    exchange.faults.add(Fault.drop(), endpoint=ENDPOINT, times=1)
    return exchange


@fake_time
async def test_an_error_without_a_timestamp_is_left_unsettled(exchange: SimulatedExchange) -> None:
    async with exchange.client(settle_margin=5.0) as client:
        baseline = await client.margin_transfer_baseline(email=DESK, asset="USDT")
        unknown = await _unknown_margin_transfer(client)
        unknown.timestamp = None
        del unknown.params["timestamp"]
        settled = await client.reconcile_margin_transfer(unknown, baseline)
    assert (settled.endpoint, settled.executed, settled.by) == (ENDPOINT, None, SettleBy.BALANCES)
    assert settled.reason.startswith("the error carries no timestamp")
    assert settled.params["amount"] == "30" and "timestamp" not in settled.params
    # The balances were not read again: only the baseline read them.
    assert len(exchange.ledger.entries("sub_account_assets")) == 1


@fake_time
async def test_a_baseline_read_after_the_request_is_refused(exchange: SimulatedExchange) -> None:
    async with exchange.client(settle_margin=5.0) as client:
        unknown = await _unknown_margin_transfer(client)  # executed, answer lost
        await anyio.sleep(1.0)  # past the clock's uncertainty: surely after the request
        baseline = await client.margin_transfer_baseline(email=DESK, asset="USDT")
        settled = await client.reconcile_margin_transfer(unknown, baseline)
    assert (settled.endpoint, settled.executed, settled.by) == (ENDPOINT, None, SettleBy.BALANCES)
    assert settled.reason == "the baseline was read after the request may have executed"
    assert settled.params["email"] == DESK and "recvWindow" not in settled.params
    # The baseline already holds the move: compared, it would have said "not executed".
    assert exchange.ledger.times_executed(ENDPOINT) == 1
    assert len(exchange.ledger.entries("sub_account_assets")) == 1
