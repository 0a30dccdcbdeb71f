"""Balances, transfer rules and histories, driven by hand-built requests."""

from __future__ import annotations

from decimal import Decimal

import anyio
import pytest

from binance_transfers.sim import Account, SimulatedExchange, Wallet

from .conftest import MASTER_EMAIL, SUB_EMAIL, Wire, body, error_code, fake_time

DAY = 24 * 3600


def transfer(
    kind: str, amount: str = "1", asset: str = "USDT", **symbols: str
) -> list[tuple[str, str]]:
    return [("type", kind), ("asset", asset), ("amount", amount), *symbols.items()]


async def test_universal_transfer_moves_between_wallets_exactly(
    wire: Wire, master: Account
) -> None:
    """MAIN_UMFUTURE of 0.12345678 debits spot and credits futures to the last decimal."""
    response = await wire.call("universal_transfer", transfer("MAIN_UMFUTURE", "0.12345678"))
    assert response.status_code == 200
    tran_id = body(response)["tranId"]
    assert isinstance(tran_id, int)
    assert master.balance("USDT") == Decimal("999.87654322")
    assert master.balance("USDT", Wallet.UMFUTURE) == Decimal("500.12345678")
    assert master.transfers[-1].tran_id == tran_id


async def test_insufficient_balance_is_5013_and_moves_nothing(wire: Wire, master: Account) -> None:
    """More than the source holds: HTTP 400 -5013, both balances unchanged, no history row."""
    response = await wire.call("universal_transfer", transfer("MARGIN_MAIN", "100.00000001"))
    assert response.status_code == 400
    assert body(response) == {"code": -5013, "msg": "Asset transfer failed: insufficient balance"}
    assert master.balance("USDT", "MARGIN") == Decimal(100)
    assert master.balance("USDT") == Decimal(1000)
    assert master.transfers == []


@pytest.mark.parametrize(
    ("params", "code", "fragment"),
    [
        ([("asset", "USDT"), ("amount", "1")], -1102, "'type'"),
        ([("type", "MAIN_UMFUTURE"), ("amount", "1")], -1102, "'asset'"),
        ([("type", "MAIN_UMFUTURE"), ("asset", "USDT")], -1102, "'amount'"),
        (transfer("MAIN_NOWHERE"), -1130, "'type'"),
        (transfer("MAIN_UMFUTURE", "1e3"), -1100, "'amount'"),
        (transfer("MAIN_UMFUTURE", "0"), -1130, "'amount'"),
        (transfer("MAIN_UMFUTURE", "0.000000001"), -1111, "Precision"),
        (transfer("MAIN_UMFUTURE", asset="us dt"), -1100, "'asset'"),
        (transfer("ISOLATEDMARGIN_MARGIN"), -1102, "'fromSymbol'"),
        (transfer("MARGIN_ISOLATEDMARGIN"), -1102, "'toSymbol'"),
        (
            transfer("ISOLATEDMARGIN_ISOLATEDMARGIN", fromSymbol="BNBUSDT", toSymbol="BNBUSDT"),
            -1130,
            "'toSymbol'",
        ),
    ],
)
async def test_universal_transfer_parameter_errors(
    wire: Wire, master: Account, params: list[tuple[str, str]], code: int, fragment: str
) -> None:
    """Missing (-1102), malformed (-1100), invalid (-1130) and too precise (-1111) parameters."""
    response = await wire.call("universal_transfer", params)
    assert response.status_code == 400
    assert error_code(response) == code
    assert fragment in body(response)["msg"]
    assert master.transfers == []


async def test_isolated_margin_symbols_pick_the_pair_wallet(wire: Wire, master: Account) -> None:
    """ISOLATEDMARGIN_MARGIN debits the fromSymbol pair, MARGIN_ISOLATEDMARGIN credits toSymbol."""
    out = await wire.call(
        "universal_transfer", transfer("ISOLATEDMARGIN_MARGIN", "20", fromSymbol="BNBUSDT")
    )
    assert out.status_code == 200
    into = await wire.call(
        "universal_transfer", transfer("MARGIN_ISOLATEDMARGIN", "5", toSymbol="BTCUSDT")
    )
    assert into.status_code == 200
    assert master.balance("USDT", "ISOLATEDMARGIN", "BNBUSDT") == Decimal(30)
    assert master.balance("USDT", "ISOLATEDMARGIN:BTCUSDT") == Decimal(5)
    assert master.balance("USDT", "MARGIN") == Decimal(115)
    empty = await wire.call(
        "universal_transfer", transfer("ISOLATEDMARGIN_MARGIN", fromSymbol="ETHUSDT")
    )
    assert error_code(empty) == -5013


