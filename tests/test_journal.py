"""The intent journal (issue 8): written before the first byte, settled after a crash."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import signal
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import looptime
import pytest

from binance_transfers import (
    BnbTransferSide,
    Client,
    ClientClosedError,
    ConfigurationError,
    Governor,
    InsufficientBalanceError,
    InvalidInputError,
    Journal,
    MarginTransferDirection,
    MarginTransferResult,
    OutcomeUnknownError,
    TransferType,
    _journal,
)
from binance_transfers._transport import ExchangeOutcome
from binance_transfers.sim import (
    DEMO_API_KEY,
    DEMO_API_SECRET,
    Fault,
    LedgerEntry,
    SimulatedExchange,
    serve,
)

from .conftest import API_KEY, SECRET, FakeBinance, demo_exchange, error, ok

fake_time = looptime.enabled(strict=True)


def rows(path: Path) -> list[dict[str, Any]]:
    """The journal as another process would read it (a separate connection)."""
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute("SELECT * FROM intents ORDER BY id")]


@pytest.fixture
async def client(exchange: SimulatedExchange, tmp_path: Path) -> AsyncIterator[Client]:
    async with exchange.client(journal=tmp_path / "j.sqlite", settle_margin=1.0) as c:
        yield c


async def test_the_intent_is_on_disk_before_the_first_byte(tmp_path: Path) -> None:
    """When the request reaches the wire, its row is already committed (seen from outside)."""
    path = tmp_path / "j.sqlite"
    seen: list[list[dict[str, Any]]] = []
    fake = FakeBinance()

    def transfer(request: httpx.Request) -> httpx.Response:
        seen.append(rows(path))
        return ok({"tranId": 42})

    fake.script("POST", "/sapi/v1/asset/transfer", transfer)
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake), journal=path) as client:
        await client.transfer(type=TransferType.MAIN_MARGIN, asset="USDT", amount="12.5")
    ((row,),) = seen
    assert (row["endpoint"], row["state"]) == ("universal_transfer", "open")
    assert row["recv_window"] == 5000
    assert "12.5" in row["params"] and "MAIN_MARGIN" in row["params"]
    assert abs(row["created_ms"] - fake.server_ms) < 1000
    (after,) = rows(path)
    assert (after["state"], after["tran_id"]) == ("done", 42)
    assert after["timestamp"] >= row["created_ms"]


async def test_each_outcome_is_recorded(tmp_path: Path) -> None:
    """Refused by Binance: refused. Unknown: unknown, with the timestamp sent."""
    path = tmp_path / "j.sqlite"
    fake = FakeBinance()
    fake.script(
        "POST",
        "/sapi/v1/asset/transfer",
        error(400, -5013, "Asset transfer failed: insufficient balance"),
        httpx.Response(502, text="Bad Gateway"),
    )
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake), journal=path) as client:
        with pytest.raises(InsufficientBalanceError):
            await client.transfer(type=TransferType.MAIN_MARGIN, asset="USDT", amount=1)
        with pytest.raises(OutcomeUnknownError) as unknown:
            await client.transfer(type=TransferType.MAIN_MARGIN, asset="USDT", amount=2)
    refused, maybe = rows(path)
    assert refused["state"] == "refused"
    assert (maybe["state"], maybe["timestamp"]) == ("unknown", unknown.value.timestamp)


async def test_a_refused_argument_writes_nothing(tmp_path: Path) -> None:
    """Bad input fails before the journal too: no row, no file."""
    path = tmp_path / "j.sqlite"
    async with Client(
        API_KEY, SECRET, transport=httpx.MockTransport(FakeBinance()), journal=path
    ) as client:
        with pytest.raises(ValueError, match="amount"):
            await client.transfer(type=TransferType.MAIN_MARGIN, asset="USDT", amount=-1)
    assert not path.exists()


class Handover(httpx.AsyncBaseTransport):
    """Delegates to ``inner``; ``sent`` is set once a transfer is handed over to it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent = anyio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.sent.set()
        return await self.inner.handle_async_request(request)


async def cancel_on_the_wire(client: Client, wire: Handover) -> None:
    """A caller's 3 USDT universal transfer, cancelled once it is on the wire."""
    async with anyio.create_task_group() as tg:

        async def caller() -> None:
            await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="3")

        tg.start_soon(caller)
        await wire.sent.wait()
        tg.cancel_scope.cancel()


