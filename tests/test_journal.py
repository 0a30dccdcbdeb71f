"""The intent journal (issue 8): written before the first byte, settled after a crash."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import looptime
import pytest

from binance_transfers import (
    Client,
    ConfigurationError,
    Governor,
    InsufficientBalanceError,
    Journal,
    OutcomeUnknownError,
    TransferType,
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

from .conftest import API_KEY, SECRET, FakeBinance, error, ok

fake_time = looptime.enabled(strict=True)


def rows(path: Path) -> list[dict[str, Any]]:
    """The journal as another process would read it (a separate connection)."""
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute("SELECT * FROM intents ORDER BY id")]


@pytest.fixture
def exchange() -> SimulatedExchange:
    sim = SimulatedExchange()
    sim.add_demo_account()
    return sim


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
    client = Client(
        DEMO_API_KEY,
        DEMO_API_SECRET,
        transport=wire,
        api_url=exchange.api_url,
        papi_url=exchange.papi_url,
        governor=Governor(exchange.limits, clock=exchange.clock),
        journal=path,
        on_detached=reported.append,
    )
    async with client:
        with caplog.at_level(logging.WARNING):
            async with anyio.create_task_group() as tg:

                async def caller() -> None:
                    await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="3")

                tg.start_soon(caller)
                await wire.sent.wait()
                tg.cancel_scope.cancel()  # the caller, while its transfer is on the wire
            # The cancelled caller left only once the outcome was known.
    (executed,) = exchange.ledger.executed("universal_transfer")
    (outcome,) = reported
    assert outcome.detached and outcome.data == {"tranId": executed.result}
    (row,) = rows(path)
    assert (row["state"], row["tran_id"]) == ("done", executed.result)
    assert any("cancelled" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


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
    exchange = SimulatedExchange()
    exchange.add_demo_account()
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


def test_a_journal_in_a_missing_directory_is_refused_at_construction(tmp_path: Path) -> None:
    """Said before any call."""
    with pytest.raises(ValueError, match="journal"):
        Client(API_KEY, SECRET, journal=tmp_path / "missing" / "j.sqlite")


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
