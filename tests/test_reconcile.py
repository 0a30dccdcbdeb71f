"""Settling unknown outcomes from Binance's records (issue 8), against the simulated exchange.

Every test runs on looptime's fake clock: waiting out Binance's recvWindow
and the settling margin takes no real time.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import pickle
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import looptime
import pytest

from binance_transfers import (
    BinanceAPIError,
    Client,
    ConnectionFailedError,
    InvalidInputError,
    LoopClock,
    MalformedResponseError,
    MarginTransferDirection,
    NotExecutedError,
    OutcomeUnknownError,
    SettleBy,
    Settlement,
    SubAccountTransferResult,
    TransferResult,
    TransferType,
)
from binance_transfers._transport import ExchangeOutcome
from binance_transfers.sim import Fault, SimulatedExchange

from .conftest import API_KEY, SECRET, FakeBinance, demo_exchange, ok

fake_time = looptime.enabled(strict=True)

EPOCH_MS = 1_767_225_600_000
MARGIN = 2.0
DESK = "desk-1@sim.invalid"


@pytest.fixture
async def client(exchange: SimulatedExchange) -> AsyncIterator[Client]:
    async with exchange.client(settle_margin=MARGIN) as c:
        yield c


def executed_ids(exchange: SimulatedExchange, endpoint: str) -> list[Any]:
    return [entry.result for entry in exchange.ledger.executed(endpoint)]


async def unknown_transfer(client: Client, amount: str = "7") -> OutcomeUnknownError:
    with pytest.raises(OutcomeUnknownError) as caught:
        await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount=amount)
    return caught.value


async def unknown_after(
    fault: Fault, exchange: SimulatedExchange, client: Client, amount: str = "7"
) -> OutcomeUnknownError:
    """A universal transfer that meets ``fault`` once (a drop: executed, its answer lost)."""
    exchange.faults.add(fault, endpoint="universal_transfer", times=1)
    return await unknown_transfer(client, amount)


def lagging(history_lag: float) -> SimulatedExchange:
    """An exchange whose history shows a transfer ``history_lag`` seconds after it ran."""
    return demo_exchange(history_lag=history_lag)


@fake_time
async def test_an_executed_transfer_is_found_with_its_tran_id(
    exchange: SimulatedExchange, client: Client
) -> None:
    """Executed, then the connection dropped: settled as executed, with Binance's tranId."""
    unknown = await unknown_after(Fault.drop(), exchange, client)
    settled = await client.reconcile(unknown)
    assert settled.executed is True and settled.settled
    assert settled.by is SettleBy.HISTORY
    assert [settled.tran_id] == executed_ids(exchange, "universal_transfer")
    assert settled.status == "CONFIRMED" and not settled.pending


@fake_time
async def test_a_refused_transfer_is_settled_as_not_executed(
    exchange: SimulatedExchange, client: Client
) -> None:
    """503 without executing: once Binance's window has closed, absence is definitive."""
    unknown = await unknown_after(Fault.unavailable(), exchange, client)
    settled = await client.reconcile(unknown)
    assert settled.executed is False and settled.settled and settled.tran_id is None
    assert executed_ids(exchange, "universal_transfer") == []


@fake_time
async def test_the_history_is_read_only_once_binance_can_no_longer_execute(
    exchange: SimulatedExchange, client: Client
) -> None:
    """No history request before timestamp + recvWindow + margin on Binance's clock."""
    unknown = await unknown_after(Fault.unavailable(), exchange, client)
    assert unknown.timestamp is not None and unknown.recv_window == 5000
    await client.reconcile(unknown)
    (lookup, *_) = exchange.ledger.entries("transfer_history")
    assert lookup.arrived * 1000 >= unknown.timestamp + 5000 + MARGIN * 1000