async def test_portfolio_margin_wallet_needs_a_portfolio_margin_account(
    wire: Wire, exchange: SimulatedExchange, master: Account
) -> None:
    """MAIN_PORTFOLIO_MARGIN: -21001 for a plain account, accepted once the account is PM."""
    refused = await wire.call("universal_transfer", transfer("MAIN_PORTFOLIO_MARGIN"))
    assert body(refused) == {"code": -21001, "msg": "Request ID is not a Portfolio Margin Account."}
    master.portfolio_margin = True
    assert (
        await wire.call("universal_transfer", transfer("MAIN_PORTFOLIO_MARGIN"))
    ).status_code == 200
    assert master.balance("USDT", "PORTFOLIO_MARGIN") == Decimal(1)


async def test_transfer_history_pages_newest_first(wire: Wire, master: Account) -> None:
    """25 transfers, size 10: pages of 10, 10, 5, total 25 each, newest first, string amounts."""
    for n in range(1, 26):
        assert (
            await wire.call("universal_transfer", transfer("MAIN_UMFUTURE", str(n)))
        ).status_code == 200
    await wire.call("universal_transfer", transfer("MAIN_MARGIN"))  # another type: not listed
    pages = [
        body(
            await wire.call(
                "transfer_history", [("type", "MAIN_UMFUTURE"), ("current", str(c)), ("size", "10")]
            )
        )
        for c in (1, 2, 3)
    ]
    assert [p["total"] for p in pages] == [25, 25, 25]
    amounts = [row["amount"] for p in pages for row in p["rows"]]
    assert amounts == [str(n) for n in range(25, 0, -1)]
    row = pages[0]["rows"][0]
    assert set(row) == {"asset", "amount", "type", "status", "tranId", "timestamp"}
    assert (row["type"], row["status"], row["asset"]) == ("MAIN_UMFUTURE", "CONFIRMED", "USDT")
    default = body(await wire.call("transfer_history", [("type", "MAIN_UMFUTURE")]))
    assert len(default["rows"]) == 10  # size defaults to 10
    beyond = body(
        await wire.call(
            "transfer_history", [("type", "MAIN_UMFUTURE"), ("current", "4"), ("size", "10")]
        )
    )
    assert beyond == {"total": 25}


async def test_transfer_history_when_empty_and_bad_paging(wire: Wire) -> None:
    """Nothing: {"total": 0} without rows; size > 100 or current 0: -1130; type is mandatory."""
    assert body(await wire.call("transfer_history", [("type", "FUNDING_MAIN")])) == {"total": 0}
    assert (
        error_code(await wire.call("transfer_history", [("type", "FUNDING_MAIN"), ("size", "101")]))
        == -1130
    )
    assert (
        error_code(
            await wire.call("transfer_history", [("type", "FUNDING_MAIN"), ("current", "0")])
        )
        == -1130
    )
    assert error_code(await wire.call("transfer_history", [])) == -1102


@fake_time
async def test_transfer_history_defaults_to_the_last_seven_days(wire: Wire) -> None:
    """Without times only the last 7 days are listed; startTime reaches further back."""
    start = wire.exchange.server_ms()
    await wire.call("universal_transfer", transfer("MAIN_UMFUTURE", "1"))
    await anyio.sleep(8 * DAY)
    await wire.call("universal_transfer", transfer("MAIN_UMFUTURE", "2"))
    recent = body(await wire.call("transfer_history", [("type", "MAIN_UMFUTURE")]))
    assert [r["amount"] for r in recent["rows"]] == ["2"]
    everything = body(
        await wire.call("transfer_history", [("type", "MAIN_UMFUTURE"), ("startTime", str(start))])
    )
    assert [r["amount"] for r in everything["rows"]] == ["2", "1"]
    until = body(
        await wire.call(
            "transfer_history", [("type", "MAIN_UMFUTURE"), ("endTime", str(start + 1000))]
        )
    )
    assert [r["amount"] for r in until["rows"]] == ["1"]


# -- Portfolio Margin --------------------------------------------------------------


@pytest.fixture
def pm(master: Account) -> Account:
    master.portfolio_margin = True
    master.pm_pro = True
    return master


