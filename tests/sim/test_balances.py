"""Balance reads against the simulated exchange: typed, governed, and in step with transfers."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from binance_transfers import (
    ENDPOINTS,
    Client,
    FuturesMarket,
    Governor,
    InvalidInputError,
    Limits,
    LoopClock,
    MarginTransferDirection,
    NotPortfolioMarginError,
    OutcomeUnknownError,
    PoolKind,
    ThrottledError,
    TransferType,
    pools_for,
)
from binance_transfers._models import MarginTransferDirection as Direction
from binance_transfers._settle_balances import MarginTransferBaseline, verdict
from binance_transfers.sim import Account, Fault, SimulatedExchange

from .conftest import EPOCH, fake_time

DESK = "desk-1@sim.invalid"


async def test_futures_balances_follow_a_transfer(
    binance_client: Client, binance_sim_account: Account
) -> None:
    """USDⓈ-M balance read, transfer to futures, read again: the transfer shows, as Decimal."""
    before = {r.asset: r for r in await binance_client.futures_balances()}
    await binance_client.transfer_to_futures(asset="USDT", amount="40.5")
    after = {r.asset: r for r in await binance_client.futures_balances()}
    assert after["USDT"].balance - before["USDT"].balance == Decimal("40.5")
    assert isinstance(after["USDT"].balance, Decimal)
    assert after["USDT"].transferable == binance_sim_account.balance("USDT", "UMFUTURE")


async def test_coin_m_balances_come_from_the_cm_wallet(
    binance_client: Client, binance_sim_account: Account
) -> None:
    """COIN-M reads the CMFUTURE wallet; its transferable amount is withdrawAvailable."""
    await binance_client.transfer(type=TransferType.MAIN_CMFUTURE, asset="BTC", amount="0.25")
    (btc,) = await binance_client.futures_balances(market=FuturesMarket.COINM)
    assert btc.asset == "BTC"
    assert btc.balance == Decimal("1.25") == binance_sim_account.balance("BTC", "CMFUTURE")
    assert btc.withdraw_available == Decimal("1.25")
    assert btc.max_withdraw_amount is None


async def test_spot_and_funding_follow_a_transfer(binance_client: Client) -> None:
    """MAIN_FUNDING moves money from the spot read to the funding read."""
    (spot,) = await binance_client.spot_balances(asset="USDT")
    (funding,) = await binance_client.funding_balances(asset="USDT")
    await binance_client.transfer(type=TransferType.MAIN_FUNDING, asset="USDT", amount="7")
    (spot2,) = await binance_client.spot_balances(asset="USDT")
    (funding2,) = await binance_client.funding_balances(asset="USDT")
    assert spot.free - spot2.free == Decimal(7)
    assert funding2.free - funding.free == Decimal(7)


async def test_margin_account_and_wallet_overview(
    binance_client: Client, binance_sim_account: Account
) -> None:
    """Cross margin rows match the wallet; the overview values wallets in the quote asset."""
    await binance_client.transfer(type=TransferType.MAIN_MARGIN, asset="USDT", amount="1")
    row = (await binance_client.margin_account()).asset("USDT")
    assert row is not None
    assert row.free == binance_sim_account.balance("USDT", "MARGIN") == Decimal("100001")
    overview = {w.wallet_name: w.balance for w in await binance_client.wallet_balances()}
    # 100001 USDT + 100 BNB at the simulator's prices (BNB 1000, BTC 100000), in BTC.
    assert overview["Cross Margin"] == Decimal("2.00001") + Decimal("0.01")  # + PM wallet
    in_usdt = await binance_client.wallet_balances(quote_asset="USDT")
    assert {w.wallet_name for w in in_usdt} >= {"Spot", "Funding", "USDⓈ-M Futures"}


async def test_portfolio_margin_balances_and_account(binance_client: Client) -> None:
    """PM (/papi) and PM Pro (/sapi) balances sum margin and futures wallets; equity in USD."""
    (usdt,) = await binance_client.pm_balances(asset="USDT")
    assert usdt.total_wallet_balance == (
        usdt.cross_margin_free + usdt.um_wallet_balance + usdt.cm_wallet_balance
    )
    assert usdt.cm_unrealized_pnl is None  # Binance's "" is no amount, not zero
    await binance_client.transfer_to_futures(asset="USDT", amount="5")
    (after,) = await binance_client.pmpro_balances(asset="USDT")
    assert after.um_wallet_balance - usdt.um_wallet_balance == Decimal(5)
    account = await binance_client.pm_account()
    assert account.account_status == "NORMAL"
    assert account.account_equity is not None and account.account_equity > 0


async def test_portfolio_margin_refused_for_other_accounts(binance_sim: SimulatedExchange) -> None:
    """An account without Portfolio Margin gets NotPortfolioMarginError from /papi/v1/balance."""
    plain = binance_sim.add_account(balances={"MAIN": {"USDT": "1"}})
    async with binance_sim.client(plain) as client:
        with pytest.raises(NotPortfolioMarginError):
            await client.pm_balances()


async def test_sub_account_views_follow_a_margin_transfer(binance_client: Client) -> None:
    """The master's views of a sub-account show a sub-account margin transfer at once."""
    emails = [s.email for s in await binance_client.sub_accounts()]
    assert emails == ["desk-1@sim.invalid", "desk-2@sim.invalid"]
    spot = (await binance_client.sub_account_assets(email=DESK)).free("USDT")
    await binance_client.sub_account_margin_transfer(
        email=DESK, asset="USDT", amount="25", direction=MarginTransferDirection.SPOT_TO_MARGIN
    )
    assert spot - (await binance_client.sub_account_assets(email=DESK)).free("USDT") == 25
    margin = (await binance_client.sub_account_margin_account(email=DESK)).asset("USDT")
    assert margin is not None and margin.free == Decimal(1025)
    summary = await binance_client.sub_account_margin_summary()
    assert [row.email for row in summary.sub_account_list] == emails


