"""Every Client method end to end against the simulated exchange, in-process."""

from __future__ import annotations

from decimal import Decimal

import anyio
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from binance_transfers import (
    ENDPOINTS,
    BinanceAPIError,
    BinanceTransfersError,
    BnbTransferSide,
    Client,
    FuturesMarket,
    FutureType,
    Governor,
    InsufficientBalanceError,
    Limits,
    LoopClock,
    MalformedResponseError,
    MarginTransferDirection,
    NotPortfolioMarginError,
    OutcomeUnknownError,
    PoolKind,
    SubAccountAccountType,
    TransferStatus,
    TransferType,
)
from binance_transfers.sim import Account, Fault, SimulatedExchange

from .conftest import EPOCH, fake_time

DESK = "desk-1@sim.invalid"


async def test_transfer(binance_client: Client, binance_sim_account: Account) -> None:
    """Client.transfer moves spot -> margin; its tran_id is the exchange's."""
    done = await binance_client.transfer(
        type=TransferType.MAIN_MARGIN, asset="USDT", amount="250.5"
    )
    assert done.tran_id == binance_sim_account.transfers[-1].tran_id
    assert binance_sim_account.balance("USDT") == Decimal("999749.5")
    assert binance_sim_account.balance("USDT", "MARGIN") == Decimal("100250.5")


async def test_transfer_from_an_isolated_pair(
    binance_client: Client, binance_sim_account: Account
) -> None:
    """Client.transfer with from_symbol debits that isolated-margin pair."""
    await binance_client.transfer(
        type=TransferType.ISOLATEDMARGIN_MARGIN,
        asset="BNB",
        amount=Decimal("2.5"),
        from_symbol="BNBUSDT",
    )
    assert binance_sim_account.balance("BNB", "ISOLATEDMARGIN", "BNBUSDT") == Decimal("7.5")


async def test_transfer_to_and_from_futures(
    binance_client: Client, binance_sim_account: Account
) -> None:
    """transfer_to_futures / transfer_from_futures use MAIN_UMFUTURE, MAIN_CMFUTURE and back."""
    await binance_client.transfer_to_futures(asset="USDT", amount="1000")
    await binance_client.transfer_to_futures(asset="BTC", amount="0.5", market=FuturesMarket.COINM)
    await binance_client.transfer_from_futures(asset="USDT", amount="300")
    await binance_client.transfer_from_futures(
        asset="BTC", amount="0.25", market=FuturesMarket.COINM
    )
    account = binance_sim_account
    assert account.balance("USDT", "UMFUTURE") == Decimal(100700)
    assert account.balance("BTC", "CMFUTURE") == Decimal("1.25")
    assert account.balance("BTC") == Decimal("9.75")
    assert [t.type for t in account.transfers] == [
        "MAIN_UMFUTURE",
        "MAIN_CMFUTURE",
        "UMFUTURE_MAIN",
        "CMFUTURE_MAIN",
    ]


async def test_transfer_history_walks_every_page(
    binance_client: Client, binance_sim: SimulatedExchange
) -> None:
    """transfer_history yields every row, newest first, asking page after page (current=1,2,3)."""
    for n in range(1, 6):
        await binance_client.transfer(type=TransferType.MAIN_FUNDING, asset="USDT", amount=n)
    rows = [
        r
        async for r in binance_client.transfer_history(type=TransferType.MAIN_FUNDING, page_size=2)
    ]
    assert [r.amount for r in rows] == [Decimal(n) for n in (5, 4, 3, 2, 1)]
    assert {r.status for r in rows} == {TransferStatus.CONFIRMED}
    assert len(binance_sim.ledger.entries("transfer_history")) == 3
    assert [r async for r in binance_client.transfer_history(type=TransferType.FUNDING_MAIN)] == []


async def test_pm_collect_asset(binance_client: Client, binance_sim_account: Account) -> None:
    """pm_collect_asset: part of one futures wallet with amount+future_type, then the rest."""
    ack = await binance_client.pm_collect_asset(
        asset="USDT", amount="100", future_type=FutureType.UM
    )
    assert ack.msg == "success"
    assert binance_sim_account.balance("USDT", "UMFUTURE") == Decimal(99900)
    await binance_client.pm_collect_asset(asset="USDT")
    assert binance_sim_account.balance("USDT", "UMFUTURE") == 0
    assert binance_sim_account.balance("USDT", "MARGIN") == Decimal(200000)