async def test_pm_endpoints_refuse_accounts_without_portfolio_margin(
    wire: Wire, master: Account
) -> None:
    """Every /papi and PM Pro endpoint answers -21001 to a plain account and moves nothing."""
    before = master.balances()
    calls = [
        ("pm_collect_asset", [("asset", "USDT")]),
        ("pm_auto_collect", []),
        ("pm_bnb_transfer", [("amount", "1"), ("transferSide", "TO_UM")]),
        ("pmpro_collect_asset", [("asset", "USDT")]),
        ("pmpro_auto_collect", []),
        ("pmpro_bnb_transfer", [("amount", "1"), ("transferSide", "TO_UM")]),
    ]
    for name, params in calls:
        response = await wire.call(name, params)
        assert (name, error_code(response)) == (name, -21001)
    assert master.balances() == before


async def test_pm_pro_needs_its_own_flag(wire: Wire, master: Account) -> None:
    """A classic PM account is not a PM Pro one: /papi works, /sapi/v1/portfolio is -21001."""
    master.portfolio_margin = True
    assert (await wire.call("pm_auto_collect")).status_code == 200
    assert error_code(await wire.call("pmpro_auto_collect")) == -21001


async def test_collect_asset_moves_the_asset_from_both_futures_wallets(
    wire: Wire, pm: Account
) -> None:
    """Fund collection by asset: all USDT from USDⓈ-M and COIN-M to margin, nothing else."""
    response = await wire.call("pm_collect_asset", [("asset", "USDT")])
    assert body(response) == {"msg": "success"}
    assert pm.balance("USDT", "MARGIN") == Decimal(620)
    assert pm.balance("USDT", "UMFUTURE") == pm.balance("USDT", "CMFUTURE") == 0
    assert pm.balance("BTC", "CMFUTURE") == Decimal(1)


async def test_collect_asset_with_amount_and_future_type(wire: Wire, pm: Account) -> None:
    """amount + futureType collect part of one wallet; one without the other is -1128."""
    partial = await wire.call(
        "pm_collect_asset", [("asset", "USDT"), ("amount", "12.5"), ("futureType", "UM")]
    )
    assert partial.status_code == 200
    assert pm.balance("USDT", "UMFUTURE") == Decimal("487.5")
    assert pm.balance("USDT", "CMFUTURE") == Decimal(20)
    alone = await wire.call("pm_collect_asset", [("asset", "USDT"), ("amount", "1")])
    assert error_code(alone) == -1128
    too_much = await wire.call(
        "pm_collect_asset", [("asset", "USDT"), ("amount", "21"), ("futureType", "CM")]
    )
    assert error_code(too_much) == -5013


@pytest.mark.parametrize("name", ["pm_collect_asset", "pmpro_collect_asset"])
async def test_bnb_is_not_collectable(wire: Wire, pm: Account, name: str) -> None:
    """Collecting BNB by asset is refused (-1130 on 'asset'); BNB stays in futures."""
    response = await wire.call(name, [("asset", "BNB")])
    assert body(response) == {"code": -1130, "msg": "Data sent for parameter 'asset' is not valid."}
    assert pm.balance("BNB", "UMFUTURE") == Decimal(3)


@pytest.mark.parametrize("name", ["pm_auto_collect", "pmpro_auto_collect"])
async def test_auto_collection_moves_everything_but_bnb(wire: Wire, pm: Account, name: str) -> None:
    """Auto-collection empties both futures wallets into margin, except BNB."""
    assert body(await wire.call(name)) == {"msg": "success"}
    assert pm.holdings("UMFUTURE") == {"BNB": Decimal(3)}
    assert pm.holdings("CMFUTURE") == {}
    assert pm.holdings("MARGIN") == {"USDT": Decimal(620), "BNB": Decimal(5), "BTC": Decimal(1)}


@pytest.mark.parametrize("name", ["pm_bnb_transfer", "pmpro_bnb_transfer"])
async def test_bnb_transfer_both_ways(wire: Wire, pm: Account, name: str) -> None:
    """TO_UM moves BNB margin -> USDⓈ-M, FROM_UM back; a bad side is -1130, too much -5013."""
    # Refused calls do not use up the rolling cap (PM Pro allows only 2 per 10 min).
    assert (
        error_code(await wire.call(name, [("amount", "1"), ("transferSide", "SIDEWAYS")])) == -1130
    )
    to_um = await wire.call(name, [("amount", "2"), ("transferSide", "TO_UM")])
    assert isinstance(body(to_um)["tranId"], int)
    assert (pm.balance("BNB", "MARGIN"), pm.balance("BNB", "UMFUTURE")) == (Decimal(3), Decimal(5))
    await wire.call(name, [("amount", "0.5"), ("transferSide", "FROM_UM")])
    assert (pm.balance("BNB", "MARGIN"), pm.balance("BNB", "UMFUTURE")) == (
        Decimal("3.5"),
        Decimal("4.5"),
    )
    if name == "pm_bnb_transfer":  # PM Pro's cap is spent by now
        too_much = await wire.call(name, [("amount", "100"), ("transferSide", "TO_UM")])
        assert error_code(too_much) == -5013