@fake_time
async def test_a_caller_cancelled_on_the_wire_is_recorded_and_reported(
    exchange: SimulatedExchange,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The caller is cancelled; the transfer runs on, is journaled, hooked and logged."""
    exchange.faults.add(Fault.latency(2.0), endpoint="universal_transfer", times=1)
    reported: list[ExchangeOutcome] = []
    path = tmp_path / "j.sqlite"
    wire = Handover(exchange.transport())
    client = journaled(exchange, wire, path, on_detached=reported.append)
    async with client:
        with caplog.at_level(logging.WARNING):
            await cancel_on_the_wire(client, wire)
            # The cancelled caller left only once the outcome was known.
    (executed,) = exchange.ledger.executed("universal_transfer")
    (outcome,) = reported
    assert outcome.detached and outcome.data == {"tranId": executed.result}
    (row,) = rows(path)
    assert (row["state"], row["tran_id"]) == ("done", executed.result)
    assert any("cancelled" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def journaled(
    exchange: SimulatedExchange,
    wire: httpx.AsyncBaseTransport,
    journal: Path | Journal,
    **options: Any,
) -> Client:
    """A client of the exchange through ``wire``, journaling to ``journal``."""
    return Client(
        DEMO_API_KEY,
        DEMO_API_SECRET,
        transport=wire,
        api_url=exchange.api_url,
        papi_url=exchange.papi_url,
        governor=Governor(exchange.limits, clock=exchange.clock),
        journal=journal,
        **options,
    )


async def margin_transfer_on_the_wire(
    exchange: SimulatedExchange, path: Path
) -> tuple[Client, asyncio.Future[MarginTransferResult]]:
    """A journaled client with a sub-account margin transfer on the wire (answered 1 s
    later). Binance keeps no history of this endpoint: recover() could not tell."""
    exchange.faults.add(Fault.latency(1.0), endpoint="sub_account_margin_transfer")
    wire = Handover(exchange.transport())
    client = journaled(exchange, wire, path)
    call = asyncio.ensure_future(
        client.sub_account_margin_transfer(
            email="desk-1@sim.invalid",
            asset="USDT",
            amount="6",
            direction=MarginTransferDirection.SPOT_TO_MARGIN,
        )
    )
    await wire.sent.wait()
    return client, call


@contextlib.asynccontextmanager
async def detached_on_the_wire(
    exchange: SimulatedExchange, path: Path
) -> AsyncIterator[tuple[Client, ExchangeOutcome]]:
    """A journaled client whose caller was cancelled while its transfer was on the
    wire (2 s), and whose answer was lost: yields it (open) and what on_detached got."""
    exchange.faults.add(Fault.latency(2.0), endpoint="universal_transfer", times=1)
    exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    reported: list[ExchangeOutcome] = []
    wire = Handover(exchange.transport())
    client = journaled(exchange, wire, path, on_detached=reported.append, settle_margin=1.0)
    async with client:
        await cancel_on_the_wire(client, wire)
        (outcome,) = reported
        yield client, outcome


@fake_time
async def test_recover_settles_this_runs_unknown_whose_caller_was_cancelled_on_the_wire(
    exchange: SimulatedExchange, tmp_path: Path
) -> None:
    """Cancelled on the wire, answer lost: only on_detached knows; recover() settles the row."""
    path = tmp_path / "j.sqlite"
    async with detached_on_the_wire(exchange, path) as (client, outcome):
        assert outcome.detached and isinstance(outcome.error, OutcomeUnknownError)
        assert list(client._reconciler._open) == [outcome.error.request_id]
        (found,) = await client.recover()
        assert await client.recover() == ()
        # Settled: it no longer keeps confirmed ids from being forgotten.
        assert client._reconciler._open == {}
    (executed,) = exchange.ledger.executed("universal_transfer")
    assert found.executed is True and found.tran_id == executed.result
    assert [row["state"] for row in rows(path)] == ["executed"]


@fake_time
async def test_the_detached_error_settled_by_its_hook_and_recover_agree(
    exchange: SimulatedExchange, tmp_path: Path
) -> None:
    """Cancelled on the wire, answer lost: the on_detached hook's error is reconciled
    (executed), then recover() settles the row. One request, one verdict: recover() must
    not take the row the hook's settlement claimed for someone else's ("not executed")."""
    path = tmp_path / "j.sqlite"
    async with detached_on_the_wire(exchange, path) as (client, outcome):
        assert isinstance(outcome.error, OutcomeUnknownError)
        by_hook = await client.reconcile(outcome.error)
        recovered = await client.recover()
    (executed,) = exchange.ledger.executed("universal_transfer")
    assert by_hook.executed is True and by_hook.tran_id == executed.result
    assert all(s.executed is True for s in recovered), recovered
    assert [(row["state"], row["tran_id"]) for row in rows(path)] == [("executed", executed.result)]


@fake_time
async def test_a_caller_cancelled_while_settling_is_reported_and_recovered(
    exchange: SimulatedExchange,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """on_unknown="reconcile", caller times out mid-settle: on_detached, WARNING, recover()."""
    exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    told: list[ExchangeOutcome] = []
    path = tmp_path / "j.sqlite"
    async with exchange.client(
        journal=path, on_unknown="reconcile", on_detached=told.append
    ) as client:
        with caplog.at_level(logging.WARNING):
            call = asyncio.ensure_future(
                client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="7")
            )
            # Executed, its answer dropped: the call now settles (over a minute).
            # (Cancelled by hand: the journal's thread lets looptime jump to any timeout.)
            await exchange.ledger.wait_for(lambda e: e.endpoint == "universal_transfer")
            await asyncio.sleep(5)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        (outcome,) = told
        assert outcome.detached and isinstance(outcome.error, OutcomeUnknownError)
        assert outcome.params.get("amount") == "7"
        assert any("being settled" in r.getMessage() for r in caplog.records)
        assert [row["state"] for row in rows(path)] == ["unknown"]
        # Nobody else will settle it: recover() does, although it is this run's row.
        (found,) = await client.recover()
        assert await client.recover() == ()
    (executed,) = exchange.ledger.executed("universal_transfer")
    assert found.executed is True and found.tran_id == executed.result
    assert [(row["state"], row["tran_id"]) for row in rows(path)] == [("executed", executed.result)]


@fake_time
async def test_a_caller_cancelled_while_settling_without_a_journal_is_still_told() -> None:
    """No journal: on_detached still receives the unknown outcome of the executed transfer."""
    exchange = demo_exchange()
    exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    told: list[ExchangeOutcome] = []
    async with exchange.client(on_unknown="reconcile", on_detached=told.append) as client:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="7"), 5
            )
        await anyio.sleep(60)
    assert exchange.ledger.times_executed("universal_transfer", amount="7") == 1
    assert [o.params.get("amount") for o in told] == ["7"]


@fake_time
async def test_recover_settles_what_a_previous_run_left(
    exchange: SimulatedExchange, tmp_path: Path
) -> None:
    """Rows left open or unknown by another run are settled from the history."""
    path = tmp_path / "j.sqlite"
    exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    exchange.faults.add(Fault.unavailable(), endpoint="sub_account_transfer", times=1)
    async with exchange.client(journal=path) as first:
        with pytest.raises(OutcomeUnknownError):
            await first.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="4")
        with pytest.raises(OutcomeUnknownError):
            await first.sub_account_transfer(
                to_email="desk-1@sim.invalid",
                from_account_type="SPOT",
                to_account_type="SPOT",
                asset="USDT",
                amount="4",
            )
        await first.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="4")
        assert await first.recover() == ()  # this run's own calls are the caller's
    # A crash between the intent and its outcome leaves a row open: forge one.
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO intents (session, endpoint, params, recv_window, created_ms, state) "
            "VALUES ('crashed', 'universal_transfer', ?, 5000, ?, 'open')",
            ('[["type","MAIN_UMFUTURE"],["asset","USDT"],["amount","4"]]', exchange.server_ms()),
        )
    async with exchange.client(journal=path, settle_margin=1.0) as second:
        found = await second.recover()
        assert await second.recover() == ()  # settled once and for all
    executed = [e.result for e in exchange.ledger.executed("universal_transfer")]
    assert [(s.endpoint, s.executed) for s in found] == [
        ("universal_transfer", True),
        ("sub_account_transfer", False),
        ("universal_transfer", False),
    ]
    assert found[0].tran_id == executed[0]  # not the confirmed identical one
    states = [row["state"] for row in rows(path)]
    assert states == ["executed", "not_executed", "done", "not_executed"]


async def test_recover_needs_a_journal() -> None:
    """Said plainly, before anything is sent."""
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(FakeBinance())) as client:
        with pytest.raises(ConfigurationError, match="journal"):
            await client.recover()


async def test_a_process_killed_mid_run_is_recovered_in_a_fresh_one(tmp_path: Path) -> None:
    """SIGKILL at an arbitrary instruction, three times; recover() then accounts for every
    executed transfer exactly once and leaves nothing unknown."""
    exchange = demo_exchange()
    exchange.faults.add(Fault.drop(), probability=0.1, endpoint="universal_transfer")
    exchange.faults.add(Fault.unavailable(), probability=0.1, endpoint="sub_account_transfer")
    path = tmp_path / "j.sqlite"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    settled = 0
    record = exchange.ledger.record
    count = 0
    enough = anyio.Event()
    kill_at = [0]

    def counting(entry: LedgerEntry) -> None:
        nonlocal count
        record(entry)
        count += entry.executed
        if count >= kill_at[0]:
            enough.set()

    exchange.ledger.record = counting  # type: ignore[method-assign]
    async with serve(exchange) as server:
        for run, kill_after in enumerate((15, 40, 70)):
            kill_at[0], enough = kill_after, anyio.Event()
            argv = [sys.executable, "-m", "binance_transfers.demo._soak", server.url, str(path)]
            child = await anyio.open_process(
                [*argv, DEMO_API_KEY, DEMO_API_SECRET, "1000"], env=env
            )
            try:
                with anyio.fail_after(60):
                    await enough.wait()
            finally:
                child.send_signal(signal.SIGKILL)
                await child.wait()
            async with Client(
                DEMO_API_KEY,
                DEMO_API_SECRET,
                api_url=server.url,
                papi_url=server.url,
                journal=path,
                settle_margin=0.3,
            ) as recovering:
                found = await recovering.recover()
            assert all(s.executed is not None for s in found), (run, found)
            settled += len(found)
        journal = rows(path)
    assert settled > 0  # the kills left work for recover()
    assert all(row["state"] not in ("open", "unknown") for row in journal)
    for endpoint in ("universal_transfer", "sub_account_transfer"):
        executed = sorted(int(str(e.result)) for e in exchange.ledger.executed(endpoint))
        accounted = sorted(
            row["tran_id"]
            for row in journal
            if row["endpoint"] == endpoint and row["state"] in ("done", "executed")
        )
        assert accounted == executed, endpoint


async def test_over_tcp_the_intent_is_committed_before_the_request_arrives(
    exchange: SimulatedExchange, tmp_path: Path
) -> None:
    """httpcore: the intent is queued at once and the request waits for its commit."""
    path = tmp_path / "j.sqlite"
    seen: list[list[dict[str, Any]]] = []
    handle = exchange.handle

    async def spying(endpoint: Any, request: Any) -> Any:
        if endpoint.name == "universal_transfer":
            seen.append(rows(path))
        return await handle(endpoint, request)

    exchange.handle = spying  # type: ignore[method-assign]
    async with (
        serve(exchange) as server,
        Client(
            DEMO_API_KEY, DEMO_API_SECRET, api_url=server.url, papi_url=server.url, journal=path
        ) as client,
    ):
        for amount in ("1", "2", "3"):
            await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount=amount)
    assert [len(before) for before in seen] == [1, 2, 3]
    assert [before[-1]["state"] for before in seen] == ["open", "open", "open"]
    assert [row["state"] for row in rows(path)] == ["done", "done", "done"]


@pytest.mark.parametrize("tcp", [True, False], ids=["tcp", "in-process"])
async def test_an_unwritable_journal_fails_the_call_with_nothing_sent(
    exchange: SimulatedExchange, tmp_path: Path, tcp: bool
) -> None:
    """A journal that cannot be written: ConfigurationError, nothing executed, no hang."""
    journal = tmp_path / "dir.sqlite"
    journal.mkdir()  # SQLite cannot open a directory
    async with serve(exchange) as server:
        options: dict[str, Any] = (
            {"api_url": server.url, "papi_url": server.url}
            if tcp
            else {
                "transport": exchange.transport(),
                "api_url": exchange.api_url,
                "papi_url": exchange.papi_url,
            }
        )
        async with Client(DEMO_API_KEY, DEMO_API_SECRET, journal=journal, **options) as client:
            with anyio.fail_after(10), pytest.raises(ConfigurationError, match="journal"):
                await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
    assert exchange.ledger.executed("universal_transfer") == []


@pytest.mark.parametrize("name", ["journal", "claims"])
def test_a_file_in_a_missing_directory_is_refused_at_construction(
    tmp_path: Path, name: str
) -> None:
    """Said before any call, for the journal and the shared claims file alike."""
    where: dict[str, Any] = {name: tmp_path / "missing" / "f.sqlite"}
    with pytest.raises(InvalidInputError, match=f"{name}: no directory"):
        Client(API_KEY, SECRET, **where)


def test_the_journal_works_under_trio(tmp_path: Path) -> None:
    """The writer thread wakes trio's run as it wakes asyncio's loop."""
    import trio

    journal = Journal(tmp_path / "j.sqlite")

    async def main() -> list[Any]:
        intent = await journal.open("universal_transfer", [("asset", "USDT")], 5000, 1)
        journal.outcome(intent, "done", tran_id=9)
        found = await journal.rows()
        await journal.aclose()
        return found

    (row,) = trio.run(main)
    assert (row.state, row.tran_id, row.params) == ("done", 9, {"asset": "USDT"})


def test_a_caller_cancelled_while_settling_under_trio_is_told() -> None:
    """trio: a cancel scope expiring mid-settle hands the unknown outcome to on_detached."""
    import trio
    import trio.testing

    async def main() -> tuple[list[ExchangeOutcome], SimulatedExchange, bool]:
        exchange = demo_exchange()
        exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
        told: list[ExchangeOutcome] = []
        async with exchange.client(on_unknown="reconcile", on_detached=told.append) as client:
            with trio.move_on_after(5) as scope:
                await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="7")
        return told, exchange, scope.cancelled_caught

    told, exchange, cancelled = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert cancelled
    (outcome,) = told
    assert outcome.detached and isinstance(outcome.error, OutcomeUnknownError)
    assert exchange.ledger.times_executed("universal_transfer", amount="7") == 1


@fake_time
async def test_aclose_waits_for_a_call_on_the_wire_and_journals_its_outcome(
    exchange: SimulatedExchange, tmp_path: Path
) -> None:
    """Shutdown mid-call: the caller gets its result and the row says done, not open."""
    path = tmp_path / "j.sqlite"
    client, call = await margin_transfer_on_the_wire(exchange, path)
    await client.aclose()
    assert call.done()  # closing waited for it
    result = await call
    (row,) = rows(path)
    assert (row["state"], row["endpoint"]) == ("done", "sub_account_margin_transfer")
    assert result.txn_id
    async with exchange.client(journal=path) as later:
        assert await later.recover() == ()


@fake_time
@pytest.mark.parametrize("cancel", ["scope", "task.cancel"])
async def test_aclose_from_a_cancelled_task_still_waits_for_the_call_on_the_wire(
    exchange: SimulatedExchange, tmp_path: Path, cancel: str
) -> None:
    """``async with`` unwinding in a cancelled task (a cancel scope, or asyncio's plain
    ``task.cancel()`` from a TaskGroup or a timeout): closing still waits for the transfer
    on the wire, so its row says done (this endpoint has no history: an open row could
    never be settled); the closing task's cancellation is raised after."""
    path = tmp_path / "j.sqlite"
    client, call = await margin_transfer_on_the_wire(exchange, path)
    if cancel == "scope":
        with anyio.CancelScope() as scope:
            scope.cancel()
            await client.aclose()
    else:
        closing = asyncio.ensure_future(client.aclose())
        await asyncio.sleep(0.1)
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
    assert call.done()  # closing waited for it
    result = await call
    assert result.txn_id
    (row,) = rows(path)
    assert (row["state"], row["endpoint"]) == ("done", "sub_account_margin_transfer")


@fake_time
async def test_a_second_aclose_returns_only_once_the_first_has_closed(
    exchange: SimulatedExchange, tmp_path: Path
) -> None:
    """Two closers (``async with`` and a signal handler's ``aclose()``): neither returns
    before the transfer on the wire is journaled; the second used to return at once, and
    a process exiting then lost the row's outcome (this endpoint has no history)."""
    path = tmp_path / "j.sqlite"
    client, call = await margin_transfer_on_the_wire(exchange, path)
    first = asyncio.ensure_future(client.aclose())
    await asyncio.sleep(0.1)
    await client.aclose()
    (row,) = rows(path)
    assert (row["state"], row["endpoint"]) == ("done", "sub_account_margin_transfer")
    await first
    assert (await call).txn_id


@fake_time
async def test_aclose_from_an_on_detached_hook_does_not_wait_for_its_own_call(
    exchange: SimulatedExchange, tmp_path: Path
) -> None:
    """A hook that shuts the client down when a caller is lost: no deadlock, row journaled."""
    # (No fail_after here: looptime jumps to any deadline while the journal's thread works.)
    exchange.faults.add(Fault.latency(2.0), endpoint="universal_transfer", times=1)
    wire = Handover(exchange.transport())
    path = tmp_path / "j.sqlite"
    closed: list[bool] = []

    async def shut_down(outcome: ExchangeOutcome) -> None:
        await lost.aclose()
        closed.append(lost.closed)

    lost = journaled(exchange, wire, path, on_detached=shut_down)
    await cancel_on_the_wire(lost, wire)
    assert closed == [True]
    assert [row["state"] for row in rows(path)] == ["done"]


@fake_time
async def test_a_confirmed_call_without_history_is_on_disk_before_it_returns(
    exchange: SimulatedExchange, tmp_path: Path
) -> None:
    """Sub-account margin transfer: no history could settle it after a crash, so its DONE
    row is committed before the caller gets the result (a kill then loses nothing)."""
    path = tmp_path / "j.sqlite"
    async with exchange.client(journal=path) as client:
        done = await client.sub_account_margin_transfer(
            email="desk-1@sim.invalid",
            asset="USDT",
            amount="6",
            direction=MarginTransferDirection.SPOT_TO_MARGIN,
        )
        # As a process started after a SIGKILL here would read it.
        assert [row["state"] for row in rows(path)] == ["done"]
    assert done.txn_id


@fake_time
async def test_aclose_stops_a_call_waiting_for_its_permit_with_nothing_sent(
    exchange: SimulatedExchange, tmp_path: Path
) -> None:
    """A 3rd BNB transfer waits ~10 min for the 2-per-10-min cap: aclose() refuses it at once."""
    path = tmp_path / "j.sqlite"
    client = exchange.client(journal=path)
    for n in (1, 2):
        await client.pmpro_bnb_transfer(amount=f"0.{n}", side=BnbTransferSide.TO_UM)
    queued = asyncio.ensure_future(
        client.pmpro_bnb_transfer(amount="0.3", side=BnbTransferSide.TO_UM)
    )
    await asyncio.sleep(1)
    started = asyncio.get_running_loop().time()
    await client.aclose()
    assert asyncio.get_running_loop().time() - started < 30
    with pytest.raises(ClientClosedError, match="nothing was sent"):
        await queued
    assert len(exchange.ledger.entries("pmpro_bnb_transfer")) == 2
    assert [row["state"] for row in rows(path)] == ["done", "done", "refused"]


@pytest.mark.parametrize("recovers", [True, False], ids=["recover", "no-recover"])
@fake_time
async def test_a_restart_keeps_the_rolling_caps_the_journal_knows(
    tmp_path: Path, recovers: bool
) -> None:
    """PM Pro BNB transfers: 2 per 10 minutes. The last run made 2 a minute before the
    restart; the new run's governor learns them from the journal (whether or not
    recover() is called) and waits for the cap instead of earning a 429."""
    exchange = demo_exchange()
    path = tmp_path / "j.sqlite"
    async with exchange.client(journal=path) as first:
        for _ in range(2):
            await first.pmpro_bnb_transfer(amount="0.01", side=BnbTransferSide.TO_UM)
    sent = [e.arrived for e in exchange.ledger.entries("pmpro_bnb_transfer")]
    await anyio.sleep(60)  # the deploy
    async with exchange.client(journal=path) as second:  # a fresh governor, same journal
        if recovers:
            await second.recover()
        await second.pmpro_bnb_transfer(amount="0.01", side=BnbTransferSide.TO_UM)
    entries = exchange.ledger.entries("pmpro_bnb_transfer")
    assert [e.status for e in entries] == [200, 200, 200]
    assert entries[2].arrived >= sent[0] + 600  # it waited for the first one to age out


async def test_one_writer_at_a_time_per_journal_file(tmp_path: Path) -> None:
    """A second writer (another Client of this process, or another process) would take
    the first one's open rows for a crash's and settle them: refused, typed, nothing
    written; once the first has closed, the file is free again."""
    path = tmp_path / "j.sqlite"
    first = Journal(path)
    second = Journal(path)
    await first.open("universal_transfer", [("asset", "USDT")], 5000, 1)
    with pytest.raises(ConfigurationError, match="in use by another writer"):
        await second.open("universal_transfer", [("asset", "BTC")], 5000, 1)
    await first.aclose()
    await second.open("universal_transfer", [("asset", "BTC")], 5000, 2)
    assert [row.params["asset"] for row in await second.rows()] == ["USDT", "BTC"]
    await second.aclose()


async def test_a_second_client_on_a_journal_in_use_sends_nothing(
    exchange: SimulatedExchange, tmp_path: Path
) -> None:
    path = tmp_path / "j.sqlite"
    async with exchange.client(journal=path) as one, exchange.client(journal=path) as two:
        await one.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
        with pytest.raises(ConfigurationError, match="in use by another writer"):
            await two.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="2")
    assert len(exchange.ledger.entries("universal_transfer")) == 1