async def test_sub_account_pages_are_merged(binance_sim: SimulatedExchange) -> None:
    """More sub-accounts than a page (200 list, 20 futures summary): every one comes back."""
    master = binance_sim.add_account(balances={"MAIN": {"USDT": "1"}})
    for n in range(205):
        master.add_sub_account(f"s{n:03}@sim.invalid", balances={"UMFUTURE": {"USDT": n}})
    async with binance_sim.client(master) as client:
        subs = await client.sub_accounts()
        summary = await client.sub_account_futures_summary()
    assert len(subs) == 205
    assert len(summary.sub_account_list) == 205
    assert summary.sub_account_list[-1].total_wallet_balance == Decimal(204)


async def test_a_bad_asset_is_refused_before_anything_is_sent(
    binance_client: Client, binance_sim: SimulatedExchange
) -> None:
    """A malformed asset is InvalidInputError, with no request and no weight spent."""
    with pytest.raises(InvalidInputError):
        await binance_client.spot_balances(asset="us dt")
    with pytest.raises(InvalidInputError):
        await binance_client.sub_account_assets(email="not-an-email")
    assert len(binance_sim.ledger) == 0


def test_balance_posts_are_reads() -> None:
    """getUserAsset and get-funding-asset are POSTs that only read: never treated as transfers."""
    assert not ENDPOINTS["user_assets"].mutating
    assert not ENDPOINTS["funding_assets"].mutating
    assert ENDPOINTS["universal_transfer"].mutating


async def test_post_reads_are_not_journaled(
    binance_sim: SimulatedExchange, binance_sim_account: Account, tmp_path: Path
) -> None:
    """A journaled client writes no intent for a POST read, and the ledger sees no duplicate."""
    async with binance_sim.client(binance_sim_account, journal=tmp_path / "j.sqlite") as client:
        await client.spot_balances()
        await client.spot_balances()
        await client.funding_balances()
        assert client.journal is not None
        assert await client.journal.rows() == []
    assert binance_sim.ledger.duplicates() == []
    assert binance_sim.ledger.resends() == []


def test_futures_hosts_have_their_own_pools() -> None:
    """fapi and dapi each draw from an IP pool of their own (2400 a minute), not from /api's."""
    limits = Limits()
    (um,) = pools_for(ENDPOINTS["um_balance"], limits, "a")
    (cm,) = pools_for(ENDPOINTS["cm_balance"], limits, "a")
    assert (um.key, um.limit, um.kind) == ("fapi-ip", 2400, PoolKind.IP)
    assert (cm.key, cm.limit, cm.kind) == ("dapi-ip", 2400, PoolKind.IP)
    assert um.header == cm.header == "x-mbx-used-weight-1m"