# -- sub-accounts ----------------------------------------------------------------


async def test_sub_account_margin_transfer(wire: Wire, master: Account) -> None:
    """type 1: sub spot -> sub margin; type 2 back; txnId is a string."""
    sub = master.sub_accounts[SUB_EMAIL]
    response = await wire.call(
        "sub_account_margin_transfer",
        [("email", SUB_EMAIL), ("asset", "USDT"), ("amount", "60"), ("type", "1")],
    )
    txn = body(response)["txnId"]
    assert isinstance(txn, str) and txn.isdigit()
    await wire.call(
        "sub_account_margin_transfer",
        [("email", SUB_EMAIL), ("asset", "USDT"), ("amount", "10"), ("type", "2")],
    )
    assert (sub.balance("USDT"), sub.balance("USDT", "MARGIN")) == (Decimal(150), Decimal(50))
    assert master.balance("USDT") == 1000  # the master's own wallets are untouched


@pytest.mark.parametrize(
    ("email", "kind", "code"),
    [
        ("stranger@example.com", "1", -5021),
        (SUB_EMAIL, "3", -1130),
        (SUB_EMAIL, "one", -1100),
    ],
)
async def test_sub_account_margin_transfer_errors(
    wire: Wire, master: Account, email: str, kind: str, code: int
) -> None:
    """Not our sub-account: -5021; a type other than 1/2: -1130; not a number: -1100."""
    response = await wire.call(
        "sub_account_margin_transfer",
        [("email", email), ("asset", "USDT"), ("amount", "1"), ("type", kind)],
    )
    assert error_code(response) == code


async def test_sub_account_without_margin_account(wire: Wire, master: Account) -> None:
    """A sub-account whose margin account is not opened: -3003."""
    master.add_sub_account("nomargin@example.com", balances={"MAIN": {"USDT": "5"}}, margin=False)
    response = await wire.call(
        "sub_account_margin_transfer",
        [("email", "nomargin@example.com"), ("asset", "USDT"), ("amount", "1"), ("type", "1")],
    )
    assert body(response) == {"code": -3003, "msg": "Margin account does not exist."}


def sub_transfer(**fields: str) -> list[tuple[str, str]]:
    base = {"fromAccountType": "SPOT", "toAccountType": "SPOT", "asset": "USDT", "amount": "1"}
    base.update(fields)
    return list(base.items())


async def test_sub_account_transfer_between_master_and_sub(wire: Wire, master: Account) -> None:
    """Master spot -> sub futures and back; the answer echoes clientTranId."""
    sub = master.sub_accounts[SUB_EMAIL]
    out = await wire.call(
        "sub_account_transfer",
        sub_transfer(
            toEmail=SUB_EMAIL, toAccountType="USDT_FUTURE", amount="30", clientTranId="a-1"
        ),
    )
    assert body(out)["clientTranId"] == "a-1"
    assert isinstance(body(out)["tranId"], int)
    back = await wire.call(
        "sub_account_transfer",
        sub_transfer(fromEmail=SUB_EMAIL, fromAccountType="USDT_FUTURE", amount="5"),
    )
    assert set(body(back)) == {"tranId"}
    assert sub.balance("USDT", "UMFUTURE") == 25
    assert master.balance("USDT") == 975


async def test_client_tran_id_must_be_unique(wire: Wire, master: Account) -> None:
    """A used clientTranId is refused with -4115 and moves nothing; a refused one is not used up."""
    first = await wire.call(
        "sub_account_transfer", sub_transfer(toEmail=SUB_EMAIL, clientTranId="dup")
    )
    assert first.status_code == 200
    again = await wire.call(
        "sub_account_transfer", sub_transfer(toEmail=SUB_EMAIL, clientTranId="dup")
    )
    assert (again.status_code, body(again)) == (
        400,
        {"code": -4115, "msg": "clientTranId is duplicated"},
    )
    assert master.sub_accounts[SUB_EMAIL].balance("USDT") == 201
    assert master.balance("USDT") == 999
    assert len(master.sub_account_transfers) == 1
    [refused] = wire.exchange.ledger.entries("sub_account_transfer", executed=False)
    assert (refused.code, refused.params["clientTranId"]) == (-4115, "dup")
    broke = await wire.call(
        "sub_account_transfer", sub_transfer(toEmail=SUB_EMAIL, amount="5000", clientTranId="x")
    )
    assert error_code(broke) == -5013
    assert (
        await wire.call("sub_account_transfer", sub_transfer(toEmail=SUB_EMAIL, clientTranId="x"))
    ).status_code == 200


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({}, -1102),  # same types, no e-mail
        ({"toEmail": "stranger@example.com"}, -5021),
        ({"toEmail": SUB_EMAIL, "toAccountType": "ISOLATED_MARGIN"}, -1102),  # no symbol
        (
            {"toEmail": SUB_EMAIL, "fromAccountType": "USDT_FUTURE", "toAccountType": "MARGIN"},
            -9000,
        ),
        ({"fromEmail": SUB_EMAIL, "toEmail": SUB_EMAIL}, -9000),  # to itself
        ({"toEmail": SUB_EMAIL, "toAccountType": "ALPHA"}, -1130),
    ],
)
async def test_sub_account_transfer_rules(
    wire: Wire, master: Account, fields: dict[str, str], code: int
) -> None:
    """Binance's rules: an e-mail when types match, our own sub-accounts, listed scenarios only."""
    response = await wire.call("sub_account_transfer", sub_transfer(**fields))
    assert error_code(response) == code
    assert master.sub_account_transfers == []


