"""The pool only the clock read draws from (/api) starts warm.

Every signed call waits for the clock sync, a read of weight 1 on /api. A
previous life cannot have filled that pool with its syncs, so the cold start
there guarded nothing and cost much (review break28):

* a lost first read (its connection dropped, or its answer past the read
  timeout) kept its place until the next minute, and every signed call with
  it: the first transfer went 16-60 s after the start instead of at once (or
  after the read timeout);
* a first read sent in a minute's last second, with the clock not synced yet
  (known to a second), may land on either side of the boundary, and the next
  read (the sync after a public ``server_time()``) waited 4 s into the next
  minute (seen over TCP; here on the simulated exchange's loop clock).

Deterministic (looptime).
"""

from __future__ import annotations

import looptime
import pytest

from binance_transfers import TransferType
from binance_transfers.sim import Fault
from tests.neighbour import PROFILES, Neighbour


@pytest.mark.parametrize(("fault", "lost_for"), [("drop", 0.1), ("late", 30.0)])
@pytest.mark.parametrize("phase", [1.0, 20.0, 45.0])
@looptime.enabled(strict=True)
async def test_a_lost_clock_read_holds_signed_calls_no_longer_than_its_loss(
    phase: float, fault: str, lost_for: float
) -> None:
    side = Neighbour(lambda window: 0, *PROFILES["fast"], phase=phase, seed=1)
    lost = {"drop": Fault.drop(), "late": Fault.late(45.0)}[fault]
    side.exchange.faults.add(lost, endpoint="server_time", times=1)
    async with side.exchange.client() as client:
        start = side.now()
        await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
    [sent] = [e.arrived for e in side.exchange.ledger if e.endpoint == "universal_transfer"]
    assert sent - start < lost_for + 1.0


@pytest.mark.parametrize("phase", [58.9, 59.2, 59.5, 59.8])
@pytest.mark.parametrize("profile", sorted(PROFILES))
@looptime.enabled(strict=True)
async def test_a_client_started_in_a_minutes_last_second_syncs_at_once(
    phase: float, profile: str
) -> None:
    side = Neighbour(lambda window: 0, *PROFILES[profile], phase=phase, seed=1)
    async with side.exchange.client() as client:
        await client.server_time()  # public: no sync needed
        start = side.now()
        await client.pm_balances()  # signed: the sync first, a second read of /api
    assert side.now() - start < 4 * sum(PROFILES[profile])
