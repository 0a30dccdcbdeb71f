"""apply at the library level on a fake clock: PENDING transfers are waited for, never resent."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from binance_transfers import LoopClock
from binance_transfers.cli._apply import apply
from binance_transfers.cli._plan import load_targets
from binance_transfers.sim import Fault, SimulatedExchange

from .conftest import EPOCH, fake_time

TARGETS = """
asset = "USDT"

[[target]]
wallet = "usdm"
at_least = "150000"

[[target]]
sub_account = "desk-1@sim.invalid"
wallet = "spot"
exactly = "12000"
"""


@fake_time
async def test_pending_transfers_are_waited_for_not_sent_again(tmp_path: Path) -> None:
    """Transfers that stay PENDING 30 s (debited, not yet credited): apply waits for them
    before checking the state, so the money is moved once."""
    exchange = SimulatedExchange(clock=LoopClock(epoch=EPOCH))
    demo = exchange.add_demo_account()
    exchange.faults.add(Fault.pending(30.0), endpoint="universal_transfer")
    exchange.faults.add(Fault.pending(30.0), endpoint="sub_account_transfer")
    async with exchange.client(demo, journal=tmp_path / "j.sqlite") as client:
        report = await apply(client, load_targets(TARGETS))
    assert not report.unsettled and not report.pending and not report.unmet
    assert exchange.ledger.times_executed("universal_transfer") == 1
    assert exchange.ledger.times_executed("sub_account_transfer") == 1
    assert demo.balance("USDT", "UMFUTURE") == Decimal(150000)
    assert demo.sub_accounts["desk-1@sim.invalid"].balance("USDT") == Decimal(12000)


@fake_time
async def test_a_rerun_waits_for_what_the_last_run_left_pending(tmp_path: Path) -> None:
    """Run 1 ends while its transfer is PENDING (patience 0); run 2 reads the journal,
    waits for it to settle, and sends nothing more."""
    exchange = SimulatedExchange(clock=LoopClock(epoch=EPOCH))
    demo = exchange.add_demo_account()
    exchange.faults.add(Fault.pending(30.0), endpoint="universal_transfer")
    state = load_targets('[[target]]\nasset = "USDT"\nwallet = "usdm"\nat_least = "150000"\n')
    journal = tmp_path / "j.sqlite"
    async with exchange.client(demo, journal=journal) as client:
        first = await apply(client, state, pending_timeout=0)
    assert first.pending and len(first.sent) == 1
    async with exchange.client(demo, journal=journal) as client:
        second = await apply(client, state)
    assert not second.pending and second.sent == []
    assert exchange.ledger.times_executed("universal_transfer") == 1
    assert demo.balance("USDT", "UMFUTURE") == Decimal(150000)


@fake_time
async def test_a_failed_transfer_is_planned_again(tmp_path: Path) -> None:
    """A transfer that ends FAILED moved nothing: the next plan sends it again, once."""
    exchange = SimulatedExchange(clock=LoopClock(epoch=EPOCH))
    demo = exchange.add_demo_account()
    exchange.faults.add(Fault.failed(10.0), endpoint="universal_transfer", times=1)
    state = load_targets('[[target]]\nasset = "USDT"\nwallet = "usdm"\nat_least = "150000"\n')
    async with exchange.client(demo, journal=tmp_path / "j.sqlite") as client:
        report = await apply(client, state)
    assert not report.pending and not report.unsettled
    assert exchange.ledger.times_executed("universal_transfer") == 2
    assert demo.balance("USDT", "UMFUTURE") == Decimal(150000)