@fake_time
async def test_a_stalled_commit_holds_up_the_event_loop_only_briefly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lone intent's commit is waited for by blocking the loop's thread (cheaper than a
    loop wakeup), but only briefly: while the disk stalls, the other coroutines run."""
    journal = Journal(tmp_path / "j.sqlite")
    await journal.flush()  # the file is open: only the intent's own write stalls
    disk = threading.Event()
    waited: list[bool] = []
    insert = _journal._insert

    def stalled(conn: sqlite3.Connection, *args: Any) -> int:
        waited.append(disk.wait(10))  # a disk stall, over when a coroutine says so
        return insert(conn, *args)

    monkeypatch.setattr(_journal, "_insert", stalled)

    async def unstall() -> None:
        await asyncio.sleep(1)  # a timer: the loop is idle when the intent is waited for
        disk.set()  # runs only once the intent's wait gives the loop back

    async with anyio.create_task_group() as tg:
        tg.start_soon(unstall)
        await anyio.lowlevel.checkpoint()  # unstall() waits for its timer
        await journal.open("universal_transfer", [("asset", "USDT")], 5000, 1)
    assert waited == [True]
    assert journal._slow == _journal._SLOW_SKIPS  # it did block, and gave up
    assert [row.state for row in await journal.rows()] == ["open"]
    await journal.aclose()


class _CountingQueue(queue.SimpleQueue[Any]):
    """The writer's queue, noting the size of every batch handed over."""

    def __init__(self) -> None:
        self.handed: list[int] = []

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is not None:
            self.handed.append(len(item))
        super().put(item, block, timeout)