async def test_sub_account_endpoints_are_for_masters_only(
    wire: Wire, exchange: SimulatedExchange, master: Account
) -> None:
    """A sub-account's own key cannot call the master endpoints: -1002."""
    sub = master.sub_accounts[SUB_EMAIL]
    key = sub.add_api_key()
    assert key.secret is not None
    response = await wire.call("sub_account_transfer_history", key=key.key, secret=key.secret)
    assert (response.status_code, error_code(response)) == (401, -1002)


async def test_sub_account_history_pages_and_filters(wire: Wire, master: Account) -> None:
    """page/limit paging, newest first; by default rows from the master; clientTranId finds one."""
    for n in range(1, 6):
        await wire.call(
            "sub_account_transfer",
            sub_transfer(toEmail=SUB_EMAIL, amount=str(n), clientTranId=f"t{n}"),
        )
    await wire.call(
        "sub_account_transfer", sub_transfer(fromEmail=SUB_EMAIL, amount="9", clientTranId="back")
    )
    first = body(await wire.call("sub_account_transfer_history", [("page", "1"), ("limit", "2")]))
    third = body(await wire.call("sub_account_transfer_history", [("page", "3"), ("limit", "2")]))
    assert (
        first["totalCount"] == third["totalCount"] == 5
    )  # the sub -> master one is not "from master"
    assert [r["amount"] for r in first["result"]] == ["5", "4"]
    assert [r["amount"] for r in third["result"]] == ["1"]
    row = first["result"][0]
    assert row["fromEmail"] == MASTER_EMAIL and row["toEmail"] == SUB_EMAIL
    assert (row["status"], row["clientTranId"], row["fromAccountType"]) == ("SUCCESS", "t5", "SPOT")
    back = body(await wire.call("sub_account_transfer_history", [("clientTranId", "back")]))
    assert [r["amount"] for r in back["result"]] == ["9"]
    to_master = body(await wire.call("sub_account_transfer_history", [("toEmail", MASTER_EMAIL)]))
    assert to_master["totalCount"] == 1


async def test_sub_account_history_parameter_rules(wire: Wire) -> None:
    """Both e-mails: -1128; a range of 7 days or more: -1127; limit over 500: -1130."""
    both = await wire.call(
        "sub_account_transfer_history", [("fromEmail", SUB_EMAIL), ("toEmail", MASTER_EMAIL)]
    )
    assert error_code(both) == -1128
    week = 7 * DAY * 1000
    too_long = await wire.call(
        "sub_account_transfer_history", [("startTime", "0"), ("endTime", str(week))]
    )
    assert body(too_long) == {
        "code": -1127,
        "msg": "More than 168 hours between startTime and endTime.",
    }
    assert (
        await wire.call(
            "sub_account_transfer_history", [("startTime", "0"), ("endTime", str(week - 1))]
        )
    ).status_code == 200
    assert error_code(await wire.call("sub_account_transfer_history", [("limit", "501")])) == -1130


def test_balances_are_decimal_and_floats_are_refused(exchange: SimulatedExchange) -> None:
    """Accounts hold Decimals; a float amount is refused rather than rounded."""
    account = exchange.add_account(balances={"MAIN": {"USDT": "0.1"}})
    account.deposit("USDT", "0.2")
    assert account.balance("USDT") == Decimal("0.3")
    with pytest.raises(TypeError):
        account.deposit("USDT", 0.1)  # type: ignore[arg-type]
    assert account.balances() == {"MAIN": {"USDT": Decimal("0.3")}}
