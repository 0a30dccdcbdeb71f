"""The SDK against issue 8's faults, judged by the exchange's own ledger (a small soak)."""

from __future__ import annotations

from decimal import Decimal

import anyio
import httpx

from binance_transfers import (
    BinanceTransfersError,
    Client,
    LoopClock,
    OutcomeUnknownError,
    TransferType,
)
from binance_transfers.sim import Fault, SimulatedExchange

from .conftest import EPOCH, fake_time

CALLERS = 10
EACH = 6


@fake_time
async def test_mixed_faults_and_cancelled_callers_never_move_money_twice() -> None:
    """60 transfers, 5 % of each fault, some callers cancelled on the wire: the ledger agrees.

    No transfer executes twice; no plain exception reaches a caller; a transfer
    confirmed to its caller executed exactly once, under the tranId it was
    given; one that executed without confirmation surfaced as
    OutcomeUnknownError, or its caller was cancelled.
    """
    exchange = SimulatedExchange(clock=LoopClock(epoch=EPOCH), seed=8, history_lag=1.0)
    account = exchange.add_demo_account()
    for fault in (
        Fault.server_error(status=503, code=-1003),
        Fault.server_error(),
        Fault.reset(),
        Fault.late(30.0),
        Fault.unavailable(),
        Fault.drop(),
        Fault.pending(5.0),
        Fault.failed(5.0),
    ):
        # Once for certain (the first requests, one fault each), then 5 % of the time.
        exchange.faults.add(fault, endpoint="universal_transfer", times=1)
        exchange.faults.add(fault, endpoint="universal_transfer", probability=0.05)
    exchange.faults.add(Fault.latency(0.2), endpoint="universal_transfer", probability=0.3)
    confirmed: dict[str, int] = {}
    unknown: set[str] = set()
    cancelled: set[str] = set()
    plain: list[BaseException] = []

    async def caller(n: int, client: Client) -> None:
        for i in range(EACH):
            amount = f"{n + 1}.{i + 1:02d}"
            try:
                with anyio.move_on_after(0.1) as scope:
                    # Every third call gives up after 0.1 s, mid-flight if the request
                    # travels; not the first ones, which meet each fault for certain.
                    scope.deadline = scope.deadline if i % 3 == 2 else float("inf")
                    result = await client.transfer(
                        type=TransferType.MAIN_UMFUTURE, asset="USDT", amount=amount
                    )
                    confirmed[amount] = result.tran_id
                if scope.cancelled_caught:
                    cancelled.add(amount)
            except OutcomeUnknownError:
                unknown.add(amount)
            except BinanceTransfersError:
                pass  # a definite refusal: nothing happened
            except Exception as exc:  # the test's point: none may arrive
                plain.append(exc)

    async with exchange.client(account, timeout=httpx.Timeout(10.0, read=10.0)) as client:
        async with anyio.create_task_group() as group:
            for n in range(CALLERS):
                group.start_soon(caller, n, client)
        await anyio.sleep(60)  # late answers and travelling requests land; holds settle

    ledger = exchange.ledger
    assert plain == []
    assert ledger.duplicates() == [] and ledger.resends() == []
    executions = ledger.executions("universal_transfer")
    executed = {e.params["amount"]: e for e in executions}
    assert len(executed) == len(executions)  # each amount at most once
    for amount, tran_id in confirmed.items():
        assert executed[amount].result == tran_id
    for amount in executed.keys() - confirmed.keys():
        assert amount in unknown | cancelled, amount
    # The faults really were exercised, and the books balance.
    faults = {e.fault for e in ledger.entries("universal_transfer")}
    assert {"server_error", "reset", "late", "unavailable", "drop"} <= faults
    assert {e.settlement for e in executions} == {"CONFIRMED", "FAILED"}
    assert cancelled and unknown
    moved = sum((Decimal(e.params["amount"]) for e in executions if e.moved), start=Decimal(0))
    assert account.balance("USDT", "UMFUTURE") == Decimal(100000) + moved
