"""What the balance endpoints answer, read from the same books the transfers move.

Every answer is computed from :class:`~._state.Account` wallets at the moment
of the request, so a transfer is visible in the next balance read. Values in
another asset (the wallet overview, BTC valuations, Portfolio Margin equity in
USD) use :data:`PRICES`: fixed, since the simulator has no market.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._params import format_amount
from . import _errors as err
from ._params import Params
from ._state import Account, Wallet

if TYPE_CHECKING:
    from ._handlers import Context

__all__ = ["BALANCE_HANDLERS", "PRICES"]

#: USD prices the simulator values assets at (an asset missing here is worth 0).
PRICES: Mapping[str, Decimal] = {
    "USDT": Decimal(1),
    "USDC": Decimal(1),
    "BUSD": Decimal(1),
    "FDUSD": Decimal(1),
    "BTC": Decimal(100000),
    "ETH": Decimal(4000),
    "BNB": Decimal(1000),
}
_ZERO = Decimal(0)
_EIGHT = Decimal("0.00000001")
_ACCOUNT_ALIAS = "SimA"
#: The wallets of Binance's overview, in its order, and the books behind each.
_OVERVIEW: tuple[tuple[str, tuple[Wallet, ...]], ...] = (
    ("Spot", (Wallet.MAIN,)),
    ("Funding", (Wallet.FUNDING,)),
    ("Cross Margin", (Wallet.MARGIN, Wallet.PORTFOLIO_MARGIN)),
    ("Isolated Margin", (Wallet.ISOLATEDMARGIN,)),
    ("USDⓈ-M Futures", (Wallet.UMFUTURE,)),
    ("COIN-M Futures", (Wallet.CMFUTURE,)),
    ("Earn", ()),
    ("Options", (Wallet.OPTION,)),
    ("Trading Bots", ()),
    ("Copy Trading", ()),
)


def _amount(value: Decimal) -> str:
    return format_amount(value) if value else "0"


def _value(holdings: Iterable[tuple[str, Decimal]], quote: str) -> Decimal:
    """What ``holdings`` are worth in ``quote``, to Binance's 8 decimals."""
    price = PRICES.get(quote)
    if not price:
        return _ZERO
    usd = sum((amount * PRICES.get(asset, _ZERO) for asset, amount in holdings), _ZERO)
    return (usd / price).quantize(_EIGHT)


def _wallet(account: Account, wallet: Wallet) -> dict[str, Decimal]:
    if wallet is Wallet.ISOLATEDMARGIN:
        total: dict[str, Decimal] = {}
        for symbol in account.isolated_symbols():
            for asset, amount in account.holdings(wallet, symbol).items():
                total[asset] = total.get(asset, _ZERO) + amount
        return total
    return account.holdings(wallet)


def _sub(ctx: Context, p: Params) -> Account:
    email = p.required("email")
    sub = ctx.master.sub_accounts.get(email)
    if sub is None:
        raise err.no_relation()
    return sub


def wallet_balance(ctx: Context, p: Params) -> tuple[Any, object]:
    quote = p.optional("quoteAsset") or "BTC"
    account = ctx.caller
    rows = []
    for name, wallets in _OVERVIEW:
        held = [item for w in wallets for item in _wallet(account, w).items()]
        rows.append({"activate": True, "balance": _amount(_value(held, quote)), "walletName": name})
    return rows, None


def _asset_rows(
    holdings: Mapping[str, Decimal], p: Params, *, ipoable: bool
) -> list[dict[str, Any]]:
    wanted = p.optional("asset")
    valued = p.optional("needBtcValuation") == "true"
    rows = []
    for asset, amount in sorted(holdings.items()):
        if amount <= 0 or (wanted is not None and asset != wanted):
            continue
        row: dict[str, Any] = {
            "asset": asset,
            "free": _amount(amount),
            "locked": "0",
            "freeze": "0",
            "withdrawing": "0",
        }
        if ipoable:
            row["ipoable"] = "0"
        row["btcValuation"] = _amount(_value([(asset, amount)], "BTC")) if valued else "0"
        rows.append(row)
    return rows


def user_assets(ctx: Context, p: Params) -> tuple[Any, object]:
    return _asset_rows(ctx.caller.holdings(Wallet.MAIN), p, ipoable=True), None


def funding_assets(ctx: Context, p: Params) -> tuple[Any, object]:
    return _asset_rows(ctx.caller.holdings(Wallet.FUNDING), p, ipoable=False), None


def _margin_rows(holdings: Mapping[str, Decimal]) -> list[dict[str, str]]:
    return [
        {
            "asset": asset,
            "borrowed": "0",
            "free": _amount(amount),
            "interest": "0",
            "locked": "0",
            "netAsset": _amount(amount),
        }
        for asset, amount in sorted(holdings.items())
    ]