async def test_pm_auto_collect(binance_client: Client, binance_sim_account: Account) -> None:
    """pm_auto_collect empties the futures wallets into margin except BNB."""
    await binance_client.pm_auto_collect()
    assert binance_sim_account.holdings("UMFUTURE") == {"BNB": Decimal(100)}
    assert binance_sim_account.holdings("CMFUTURE") == {}


async def test_pm_bnb_transfer(binance_client: Client, binance_sim_account: Account) -> None:
    """pm_bnb_transfer TO_UM moves BNB from margin to USDⓈ-M and returns a tran_id."""
    result = await binance_client.pm_bnb_transfer(amount="1.5", side=BnbTransferSide.TO_UM)
    assert result.tran_id > 0
    assert binance_sim_account.balance("BNB", "UMFUTURE") == Decimal("101.5")


async def test_pmpro_auto_collect(binance_client: Client, binance_sim_account: Account) -> None:
    """pmpro_auto_collect collects like the classic one, through /sapi/v1/portfolio."""
    await binance_client.pmpro_auto_collect()
    assert binance_sim_account.balance("USDT", "MARGIN") == Decimal(200000)
    assert binance_sim_account.balance("BNB", "UMFUTURE") == Decimal(100)


async def test_pmpro_collect_asset(binance_client: Client, binance_sim_account: Account) -> None:
    """pmpro_collect_asset collects one asset."""
    await binance_client.pmpro_collect_asset(asset="BTC")
    assert binance_sim_account.balance("BTC", "MARGIN") == Decimal(1)


async def test_pmpro_bnb_transfer(binance_client: Client, binance_sim_account: Account) -> None:
    """pmpro_bnb_transfer FROM_UM moves BNB from USDⓈ-M to margin."""
    await binance_client.pmpro_bnb_transfer(amount="0.5", side=BnbTransferSide.FROM_UM)
    assert binance_sim_account.balance("BNB", "MARGIN") == Decimal("100.5")


async def test_sub_account_margin_transfer(
    binance_client: Client, binance_sim_account: Account
) -> None:
    """sub_account_margin_transfer moves within the sub-account; txn_id is a string."""
    result = await binance_client.sub_account_margin_transfer(
        email=DESK, asset="USDT", amount="50", direction=MarginTransferDirection.SPOT_TO_MARGIN
    )
    assert result.txn_id.isdigit()
    desk = binance_sim_account.sub_accounts[DESK]
    assert (desk.balance("USDT"), desk.balance("USDT", "MARGIN")) == (Decimal(9950), Decimal(1050))


async def test_sub_account_transfer_and_its_history(
    binance_client: Client, binance_sim_account: Account
) -> None:
    """sub_account_transfer echoes client_tran_id; the history finds it, paging through all rows."""
    result = await binance_client.sub_account_transfer(
        to_email=DESK,
        from_account_type=SubAccountAccountType.SPOT,
        to_account_type=SubAccountAccountType.USDT_FUTURE,
        asset="USDT",
        amount="100",
        client_tran_id="rebal-0001",
    )
    assert result.client_tran_id == "rebal-0001"
    assert binance_sim_account.sub_accounts[DESK].balance("USDT", "UMFUTURE") == Decimal(100)
    [row] = [
        r async for r in binance_client.sub_account_transfer_history(client_tran_id="rebal-0001")
    ]
    assert (row.tran_id, row.to_email, row.amount) == (result.tran_id, DESK, Decimal(100))
    for n in range(4):
        await binance_client.sub_account_transfer(
            to_email="desk-2@sim.invalid",
            from_account_type="SPOT",
            to_account_type="SPOT",
            asset="USDT",
            amount=n + 1,
        )
    rows = [r async for r in binance_client.sub_account_transfer_history(page_size=2)]
    assert [r.amount for r in rows] == [Decimal(n) for n in (4, 3, 2, 1, 100)]


async def test_server_time(binance_client: Client, binance_sim: SimulatedExchange) -> None:
    """server_time returns the exchange's clock."""
    before = binance_sim.server_ms()
    served = (await binance_client.server_time()).server_time
    assert before <= served <= binance_sim.server_ms()