async def test_intents_queued_together_are_handed_to_the_writer_together(tmp_path: Path) -> None:
    """Ten coroutines' intents reach the writer thread in one hand-over (one wakeup, one
    commit), not ten: waking it per intent takes the busy event loop's CPU and GIL."""
    journal = Journal(tmp_path / "j.sqlite")
    journal._queue = counting = _CountingQueue()
    async with anyio.create_task_group() as tg:
        for n in range(10):
            tg.start_soon(journal.open, "universal_transfer", [("n", str(n))], 5000, n)
    assert counting.handed == [10]
    assert len(await journal.rows()) == 10
    await journal.aclose()


def _lock_journal(path: Path) -> sqlite3.Connection:
    """Another connection takes the journal's write lock (an operator's shell, a backup)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def _collection_locking_the_journal(path: Path) -> tuple[FakeBinance, list[sqlite3.Connection]]:
    """A FakeBinance whose pm_auto_collect executes, then has another connection take the
    journal's write lock before it answers; the locks taken (see :func:`_release`)."""
    fake = FakeBinance()
    locks: list[sqlite3.Connection] = []

    def collect(request: httpx.Request) -> httpx.Response:
        locks.append(_lock_journal(path))
        return ok({"msg": "success"})

    fake.script("POST", "/papi/v1/auto-collection", collect)
    return fake, locks