@fake_time
async def test_identical_transfers_are_never_taken_for_one_another(
    exchange: SimulatedExchange, client: Client
) -> None:
    """Three identical confirmed transfers, then one refused: it is not settled as executed."""
    for _ in range(3):
        await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="7")
    unknown = await unknown_after(Fault.unavailable(), exchange, client)
    settled = await client.reconcile(unknown)
    assert settled.executed is False


@fake_time
async def test_of_two_identical_unknowns_each_row_is_claimed_once(
    exchange: SimulatedExchange, client: Client
) -> None:
    """One executed and one refused identical transfer: exactly one settles as executed."""
    await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="7")
    first = await unknown_after(Fault.drop(), exchange, client)
    second = await unknown_after(Fault.unavailable(), exchange, client)
    settled = [await client.reconcile(first), await client.reconcile(second)]
    assert sorted(bool(s.executed) for s in settled) == [False, True]
    assert {s.tran_id for s in settled if s.executed} == set(
        executed_ids(exchange, "universal_transfer")[1:]
    )
    # Settling the same error again gives the same answer (its own row), claiming nothing
    # more; it used to say "not executed" (its row was claimed), authorising a resend.
    again = await client.reconcile(first)
    assert (again.executed, again.tran_id) == (settled[0].executed, settled[0].tran_id)
    assert (await client.reconcile(second)).executed is False


@pytest.mark.parametrize(
    ("settles", "executed", "status"),
    [
        (Fault.pending(3600.0), True, "PENDING"),
        (Fault.failed(0.0), False, "FAILED"),
        (Fault.pending(1.0), True, "CONFIRMED"),
    ],
    ids=["still-pending", "failed", "pending-then-confirmed"],
)
@fake_time
async def test_pending_rows_are_executed_and_failed_rows_are_not(
    exchange: SimulatedExchange,
    client: Client,
    settles: Fault,
    executed: bool,
    status: str,
) -> None:
    """PENDING: executed, still pending (said so). FAILED: not executed (it moved nothing)."""
    exchange.faults.add(settles, endpoint="universal_transfer", times=1)
    unknown = await unknown_after(Fault.drop(), exchange, client, amount="3")
    settled = await client.reconcile(unknown)
    assert (settled.executed, settled.pending, settled.status) == (
        executed,
        status == "PENDING",
        status,
    )
    assert [settled.tran_id] == executed_ids(exchange, "universal_transfer")


@fake_time
async def test_the_margin_covers_binances_history_lag() -> None:
    """A row showing 8 s after execution (past the 5 s recvWindow) needs, and gets, the margin."""
    exchange = lagging(8.0)
    exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    async with exchange.client(settle_margin=5.0) as client:
        unknown = await unknown_transfer(client)
        settled = await client.reconcile(unknown)
    assert settled.executed is True


@fake_time
async def test_sub_account_transfers_are_settled_by_client_tran_id(
    exchange: SimulatedExchange, client: Client
) -> None:
    """Dropped after executing: found by its clientTranId; refused: not executed."""
    for fault, executed in ((Fault.drop(), True), (Fault.unavailable(), False)):
        exchange.faults.add(fault, endpoint="sub_account_transfer", times=1)
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.sub_account_transfer(
                to_email=DESK,
                from_account_type="SPOT",
                to_account_type="SPOT",
                asset="USDT",
                amount="5",
            )
        settled = await client.reconcile(caught.value)
        assert settled.by is SettleBy.CLIENT_TRAN_ID
        assert settled.executed is executed
    assert len(executed_ids(exchange, "sub_account_transfer")) == 1


@fake_time
async def test_endpoints_without_history_say_why_at_once(
    exchange: SimulatedExchange, client: Client
) -> None:
    """Sub-account margin transfer: unsettled, by balances, without waiting or any request."""
    exchange.faults.add(Fault.drop(), endpoint="sub_account_margin_transfer", times=1)
    with pytest.raises(OutcomeUnknownError) as caught:
        await client.sub_account_margin_transfer(
            email=DESK,
            asset="USDT",
            amount="1",
            direction=MarginTransferDirection.SPOT_TO_MARGIN,
        )
    before = len(exchange.ledger)
    settled = await client.reconcile(caught.value)
    assert settled.executed is None and not settled.settled
    assert settled.by is SettleBy.BALANCES and "history" in settled.reason
    assert len(exchange.ledger) == before