async def test_errors_map_to_the_clients_exceptions(
    binance_sim: SimulatedExchange, binance_client: Client
) -> None:
    """-5013, -21001 and a duplicate clientTranId surface as the client's typed errors."""
    with pytest.raises(InsufficientBalanceError) as short:
        await binance_client.transfer(type=TransferType.OPTION_MAIN, asset="USDT", amount="1000.01")
    assert short.value.code == -5013
    plain = binance_sim.add_account(balances={"MAIN": {"USDT": "1"}})
    async with binance_sim.client(plain) as other:
        with pytest.raises(NotPortfolioMarginError):
            await other.pm_auto_collect()

    async def send() -> None:
        await binance_client.sub_account_transfer(
            to_email=DESK,
            from_account_type="SPOT",
            to_account_type="SPOT",
            asset="USDT",
            amount="1",
            client_tran_id="once",
        )

    await send()
    with pytest.raises(BinanceAPIError) as duplicate:
        await send()
    assert duplicate.value.code == -4115
    assert binance_sim.ledger.times_executed("sub_account_transfer", clientTranId="once") == 1


async def test_unknown_outcome_is_never_resent_and_can_be_reconciled(
    binance_sim: SimulatedExchange, binance_client: Client
) -> None:
    """A dropped transfer raises OutcomeUnknownError, is not resent, and is found in the history."""
    binance_sim.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    with pytest.raises(OutcomeUnknownError) as unknown:
        await binance_client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="77")
    assert len(binance_sim.ledger.entries("universal_transfer")) == 1
    assert binance_sim.ledger.resends() == []
    assert unknown.value.timestamp is not None
    rows = [r async for r in binance_client.transfer_history(type=TransferType.MAIN_UMFUTURE)]
    assert [(r.amount, r.tran_id) for r in rows] == [
        (Decimal(77), binance_sim.ledger.executed("universal_transfer")[0].result)
    ]


@pytest.mark.parametrize(
    ("fault", "error", "executed"),
    [
        (Fault.server_error(), OutcomeUnknownError, 1),
        (Fault.late(60.0), OutcomeUnknownError, 1),
        (Fault.malformed(), OutcomeUnknownError, 1),
        # A 5xx never proves that nothing happened: unknown, though it did not run.
        (Fault.unavailable(), OutcomeUnknownError, 0),
        (Fault.waf(), MalformedResponseError, 0),
    ],
    ids=["5xx", "late", "malformed", "unavailable", "waf"],
)
@fake_time
async def test_faults_reach_the_client_as_the_right_error(
    binance_sim: SimulatedExchange,
    binance_client: Client,
    fault: Fault,
    error: type[Exception],
    executed: int,
) -> None:
    """Each injected fault becomes the client error that says whether money may have moved."""
    binance_sim.faults.add(fault, endpoint="universal_transfer")
    with pytest.raises(error):
        await binance_client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
    assert len(binance_sim.ledger.executed("universal_transfer")) == executed
    assert len(binance_sim.ledger.entries("universal_transfer")) == 1  # never resent


@fake_time
async def test_client_resyncs_after_1021_and_sends_once_more(
    binance_sim: SimulatedExchange, binance_client: Client, binance_sim_account: Account
) -> None:
    """Server clock jumps 10 s ahead: -1021, the client resyncs and resends; one execution."""
    await binance_client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
    binance_sim.skew = 10.0
    await binance_client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="5")
    transfers = binance_sim.ledger.entries("universal_transfer")
    assert [(e.status, e.code) for e in transfers] == [(200, None), (400, -1021), (200, None)]
    assert len(binance_sim.ledger.entries("server_time")) == 2  # the first sync and the resync
    assert binance_sim.ledger.resends() == []
    assert binance_sim_account.balance("USDT", "UMFUTURE") == Decimal(100006)


@fake_time
async def test_governor_waits_out_the_rolling_cap_instead_of_earning_429() -> None:
    """Three PM Pro BNB transfers (2 per 10 min): the third leaves after the first is 600 s old."""
    exchange = SimulatedExchange(clock=LoopClock(epoch=EPOCH))
    exchange.add_demo_account()
    async with exchange.client() as client:
        for _ in range(3):
            await client.pmpro_bnb_transfer(amount="1", side=BnbTransferSide.TO_UM)
    calls = exchange.ledger.entries("pmpro_bnb_transfer")
    assert [e.status for e in calls] == [200, 200, 200]
    assert calls[2].monotonic - calls[0].monotonic >= 600


@fake_time
@pytest.mark.parametrize("time_scale", [1.0, 60.0])
async def test_governed_burst_never_puts_a_window_over_its_limit(time_scale: float) -> None:
    """25 universal transfers at once (10 fit a window): all succeed, no 429, no window over."""
    exchange = SimulatedExchange(
        limits=Limits(sapi_uid=9000, time_scale=time_scale), clock=LoopClock(epoch=EPOCH)
    )
    exchange.add_demo_account()
    async with exchange.client() as client, anyio.create_task_group() as tg:
        for _ in range(25):
            tg.start_soon(lambda: client.transfer_to_futures(asset="USDT", amount="1"))
    transfers = exchange.ledger.entries("universal_transfer")
    assert [e.status for e in transfers] == [200] * 25
    assert exchange.ledger.over_limit() == []
    windows = {c.window for e in transfers for c in e.charges}
    assert len(windows) >= 3