def _release(locks: list[sqlite3.Connection]) -> None:
    for conn in locks:
        conn.execute("ROLLBACK")
        conn.close()


async def test_outcomes_in_a_failed_commit_are_written_with_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction that fails (database locked past busy_timeout) fails its own
    job, but the outcomes that rode in it are kept for the next commit (B4-2)."""
    monkeypatch.setattr(_journal, "_BUSY_TIMEOUT_MS", 50)  # the lock wait, not 5 s
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    try:
        first = await journal.open("pm_auto_collect", [], 5000, 1)
        second = await journal.open("pm_auto_collect", [], 5000, 2)
        journal.outcome(first, _journal.DONE, timestamp=11)
        other = _lock_journal(path)
        try:
            with pytest.raises(ConfigurationError, match="cannot be written"):
                await journal.flush()
        finally:
            other.execute("ROLLBACK")
            other.close()
        journal.outcome(second, _journal.REFUSED)
        await journal.flush()
    finally:
        await journal.aclose()
    assert [(row["state"], row["timestamp"]) for row in rows(path)] == [
        ("done", 11),
        ("refused", None),
    ]


async def test_an_executed_collection_is_not_journaled_refused_when_a_flush_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """pm_auto_collect executes (200: no history could ever settle it). While it is on
    the wire another connection takes the journal's write lock, so the flush of its
    outcome fails. The caller must still get the exchange's answer (not
    ConfigurationError, which says nothing was sent), the row must never say
    ``refused``, and the outcome is written once the journal is writable again
    (B4-2: a retry would have collected the funds twice)."""
    monkeypatch.setattr(_journal, "_BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "j.sqlite"
    fake, locks = _collection_locking_the_journal(path)
    error: BaseException | None = None
    result: Any = None
    client = Client(API_KEY, SECRET, transport=httpx.MockTransport(fake), journal=path)
    async with client:
        try:
            with caplog.at_level(logging.ERROR, logger="binance_transfers"):
                result = await client.pm_auto_collect()
        except Exception as exc:
            error = exc
        finally:
            _release(locks)
    assert len(fake.calls("/papi/v1/auto-collection")) == 1
    assert error is None, repr(error)
    assert result is not None
    assert any(
        r.levelname == "ERROR" and "pm_auto_collect" in r.getMessage() for r in caplog.records
    ), [r.getMessage() for r in caplog.records]
    # The DONE outcome was kept and committed by aclose()'s flush.
    (row,) = rows(path)
    assert row["state"] == "done", (row["state"], row["note"])


async def test_an_executed_collection_whose_outcome_never_reached_the_journal_is_recovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal stays locked until the process ends (its last flush fails too): the
    row stays ``open``, never ``refused``, and the next run's recover() reports it as
    possibly executed rather than not executed."""
    monkeypatch.setattr(_journal, "_BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "j.sqlite"
    fake, locks = _collection_locking_the_journal(path)
    try:
        async with Client(
            API_KEY, SECRET, transport=httpx.MockTransport(fake), journal=path
        ) as client:
            await client.pm_auto_collect()
    finally:
        _release(locks)
    assert [row["state"] for row in rows(path)] == ["open"]
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake), journal=path) as second:
        found = await second.recover()
    assert [(s.endpoint, s.executed) for s in found] == [("pm_auto_collect", None)]