def _margin_totals(holdings: Mapping[str, Decimal]) -> dict[str, str]:
    total = _amount(_value(holdings.items(), "BTC"))
    return {"totalAssetOfBtc": total, "totalLiabilityOfBtc": "0", "totalNetAssetOfBtc": total}


def margin_account(ctx: Context, p: Params) -> tuple[Any, object]:
    account = ctx.caller
    held = account.holdings(Wallet.MARGIN)
    body = {
        "created": account.margin,
        "borrowEnabled": account.margin,
        "marginLevel": "999",
        **_margin_totals(held),
        "tradeEnabled": account.margin,
        "transferInEnabled": account.margin,
        "transferOutEnabled": account.margin,
        "accountType": "MARGIN_1",
        "userAssets": _margin_rows(held),
    }
    return body, None


def _futures_rows(account: Account, wallet: Wallet, coin_m: bool) -> list[dict[str, Any]]:
    rows = []
    for asset, amount in sorted(account.holdings(wallet).items()):
        row: dict[str, Any] = {
            "accountAlias": _ACCOUNT_ALIAS,
            "asset": asset,
            "balance": _amount(amount),
            "crossWalletBalance": _amount(amount),
            "crossUnPnl": "0",
            "availableBalance": _amount(amount),
        }
        if coin_m:
            row["withdrawAvailable"] = _amount(amount)
        else:
            row["maxWithdrawAmount"] = _amount(amount)
            row["marginAvailable"] = True
        row["updateTime"] = 0
        rows.append(row)
    return rows


def um_balance(ctx: Context, p: Params) -> tuple[Any, object]:
    return _futures_rows(ctx.caller, Wallet.UMFUTURE, coin_m=False), None


def cm_balance(ctx: Context, p: Params) -> tuple[Any, object]:
    return _futures_rows(ctx.caller, Wallet.CMFUTURE, coin_m=True), None


def _pm_holdings(account: Account) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    """Per asset: (cross margin, USDⓈ-M, COIN-M) of a Portfolio Margin account."""
    margin = dict(account.holdings(Wallet.MARGIN))
    for asset, amount in account.holdings(Wallet.PORTFOLIO_MARGIN).items():
        margin[asset] = margin.get(asset, _ZERO) + amount
    um, cm = account.holdings(Wallet.UMFUTURE), account.holdings(Wallet.CMFUTURE)
    assets = sorted(set(margin) | set(um) | set(cm))
    return {a: (margin.get(a, _ZERO), um.get(a, _ZERO), cm.get(a, _ZERO)) for a in assets}


def _pm_balance(ctx: Context, p: Params, pro: bool) -> tuple[Any, object]:
    account = ctx.caller
    if not (account.pm_pro if pro else account.portfolio_margin):
        raise err.not_portfolio_margin()
    rows = []
    for asset, (margin, um, cm) in _pm_holdings(account).items():
        rows.append(
            {
                "asset": asset,
                "totalWalletBalance": _amount(margin + um + cm),
                "crossMarginAsset": _amount(margin),
                "crossMarginBorrowed": "0",
                "crossMarginFree": _amount(margin),
                "crossMarginInterest": "0",
                "crossMarginLocked": "0",
                "umWalletBalance": _amount(um),
                "umUnrealizedPNL": "0",
                "cmWalletBalance": _amount(cm),
                "cmUnrealizedPNL": "",  # as Binance's own example shows it
                "updateTime": ctx.now_ms,
                "negativeBalance": "0",
            }
        )
    return rows, None


def pm_account(ctx: Context, p: Params) -> tuple[Any, object]:
    account = ctx.caller
    if not account.portfolio_margin:
        raise err.not_portfolio_margin()
    held = [(a, m + u + c) for a, (m, u, c) in _pm_holdings(account).items()]
    equity = _amount(_value(held, "USDT"))
    body = {
        "uniMMR": "999",
        "accountEquity": equity,
        "actualEquity": equity,
        "accountInitialMargin": "0",
        "accountMaintMargin": "0",
        "accountStatus": "NORMAL",
        "virtualMaxWithdrawAmount": equity,
        "totalAvailableBalance": equity,
        "totalMarginOpenLoss": "0",
        "updateTime": ctx.now_ms,
    }
    return body, None


def sub_account_list(ctx: Context, p: Params) -> tuple[Any, object]:
    master = ctx.master
    email = p.optional("email")
    page = p.page("page", default=1)
    limit = p.page("limit", default=1, high=200)  # Binance's default page holds one
    subs = [s for s in master.sub_accounts.values() if email is None or s.email == email]
    rows = [
        {
            "subUserId": s.uid,
            "email": s.email,
            "remark": "",
            "isFreeze": False,
            "createTime": 0,
            "isManagedSubAccount": False,
            "isAssetManagementSubAccount": False,
        }
        for s in subs[(page - 1) * limit : page * limit]
    ]
    return {"subAccounts": rows}, None