def _pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
async def test_client_with_asymmetric_keys(kind: str) -> None:
    """The client's RSA and Ed25519 signatures verify with the public key the exchange holds."""
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ed25519.Ed25519PrivateKey.generate()
    )
    exchange = SimulatedExchange()
    account = exchange.add_account(
        api_secret=private.public_key(), balances={"MAIN": {"USDT": "9"}}
    )
    async with Client(
        account.api_key.key,
        _pem(private),
        transport=exchange.transport(),
        api_url=exchange.api_url,
        papi_url=exchange.papi_url,
    ) as client:
        await client.transfer(type=TransferType.MAIN_FUNDING, asset="USDT", amount="4")
    assert account.balance("USDT", "FUNDING") == Decimal(4)


def test_in_process_exchange_runs_under_trio() -> None:
    """The in-process transport, app and faults use anyio only: a client under trio works."""
    import trio

    async def main() -> Decimal:
        exchange = SimulatedExchange()
        account = exchange.add_demo_account()
        exchange.faults.add(Fault.latency(0.001))
        async with exchange.client() as client:
            await client.transfer(type=TransferType.MAIN_OPTION, asset="USDT", amount="3")
        return account.balance("USDT", "OPTION")

    assert trio.run(main) == Decimal(1003)


async def _collect_from_two_clients(exchange: SimulatedExchange, *, shared: bool) -> list[str]:
    """Three pm_collect_asset calls from each of two clients at once; the outcome of each."""
    governor = Governor(exchange.limits, clock=exchange.clock) if shared else None
    outcomes: list[str] = []

    async def collect(client: Client) -> None:
        try:
            await client.pm_collect_asset(asset="USDT")
            outcomes.append("ok")
        except BinanceTransfersError as exc:
            outcomes.append(type(exc).__name__)

    async with (
        exchange.client(governor=governor) as first,
        exchange.client(governor=governor) as second,
        anyio.create_task_group() as tg,
    ):
        for client in (first, second, first, second, first, second):
            tg.start_soon(collect, client)
    return outcomes


@fake_time
async def test_two_governors_started_together_behind_one_ip_do_not_overrun_it() -> None:
    """Unshared governors started together stay under /papi's limit from the start.

    Started 10 s into Binance's minute, each cold governor used to warm at its
    first answer and send the rest blind at once: 120 of 100, one 429. A heavy
    pool now warms only at an answer written two round trips after its start,
    which counts the other's first request (its clock sync, then that request),
    so both share from their first window: every call executes, no 429."""
    exchange = SimulatedExchange(limits=Limits(papi_ip=100), clock=LoopClock(epoch=EPOCH + 10))
    exchange.add_demo_account()
    outcomes = await _collect_from_two_clients(exchange, shared=False)
    assert outcomes == ["ok"] * 6
    statuses = [e.status for e in exchange.ledger.entries("pm_collect_asset")]
    assert set(statuses) == {200}, statuses
    assert exchange.ledger.over_limit() == []


@fake_time
async def test_one_shared_governor_keeps_both_clients_under_the_limit() -> None:
    """The same six calls through one shared governor: no 429, every call executed."""
    exchange = SimulatedExchange(limits=Limits(papi_ip=100), clock=LoopClock(epoch=EPOCH))
    exchange.add_demo_account()
    outcomes = await _collect_from_two_clients(exchange, shared=True)
    assert outcomes == ["ok"] * 6
    assert {e.status for e in exchange.ledger.entries("pm_collect_asset")} == {200}
    assert exchange.ledger.over_limit() == []


async def test_a_derived_endpoint_table_drives_both_sides() -> None:
    """Universal transfer re-weighted to 300: the sim charges 300, the client reads that table."""
    table = ENDPOINTS.evolve("universal_transfer", uid_weight=300)
    exchange = SimulatedExchange(endpoints=table)
    exchange.add_demo_account()
    async with exchange.client() as client:
        assert client.endpoints is table
        await client.transfer_to_futures(asset="USDT", amount="1")
    [entry] = exchange.ledger.entries("universal_transfer")
    assert [(c.kind, c.weight) for c in entry.charges] == [(PoolKind.UID, 300)]