async def test_a_full_fapi_pool_does_not_hold_up_dapi() -> None:
    """With /fapi's minute used up, a USDⓈ-M read is throttled while a COIN-M read goes through."""
    limits = Limits(fapi_ip=5, dapi_ip=5)
    exchange = SimulatedExchange(limits=limits, clock=LoopClock(epoch=EPOCH))
    account = exchange.add_demo_account()
    async with exchange.client(account) as client:
        await client.futures_balances()
        with pytest.raises(ThrottledError):
            await client.futures_balances(max_wait=0)
        await client.futures_balances(market=FuturesMarket.COINM, max_wait=0)
    assert exchange.ledger.over_limit() == []


async def test_futures_reads_go_to_their_hosts() -> None:
    """USDⓈ-M reads go to fapi_url, COIN-M reads to dapi_url."""
    hosts: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        if request.url.path == "/api/v3/time":
            return httpx.Response(200, json={"serverTime": 1_767_225_600_000})
        return httpx.Response(200, json=[])

    async with Client(
        "k" * 64,
        "s" * 64,
        transport=httpx.MockTransport(answer),
        fapi_url="https://f.example",
        dapi_url="https://d.example",
        governor=Governor(),
    ) as client:
        assert await client.futures_balances() == ()
        assert await client.futures_balances(market=FuturesMarket.COINM) == ()
    assert hosts[-2:] == ["f.example", "d.example"]


# -- settling a sub-account margin transfer by balances ---------------------------


def _baseline(spot: str, margin: str) -> MarginTransferBaseline:
    return MarginTransferBaseline(
        email=DESK, asset="USDT", spot=Decimal(spot), margin=Decimal(margin), server_ms=0
    )


@pytest.mark.parametrize(
    ("spot", "margin", "direction", "expected"),
    [
        ("75", "1025", Direction.SPOT_TO_MARGIN, True),
        ("125", "975", Direction.MARGIN_TO_SPOT, True),
        ("100", "1000", Direction.SPOT_TO_MARGIN, False),
        ("75", "1000", Direction.SPOT_TO_MARGIN, None),  # spot moved, margin did not
        ("50", "1050", Direction.SPOT_TO_MARGIN, None),  # twice the amount: another transfer
        ("125", "975", Direction.SPOT_TO_MARGIN, None),  # the other way round
    ],
)
def test_verdict_table(spot: str, margin: str, direction: Direction, expected: bool | None) -> None:
    """Executed only if both legs moved by exactly the amount; not executed if neither did."""
    executed, _ = verdict(
        _baseline("100", "1000"),
        Decimal(spot),
        Decimal(margin),
        amount=Decimal(25),
        direction=direction,
    )
    assert executed is expected


@fake_time
@pytest.mark.parametrize("executes", [True, False])
async def test_unknown_margin_transfer_settled_by_balances(executes: bool) -> None:
    """A dropped sub-account margin transfer is settled by the balances, either way."""
    exchange = SimulatedExchange(clock=LoopClock(epoch=EPOCH))
    account = exchange.add_demo_account()
    exchange.faults.add(
        Fault.drop(executes=executes), endpoint="sub_account_margin_transfer", times=1
    )
    async with exchange.client(account, settle_margin=5.0) as client:
        baseline = await client.margin_transfer_baseline(email=DESK, asset="USDT")
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.sub_account_margin_transfer(
                email=DESK, asset="USDT", amount="30", direction=Direction.SPOT_TO_MARGIN
            )
        settlement = await client.reconcile_margin_transfer(caught.value, baseline)
    assert settlement.executed is executes
    assert exchange.ledger.times_executed("sub_account_margin_transfer") == int(executes)


@fake_time
async def test_balances_moved_by_something_else_cannot_settle() -> None:
    """If the asset moved otherwise meanwhile, the settlement says it cannot tell."""
    exchange = SimulatedExchange(clock=LoopClock(epoch=EPOCH))
    account = exchange.add_demo_account()
    exchange.faults.add(Fault.drop(), endpoint="sub_account_margin_transfer", times=1)
    async with exchange.client(account, settle_margin=5.0) as client:
        baseline = await client.margin_transfer_baseline(email=DESK, asset="USDT")
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.sub_account_margin_transfer(
                email=DESK, asset="USDT", amount="30", direction=Direction.SPOT_TO_MARGIN
            )
        account.sub_accounts[DESK].deposit("USDT", "1")  # the desk received something else
        settlement = await client.reconcile_margin_transfer(caught.value, baseline)
    assert settlement.executed is None
    assert "something else" in settlement.reason