def sub_account_assets(ctx: Context, p: Params) -> tuple[Any, object]:
    sub = _sub(ctx, p)
    rows = [
        {"freeze": "0", "withdrawing": "0", "asset": a, "free": _amount(v), "locked": "0"}
        for a, v in sorted(sub.holdings(Wallet.MAIN).items())
    ]
    return {"balances": rows}, None


_USD_COINS = ("USDT", "BUSD")  # "USD": the sum of BUSD and USDT, as Binance's page says


def sub_account_futures_summary(ctx: Context, p: Params) -> tuple[Any, object]:
    futures_type = p.choice("futuresType", ("1", "2"))
    page = p.page("page", default=1)
    limit = p.page("limit", default=10, high=20)
    master = ctx.master
    subs = list(master.sub_accounts.values())[(page - 1) * limit : page * limit]
    rows = []
    if futures_type == "1":
        for sub in subs:
            held = sub.holdings(Wallet.UMFUTURE)
            total = _amount(sum((held.get(c, _ZERO) for c in _USD_COINS), _ZERO))
            rows.append(
                {
                    "email": sub.email,
                    "totalInitialMargin": "0",
                    "totalMaintenanceMargin": "0",
                    "totalMarginBalance": total,
                    "totalOpenOrderInitialMargin": "0",
                    "totalPositionInitialMargin": "0",
                    "totalUnrealizedProfit": "0",
                    "totalWalletBalance": total,
                    "asset": "USD",
                }
            )
        grand = _amount(sum((Decimal(r["totalWalletBalance"]) for r in rows), _ZERO))
        summary = {
            "totalMarginBalance": grand,
            "totalUnrealizedProfit": "0",
            "totalWalletBalance": grand,
            "asset": "USD",
            "subAccountList": rows,
        }
        return {"futureAccountSummaryResp": summary}, None
    for sub in subs:
        btc = _amount(_value(sub.holdings(Wallet.CMFUTURE).items(), "BTC"))
        rows.append(
            {
                "email": sub.email,
                "totalMarginBalance": btc,
                "totalUnrealizedProfit": "0",
                "totalWalletBalance": btc,
                "asset": "BTC",
            }
        )
    grand = _amount(sum((Decimal(r["totalWalletBalance"]) for r in rows), _ZERO))
    summary = {
        "totalMarginBalanceOfBTC": grand,
        "totalUnrealizedProfitOfBTC": "0",
        "totalWalletBalanceOfBTC": grand,
        "asset": "BTC",
        "subAccountList": rows,
    }
    return {"deliveryAccountSummaryResp": summary}, None


def sub_account_margin_summary(ctx: Context, p: Params) -> tuple[Any, object]:
    master = ctx.master
    rows = [
        {"email": sub.email, **_margin_totals(sub.holdings(Wallet.MARGIN))}
        for sub in master.sub_accounts.values()
        if sub.margin
    ]
    grand = _amount(sum((Decimal(r["totalAssetOfBtc"]) for r in rows), _ZERO))
    body = {
        "totalAssetOfBtc": grand,
        "totalLiabilityOfBtc": "0",
        "totalNetAssetOfBtc": grand,
        "subAccountList": rows,
    }
    return body, None


def sub_account_margin_account(ctx: Context, p: Params) -> tuple[Any, object]:
    sub = _sub(ctx, p)
    if not sub.margin:
        raise err.no_margin_account()
    held = sub.holdings(Wallet.MARGIN)
    body = {
        "email": sub.email,
        "marginLevel": "999",
        **_margin_totals(held),
        "marginTradeCoeffVo": {
            "forceLiquidationBar": "1.10000000",
            "marginCallBar": "1.50000000",
            "normalBar": "2.00000000",
        },
        "marginUserAssetVoList": _margin_rows(held),
    }
    return body, None


BALANCE_HANDLERS = {
    "wallet_balance": wallet_balance,
    "user_assets": user_assets,
    "funding_assets": funding_assets,
    "margin_account": margin_account,
    "um_balance": um_balance,
    "cm_balance": cm_balance,
    "pm_balance": lambda ctx, p: _pm_balance(ctx, p, pro=False),
    "pm_account": pm_account,
    "pmpro_balance": lambda ctx, p: _pm_balance(ctx, p, pro=True),
    "sub_account_list": sub_account_list,
    "sub_account_assets": sub_account_assets,
    "sub_account_futures_summary": sub_account_futures_summary,
    "sub_account_margin_summary": sub_account_margin_summary,
    "sub_account_margin_account": sub_account_margin_account,
}