@fake_time
async def test_history_older_than_six_months_cannot_settle(client: Client) -> None:
    """Binance keeps 6 months of history: an older unknown is unsettled, with the reason."""
    old = OutcomeUnknownError(
        "test",
        endpoint="universal_transfer",
        params={"type": "MAIN_UMFUTURE", "asset": "USDT", "amount": "1"},
        timestamp=EPOCH_MS - 200 * 24 * 3600 * 1000,
        recv_window=5000,
    )
    await client.server_time()
    settled = await client.reconcile(old)
    assert settled.executed is None and "6 months" in settled.reason


@fake_time
async def test_on_unknown_reconcile_returns_the_result_or_a_definite_error(
    exchange: SimulatedExchange, client: Client
) -> None:
    """The call itself waits until settled: the result if it ran, NotExecutedError if not."""
    exchange.faults.add(Fault.server_error(status=502), endpoint="universal_transfer", times=1)
    done = await client.transfer(
        type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="9", on_unknown="reconcile"
    )
    assert done == TransferResult(tran_id=executed_ids(exchange, "universal_transfer")[0])
    exchange.faults.add(Fault.unavailable(), endpoint="universal_transfer", times=1)
    with pytest.raises(NotExecutedError) as caught:
        await client.transfer(
            type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="9", on_unknown="reconcile"
        )
    assert isinstance(caught.value.settlement, Settlement)
    assert isinstance(caught.value.unknown, OutcomeUnknownError)
    assert len(exchange.ledger.entries("universal_transfer")) == 2  # never resent


@fake_time
async def test_on_unknown_retry_resends_a_sub_account_transfer_only_once_settled(
    exchange: SimulatedExchange,
) -> None:
    """Refused with 503: settled as not executed, then sent again with the same clientTranId."""
    exchange.faults.add(Fault.unavailable(), endpoint="sub_account_transfer", times=1)
    async with exchange.client(settle_margin=MARGIN, on_unknown="retry") as client:
        done = await client.sub_account_transfer(
            to_email=DESK,
            from_account_type="SPOT",
            to_account_type="SPOT",
            asset="USDT",
            amount="5",
        )
    sent = exchange.ledger.entries("sub_account_transfer")
    assert len(sent) == 2 and len(exchange.ledger.executed("sub_account_transfer")) == 1
    assert isinstance(done, SubAccountTransferResult)
    assert done.tran_id == executed_ids(exchange, "sub_account_transfer")[0]
    assert done.client_tran_id is not None and done.client_tran_id.startswith("bt-")


@fake_time
async def test_on_unknown_reconcile_raises_unknown_where_binance_cannot_tell(
    exchange: SimulatedExchange,
) -> None:
    """No history, no guess: the OutcomeUnknownError reaches the caller."""
    exchange.faults.add(Fault.drop(), endpoint="pm_auto_collect", times=1)
    async with exchange.client(on_unknown="reconcile") as client:
        with pytest.raises(OutcomeUnknownError):
            await client.pm_auto_collect()


@fake_time
async def test_reconcile_takes_only_unknown_outcomes(client: Client) -> None:
    """Anything else is bad input, said plainly (InvalidInputError, like every argument)."""
    with pytest.raises(InvalidInputError, match="OutcomeUnknownError"):
        await client.reconcile(ValueError("x"))  # type: ignore[arg-type]


