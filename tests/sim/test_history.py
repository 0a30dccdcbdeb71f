"""Histories as Binance keeps them: rows that appear late, settle later or fail, and age out."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
import pytest

from binance_transfers import LoopClock
from binance_transfers.sim import (
    HISTORY_RETENTION,
    Account,
    Fault,
    FaultKind,
    SimulatedExchange,
    Wallet,
    report,
    totals,
)

from .conftest import EPOCH, SUB_EMAIL, Wire, body, fake_time

DAY = 24 * 3600.0
TRANSFER = [("type", "MAIN_UMFUTURE"), ("asset", "USDT"), ("amount", "7")]
HISTORY = [("type", "MAIN_UMFUTURE")]
SUB = [
    ("toEmail", SUB_EMAIL),
    ("fromAccountType", "SPOT"),
    ("toAccountType", "SPOT"),
    ("asset", "USDT"),
    ("amount", "5"),
    ("clientTranId", "sub-1"),
]
SUB_HISTORY = [("clientTranId", "sub-1")]


async def rows(wire: Wire) -> list[dict[str, Any]]:
    answer = body(await wire.call("transfer_history", HISTORY))
    found: list[dict[str, Any]] = answer.get("rows", [])
    assert answer["total"] == len(found)
    return found


async def sub_rows(wire: Wire) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = body(
        await wire.call("sub_account_transfer_history", SUB_HISTORY)
    )["result"]
    return found


@fake_time
async def test_a_row_appears_only_after_the_history_lag(wire: Wire, master: Account) -> None:
    """history_lag=2: the money moves at once, the row shows 2 s later (both histories)."""
    wire.exchange.history_lag = 2.0
    tran_id = body(await wire.call("universal_transfer", TRANSFER))["tranId"]
    await wire.call("sub_account_transfer", SUB)
    assert master.balance("USDT", Wallet.UMFUTURE) == Decimal(507)
    assert master.sub_accounts[SUB_EMAIL].balance("USDT") == Decimal(205)
    assert await rows(wire) == []
    assert await sub_rows(wire) == []
    await anyio.sleep(1.999)
    assert await rows(wire) == []
    await anyio.sleep(0.001)
    [row] = await rows(wire)
    assert (row["tranId"], row["status"]) == (tran_id, "CONFIRMED")
    [sub] = await sub_rows(wire)
    assert sub["status"] == "SUCCESS"
    # The row keeps the execution time, not the time it appeared.
    assert row["timestamp"] == wire.exchange.ledger.executions("universal_transfer")[0].executed_ms


@fake_time
async def test_pending_transfer_holds_the_money_until_it_is_confirmed(
    wire: Wire, master: Account
) -> None:
    """Fault.pending(30): PENDING for 30 s, source debited at once, target credited at 30 s."""
    wire.exchange.faults.add(Fault.pending(30.0), endpoint="universal_transfer", times=1)
    answer = await wire.call("universal_transfer", TRANSFER)
    assert answer.status_code == 200
    [row] = await rows(wire)
    assert row["status"] == "PENDING"
    assert master.balance("USDT") == Decimal(993)
    assert master.balance("USDT", Wallet.UMFUTURE) == Decimal(500)
    assert wire.exchange.bank.in_flight() == {"USDT": Decimal(7)}
    [entry] = wire.exchange.ledger.executions("universal_transfer")
    assert (entry.executed, entry.settlement, entry.moved) == (True, "CONFIRMED", True)
    assert entry.settles_at == pytest.approx(entry.arrived + 30)
    await anyio.sleep(30)
    [row] = await rows(wire)
    assert row["status"] == "CONFIRMED"
    assert master.balance("USDT", Wallet.UMFUTURE) == Decimal(507)
    assert wire.exchange.bank.in_flight() == {}


@fake_time
async def test_failed_transfer_moves_nothing(wire: Wire, master: Account) -> None:
    """Fault.failed(10): a tranId, PENDING with the amount held, then FAILED and given back."""
    wire.exchange.faults.add(Fault.failed(10.0), endpoint="universal_transfer", times=1)
    tran_id = body(await wire.call("universal_transfer", TRANSFER))["tranId"]
    assert master.balance("USDT") == Decimal(993)
    assert [r["status"] for r in await rows(wire)] == ["PENDING"]
    await anyio.sleep(10)
    [row] = await rows(wire)
    assert (row["tranId"], row["status"]) == (tran_id, "FAILED")
    assert master.balance("USDT") == Decimal(1000)
    assert master.balance("USDT", Wallet.UMFUTURE) == Decimal(500)
    [entry] = wire.exchange.ledger.executions("universal_transfer")
    assert (entry.executed, entry.settlement, entry.moved) == (True, "FAILED", False)


async def test_failed_at_once_still_needs_the_balance(wire: Wire, master: Account) -> None:
    """Fault.failed(): FAILED from the start, nothing moved; an overdraft is -5013 all the same."""
    wire.exchange.faults.add(Fault.failed(), endpoint="universal_transfer")
    assert body(await wire.call("universal_transfer", TRANSFER))["tranId"]
    assert [r["status"] for r in await rows(wire)] == ["FAILED"]
    assert master.balance("USDT") == Decimal(1000)
    too_much = [("type", "MAIN_UMFUTURE"), ("asset", "USDT"), ("amount", "1000.5")]
    assert body(await wire.call("universal_transfer", too_much))["code"] == -5013


@fake_time
async def test_sub_account_transfer_settles_process_then_success_or_failure(
    wire: Wire, master: Account
) -> None:
    """Sub-account rows say PROCESS, then SUCCESS; a failed one FAILURE, its money given back."""
    sub = master.sub_accounts[SUB_EMAIL]
    wire.exchange.faults.add(Fault.pending(5.0), endpoint="sub_account_transfer", times=1)
    wire.exchange.faults.add(Fault.failed(5.0), endpoint="sub_account_transfer", times=1)
    await wire.call("sub_account_transfer", SUB)
    failing = [*SUB[:-1], ("clientTranId", "sub-2")]
    await wire.call("sub_account_transfer", failing)
    listed = body(await wire.call("sub_account_transfer_history"))["result"]
    assert [r["status"] for r in listed] == ["PROCESS", "PROCESS"]
    assert (master.balance("USDT"), sub.balance("USDT")) == (Decimal(990), Decimal(200))
    await anyio.sleep(5)
    listed = body(await wire.call("sub_account_transfer_history"))["result"]
    assert [(r["clientTranId"], r["status"]) for r in listed] == [
        ("sub-2", "FAILURE"),
        ("sub-1", "SUCCESS"),
    ]
    assert (master.balance("USDT"), sub.balance("USDT")) == (Decimal(995), Decimal(205))
    # A failed transfer used its clientTranId up: the id names that transfer.
    assert body(await wire.call("sub_account_transfer", failing))["code"] == -4115


@fake_time
async def test_history_reaches_back_six_months_only(wire: Wire) -> None:
    """Rows older than 180 days are never listed, whatever startTime asks; newer ones are."""
    assert HISTORY_RETENTION == 180 * DAY
    start = wire.exchange.server_ms()
    await wire.call("universal_transfer", TRANSFER)
    await wire.call("sub_account_transfer", SUB)
    await anyio.sleep(100 * DAY)
    await wire.call(
        "universal_transfer", [("type", "MAIN_UMFUTURE"), ("asset", "USDT"), ("amount", "8")]
    )
    since = [*HISTORY, ("startTime", str(start))]
    assert [r["amount"] for r in body(await wire.call("transfer_history", since))["rows"]] == [
        "8",
        "7",
    ]
    await anyio.sleep(80 * DAY + 1)
    answer = body(await wire.call("transfer_history", since))
    assert [r["amount"] for r in answer["rows"]] == ["8"]
    assert answer["total"] == 1
    window = [("clientTranId", "sub-1"), ("startTime", str(start)), ("endTime", str(start + 1000))]
    assert body(await wire.call("sub_account_transfer_history", window))["result"] == []
    wire.exchange.history_retention = None  # forever
    assert len(body(await wire.call("transfer_history", since))["rows"]) == 2


def test_history_knobs_are_checked() -> None:
    """A negative lag or a non-positive retention is refused at construction."""
    with pytest.raises(ValueError, match="history_lag"):
        SimulatedExchange(history_lag=-1)
    with pytest.raises(ValueError, match="history_retention"):
        SimulatedExchange(history_retention=0)


@fake_time
async def test_report_counts_money_in_flight() -> None:
    """A pending transfer's amount is in no wallet, yet the books still balance."""
    exchange = SimulatedExchange(clock=LoopClock(epoch=EPOCH))
    account = exchange.add_account(balances={"MAIN": {"USDT": "10"}})
    exchange.faults.add(Fault.pending(60.0))
    started = totals(exchange)
    async with exchange.client(account) as client:
        await client.transfer_to_futures(asset="USDT", amount="4")
    assert account.balances() == {"MAIN": {"USDT": Decimal(6)}}
    assert report(exchange, started).conserved


def test_settlement_faults_combine_with_answer_faults() -> None:
    """One request can settle late *and* be answered 503: the two phases are drawn apart."""
    exchange = SimulatedExchange()
    exchange.faults.add(Fault.failed(3.0))
    exchange.faults.add(Fault.pending(9.0))  # a second settlement rule never also applies
    exchange.faults.add(Fault.server_error(status=503))
    decision = exchange.faults.decide("universal_transfer")
    assert decision.settlement is not None and decision.settlement.kind is FaultKind.FAILED
    assert decision.settle_after == 3.0
    assert decision.fault is not None and decision.fault.kind is FaultKind.SERVER_ERROR
    with pytest.raises(ValueError, match="negative"):
        Fault.pending(-1.0)