async def test_a_caller_cancelled_while_its_intent_commits_leaves_no_open_row(
    tmp_path: Path,
) -> None:
    """The journal's writer is slow (another connection holds the write lock for a
    moment); the caller gives up (wait_for 0.2 s) while awaiting its intent's commit:
    nothing is sent, so the row is closed ``refused`` and the next run's recover()
    does not report the collection as possibly executed (B4-8)."""
    path = tmp_path / "j.sqlite"
    fake = FakeBinance()
    fake.script("POST", "/papi/v1/auto-collection", ok({"msg": "success"}))
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake), journal=path) as client:
        await client.pm_auto_collect()  # the journal exists, the clock is synced
        other = _lock_journal(path)
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.pm_auto_collect(), 0.2)
        finally:
            other.execute("ROLLBACK")
            other.close()
    assert len(fake.calls("/papi/v1/auto-collection")) == 1  # the second never left
    states = [row["state"] for row in rows(path)]
    assert states == ["done", "refused"]
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake), journal=path) as second:
        found = await second.recover()
    assert [(s.endpoint, s.reason) for s in found if s.executed is not False] == []


class _RecordingJournal(Journal):
    """Every outcome the client asks the journal to write, in order (state, only_if_open)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.asked: list[tuple[str, bool]] = []

    def outcome(self, intent: Any, state: str, **kwargs: Any) -> None:
        self.asked.append((state, bool(kwargs.get("only_if_open"))))
        super().outcome(intent, state, **kwargs)


@fake_time
async def test_a_caller_cancelled_after_its_outcome_was_reported_is_never_closed_refused(
    exchange: SimulatedExchange, tmp_path: Path
) -> None:
    """Cancelled on the wire: the transfer runs on, executes, its DONE outcome is
    journaled and handed to on_detached; then the caller's cancellation unwinds through
    the call, which closes rows of calls cancelled *before sending* as refused. This one
    was sent and executed: the client must not ask for "refused" at all (the guard in
    _close_intent). The row's own state is protected twice (the DONE update is queued
    first, and "refused" only applies to a row still open), so what is checked here is
    what the client asks of the journal: a journal that applied updates in another order,
    or lost the DONE one, would otherwise record an executed transfer as refused."""
    exchange.faults.add(Fault.latency(2.0), endpoint="universal_transfer", times=1)
    reported: list[ExchangeOutcome] = []
    journal = _RecordingJournal(tmp_path / "j.sqlite")
    wire = Handover(exchange.transport())
    client = journaled(exchange, wire, journal, on_detached=reported.append)
    async with client:
        await cancel_on_the_wire(client, wire)
    (outcome,) = reported
    assert outcome.detached and outcome.error is None  # executed, and reported as such
    assert journal.asked == [("done", False)]
    (row,) = rows(tmp_path / "j.sqlite")
    assert row["state"] == "done"