@fake_time
async def test_absence_is_only_believed_after_a_second_look(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A row that lags past one margin but not two: executed, and the lag is logged."""
    # Executed at ~t; recvWindow 5 s, margin 2 s: first look at t+7 s, second at t+9 s.
    exchange = lagging(8.0)
    exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    async with exchange.client(settle_margin=MARGIN) as client:
        unknown = await unknown_transfer(client)
        with caplog.at_level(logging.WARNING, logger="binance_transfers.reconcile"):
            settled = await client.reconcile(unknown)
    assert settled.executed is True
    assert [settled.tran_id] == executed_ids(exchange, "universal_transfer")
    assert any("settle_margin" in r.getMessage() for r in caplog.records)


@fake_time
async def test_not_executed_needs_two_empty_searches_a_margin_apart(
    exchange: SimulatedExchange, client: Client
) -> None:
    """The "not executed" verdict comes from a search two margins past Binance's window."""
    unknown = await unknown_after(Fault.unavailable(), exchange, client)
    assert unknown.timestamp is not None
    settled = await client.reconcile(unknown)
    assert settled.executed is False and "searched 2 times" in settled.reason
    first, second = exchange.ledger.entries("transfer_history")
    assert first.arrived * 1000 >= unknown.timestamp + 5000 + MARGIN * 1000
    assert second.arrived * 1000 >= unknown.timestamp + 5000 + 2 * MARGIN * 1000


@fake_time
async def test_the_default_margin_outlasts_a_30_second_history_lag() -> None:
    """on_unknown="reconcile", default settle_margin, rows 30 s late: never NotExecutedError."""
    exchange = lagging(30.0)
    exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    async with exchange.client(on_unknown="reconcile") as client:
        done = await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="4")
    assert [done.tran_id] == executed_ids(exchange, "universal_transfer")


async def _retried_sub_transfer(client: Client) -> SubAccountTransferResult:
    return await client.sub_account_transfer(
        to_email=DESK,
        from_account_type="SPOT",
        to_account_type="SPOT",
        asset="USDT",
        amount="3",
    )


@fake_time
async def test_retry_takes_a_duplicate_client_tran_id_as_proof_of_execution() -> None:
    """A resend refused as a duplicate (-4115): the first attempt ran; its result, never -4115."""
    # Lag 10 s > both looks (t+7, t+9 with margin 2 s): "not executed", resent, -4115.
    exchange = lagging(10.0)
    exchange.faults.add(Fault.drop(), endpoint="sub_account_transfer", times=1)
    async with exchange.client(settle_margin=MARGIN, on_unknown="retry") as client:
        done = await _retried_sub_transfer(client)
    assert len(exchange.ledger.entries("sub_account_transfer")) == 2  # resent once
    assert [done.tran_id] == executed_ids(exchange, "sub_account_transfer")


@fake_time
async def test_retry_raises_the_original_unknown_when_a_duplicate_is_not_found(
    tmp_path: Path,
) -> None:
    """-4115 but no record in sight: the first OutcomeUnknownError, its row open again."""
    exchange = lagging(3600.0)
    exchange.faults.add(Fault.drop(), endpoint="sub_account_transfer", times=1)
    path = tmp_path / "j.sqlite"
    async with exchange.client(settle_margin=MARGIN, on_unknown="retry", journal=path) as client:
        with pytest.raises(OutcomeUnknownError) as caught:
            await _retried_sub_transfer(client)
        rows = await client.journal.rows() if client.journal else []
    assert isinstance(caught.value.__cause__, BinanceAPIError)
    assert caught.value.__cause__.code == -4115
    assert exchange.ledger.times_executed("sub_account_transfer", amount="3") == 1
    assert [row.state for row in rows] == ["unknown", "refused"]
    assert rows[0].id == getattr(caught.value, "journal_id", None)


@fake_time
async def test_retry_with_the_default_margin_survives_a_30_second_lag() -> None:
    """on_unknown="retry", default margin, rows 30 s late: the result, executed once."""
    exchange = lagging(30.0)
    exchange.faults.add(Fault.drop(), endpoint="sub_account_transfer", times=1)
    async with exchange.client(on_unknown="retry") as client:
        done = await _retried_sub_transfer(client)
    assert [done.tran_id] == executed_ids(exchange, "sub_account_transfer")


@fake_time
async def test_a_reads_unreadable_answer_is_malformed_not_unknown() -> None:
    """A history page that does not fit the model: MalformedResponseError, never unknown."""
    fake = FakeBinance()
    fake.script("GET", "/sapi/v1/asset/transfer", ok({"total": "many", "rows": [{"x": 1}]}))
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake)) as client:
        with pytest.raises(MalformedResponseError):
            [r async for r in client.transfer_history(type=TransferType.MAIN_UMFUTURE)]
        await client.server_time()


@fake_time
async def test_settling_the_same_unknown_twice_gives_the_same_answer(
    exchange: SimulatedExchange, client: Client
) -> None:
    """A second reconcile of one error finds its own claimed row, not a false "not executed"."""
    unknown = await unknown_after(Fault.drop(), exchange, client)
    first = await client.reconcile(unknown)
    again = await client.reconcile(unknown)
    assert first.executed is again.executed is True
    assert again.tran_id == first.tran_id
    assert [first.tran_id] == executed_ids(exchange, "universal_transfer")


@pytest.mark.parametrize("lag", [0.0, 10.0], ids=["at-once", "after-both-looks"])
@fake_time
async def test_retry_never_resends_a_transfer_whose_record_says_failed(lag: float) -> None:
    """FAILED, answer lost: NotExecutedError with the record; not the -4115 nor "unknown"."""
    exchange = lagging(lag)
    exchange.faults.add(Fault.failed(0.0), endpoint="sub_account_transfer", times=1)
    exchange.faults.add(Fault.drop(), endpoint="sub_account_transfer", times=1)
    async with exchange.client(settle_margin=MARGIN, on_unknown="retry") as client:
        with pytest.raises(NotExecutedError) as caught:
            await _retried_sub_transfer(client)
    settlement = caught.value.settlement
    assert isinstance(settlement, Settlement) and settlement.status == "FAILURE"
    # Seen at once: not resent (Binance would refuse its clientTranId); seen late: resent once.
    assert len(exchange.ledger.entries("sub_account_transfer")) == (1 if lag == 0 else 2)
    assert len(executed_ids(exchange, "sub_account_transfer")) == 1  # the FAILED one only


@fake_time
async def test_a_failing_settlement_read_leaves_the_outcome_unknown() -> None:
    """on_unknown="reconcile", history reads all dropped: OutcomeUnknownError, never the
    read's ConnectionFailedError ("nothing sent, safe to resend") for an executed transfer."""
    exchange = demo_exchange()
    exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    exchange.faults.add(Fault.drop(executes=False), endpoint="transfer_history")
    async with exchange.client(on_unknown="reconcile", settle_margin=MARGIN) as client:
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="9")
    assert isinstance(caught.value.__cause__, ConnectionFailedError)
    assert any("settling it failed" in note for note in caught.value.__notes__)
    assert exchange.ledger.times_executed("universal_transfer", amount="9") == 1


@fake_time
async def test_two_concurrent_settlements_of_one_unknown_agree(
    exchange: SimulatedExchange, client: Client
) -> None:
    """reconcile(e) twice at once (a failure handler and a periodic job): both "executed"."""
    unknown = await unknown_after(Fault.drop(), exchange, client)
    async with anyio.create_task_group() as tg:
        settled: list[Settlement] = []

        async def settle() -> None:
            settled.append(await client.reconcile(unknown))

        tg.start_soon(settle)
        tg.start_soon(settle)
    assert [(s.executed, s.tran_id) for s in settled] == [
        (True, executed_ids(exchange, "universal_transfer")[0])
    ] * 2


@looptime.enabled(strict=True)
async def test_settling_from_on_detached_does_not_deadlock() -> None:
    """on_detached=lambda o: client.reconcile(o.error) settles without waiting for the call
    it runs in (which would be a shielded deadlock)."""
    exchange = demo_exchange(clock=LoopClock(epoch=1_767_225_600.0))
    exchange.faults.add(Fault.latency(1.0), endpoint="universal_transfer")
    exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    settled: list[Any] = []
    client = exchange.client()

    async def settle(outcome: ExchangeOutcome) -> None:
        if isinstance(outcome.error, OutcomeUnknownError):
            settled.append(await client.reconcile(outcome.error))

    client.on_detached = settle
    task = asyncio.ensure_future(
        client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="5")
    )
    await asyncio.sleep(0.5)  # on the wire (1 s to arrive), then its answer is dropped
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=600)
    closing = asyncio.ensure_future(client.aclose())
    await asyncio.wait([closing], timeout=600)
    assert done, "the cancelled call never finished: settling from on_detached deadlocked"
    assert closing.done(), "aclose() deadlocked on the call that settles from on_detached"
    assert [s.executed for s in settled] == [True]


def _copy(error: OutcomeUnknownError, how: str) -> OutcomeUnknownError:
    if how == "pickle":
        again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    else:
        again = copy.deepcopy(error)
    assert isinstance(again, OutcomeUnknownError) and again is not error
    return again


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
@fake_time
async def test_a_copy_of_an_unknown_settles_like_the_original(
    exchange: SimulatedExchange, client: Client, how: str
) -> None:
    """The original settled, then a copy (from a worker process, an error tracker): the
    copy finds the same record, not a false "not executed" (its row is claimed)."""
    unknown = await unknown_after(Fault.drop(), exchange, client)
    first = await client.reconcile(unknown)
    again = await client.reconcile(_copy(unknown, how))
    assert (first.executed, first.tran_id) == (again.executed, again.tran_id)
    assert [again.tran_id] == executed_ids(exchange, "universal_transfer")


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
@fake_time
async def test_an_unknown_and_its_copy_settled_at_once_agree(
    exchange: SimulatedExchange, client: Client, how: str
) -> None:
    """A failure handler holds the error, a job queue a pickled copy: settled at once."""
    unknown = await unknown_after(Fault.drop(), exchange, client)
    settled: list[Settlement] = []

    async def settle(error: OutcomeUnknownError) -> None:
        settled.append(await client.reconcile(error))

    async with anyio.create_task_group() as tg:
        tg.start_soon(settle, unknown)
        tg.start_soon(settle, _copy(unknown, how))
    assert [(s.executed, s.tran_id) for s in settled] == [
        (True, executed_ids(exchange, "universal_transfer")[0])
    ] * 2
    histories = exchange.ledger.entries("transfer_history")
    assert len(histories) == 1  # one settlement, whose verdict the other shares


@fake_time
async def test_an_unknown_rebuilt_from_its_fields_is_never_called_not_executed(
    exchange: SimulatedExchange, client: Client
) -> None:
    """Rebuilt from stored fields (no request_id), after the original was settled: the
    matching record is claimed by an identical request. "Not executed" would authorise
    a second transfer: the answer is "cannot tell", with the reason."""
    unknown = await unknown_after(Fault.drop(), exchange, client)
    first = await client.reconcile(unknown)
    rebuilt = OutcomeUnknownError(
        unknown.reason,
        endpoint=unknown.endpoint,
        params=unknown.params,
        timestamp=unknown.timestamp,
        recv_window=unknown.recv_window,
    )
    again = await client.reconcile(rebuilt)
    assert first.executed is True
    assert again.executed is None and "identical request" in again.reason


@fake_time
async def test_a_copy_settled_by_another_client_never_touches_its_journal(
    exchange: SimulatedExchange, tmp_path: Path
) -> None:
    """An error from a process with journal A, settled by a client with journal B: row
    ``journal_id`` of B is somebody else's request and stays as it was."""
    async with exchange.client(journal=tmp_path / "a.sqlite", settle_margin=MARGIN) as one:
        unknown = await unknown_after(Fault.drop(), exchange, one)
    assert unknown.journal_id == 1 and unknown.journal_path == str(tmp_path / "a.sqlite")
    async with exchange.client(journal=tmp_path / "b.sqlite", settle_margin=MARGIN) as other:
        await other.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="3")
        settled = await other.reconcile(_copy(unknown, "pickle"))
        rows = await other.journal.rows()  # type: ignore[union-attr]
    assert settled.executed is True and settled.journal_id is None
    assert [(row.id, row.state, str(row.params["amount"])) for row in rows] == [(1, "done", "3")]


@fake_time
async def test_after_a_restart_a_copy_gets_the_journals_verdict(
    exchange: SimulatedExchange, tmp_path: Path
) -> None:
    """Settled as executed in one run; a pickled copy settled in the next run (same
    journal file) gets that verdict from the journal, not "not executed" (the record
    is claimed in the journal) and without reading the history again."""
    path = tmp_path / "j.sqlite"
    async with exchange.client(journal=path, settle_margin=MARGIN) as one:
        unknown = await unknown_after(Fault.drop(), exchange, one)
        first = await one.reconcile(unknown)
    reads = len(exchange.ledger.entries("transfer_history"))
    async with exchange.client(journal=path, settle_margin=MARGIN) as two:
        await two.recover()
        again = await two.reconcile(_copy(unknown, "pickle"))
    assert first.executed is again.executed is True
    assert again.tran_id == first.tran_id and again.journal_id == first.journal_id
    assert len(exchange.ledger.entries("transfer_history")) == reads


@fake_time
async def test_confirmed_ids_are_forgotten_once_no_settlement_can_need_them(
    exchange: SimulatedExchange, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every confirmed tranId was kept forever (~100 B per transfer, never returned)."""
    monkeypatch.setattr("binance_transfers._reconcile._PRUNE_EVERY", 16)
    for _ in range(200):
        await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
        await anyio.sleep(1)
    # What a settlement starting now can still search: about the last minute and a margin.
    assert len(client._reconciler.claimed) < 100


@fake_time
async def test_an_open_unknown_keeps_the_ids_its_settlement_must_exclude(
    exchange: SimulatedExchange, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty identical transfers confirmed in the same millisecond as an unknown one,
    then a long run of others: settled minutes later, the unknown still finds its own
    row, not one of the twenty (pruning them would make them look free)."""
    monkeypatch.setattr("binance_transfers._reconcile._PRUNE_EVERY", 16)
    for _ in range(20):
        await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="7")
    unknown = await unknown_after(Fault.drop(), exchange, client)
    for _ in range(100):
        await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
        await anyio.sleep(1)
    assert list(client._reconciler._open) == [unknown.request_id]
    settled = await client.reconcile(unknown)
    assert settled.executed is True
    assert settled.tran_id == executed_ids(exchange, "universal_transfer")[20]
    assert client._reconciler._open == {}  # settled: it pins nothing any more


@fake_time
async def test_an_unknown_rebuilt_as_typed_finds_the_transfer_as_sent(
    exchange: SimulatedExchange, client: Client
) -> None:
    """Rebuilt from what the user typed (asset "usdt", type in lower case): the client
    sent USDT / MAIN_UMFUTURE, which is what Binance's history shows; compared as typed,
    the executed transfer was declared "not executed" (B-6)."""
    unknown = await unknown_after(Fault.drop(), exchange, client)
    typed = {**unknown.params, "asset": "usdt", "type": "main_umfuture"}
    rebuilt = OutcomeUnknownError(
        "from the log",
        endpoint=unknown.endpoint,
        params=typed,
        timestamp=unknown.timestamp,
        recv_window=unknown.recv_window,
    )
    settled = await client.reconcile(rebuilt)
    assert settled.executed is True
    assert [settled.tran_id] == executed_ids(exchange, "universal_transfer")
