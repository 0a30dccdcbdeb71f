"""Reading balances for the CLI: one table of every wallet, and what a plan needs."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import attrs

from .._client import Client
from .._exceptions import BinanceAPIError
from .._models import FuturesMarket
from ._plan import MASTER, Place

__all__ = ["Row", "read_all", "read_places"]


@attrs.frozen(kw_only=True)
class Row:
    """One line of the balances table."""

    account: str
    wallet: str
    asset: str
    amount: Decimal
    """What the wallet holds (free + locked where Binance splits them)."""
    free: Decimal
    """What can be moved now."""


async def read_all(client: Client, *, asset: str | None = None, subs: bool = True) -> list[Row]:
    """Every wallet of the account, and of its sub-accounts if it is a master.

    Wallets an account does not have (Portfolio Margin, margin, sub-accounts
    of a non-master) are left out rather than failing the whole table.
    """
    rows: list[Row] = []

    def add(account: str, wallet: str, held: Iterable[tuple[str, Decimal, Decimal]]) -> None:
        rows.extend(
            Row(account=account, wallet=wallet, asset=name, amount=amount, free=free)
            for name, amount, free in held
            if (asset is None or name == asset) and amount
        )

    add(MASTER, "MAIN", ((r.asset, r.total, r.free) for r in await client.spot_balances()))
    add(MASTER, "FUNDING", ((r.asset, r.total, r.free) for r in await client.funding_balances()))
    margin = await client.margin_account()
    add(MASTER, "MARGIN", ((m.asset, m.free + m.locked, m.free) for m in margin.user_assets))
    for market, wallet in ((FuturesMarket.USDM, "UMFUTURE"), (FuturesMarket.COINM, "CMFUTURE")):
        futures = await client.futures_balances(market=market)
        add(MASTER, wallet, ((f.asset, f.balance, f.transferable) for f in futures))
    if not subs:
        return rows
    try:
        sub_accounts = await client.sub_accounts()
    except BinanceAPIError:
        return rows  # not a master account
    for sub in sub_accounts:
        spot = (await client.sub_account_assets(email=sub.email)).balances
        add(sub.email, "MAIN", ((a.asset, a.total, a.free) for a in spot))
        try:
            detail = await client.sub_account_margin_account(email=sub.email)
        except BinanceAPIError:
            continue  # no margin account
        held = detail.margin_user_asset_vo_list
        add(sub.email, "MARGIN", ((m.asset, m.free + m.locked, m.free) for m in held))
    return rows


async def read_places(
    client: Client, places: Iterable[Place], assets: Iterable[str]
) -> dict[tuple[Place, str], Decimal]:
    """The free amount of each asset in each place: what a plan can move."""
    wanted = tuple(assets)
    out: dict[tuple[Place, str], Decimal] = {}
    by_account: dict[str, set[str]] = {}
    for place in places:
        by_account.setdefault(place.account, set()).add(place.wallet)
    for account, wallets in by_account.items():
        free: dict[str, dict[str, Decimal]] = {}
        if account == MASTER:
            if "MAIN" in wallets:
                free["MAIN"] = {r.asset: r.free for r in await client.spot_balances()}
            if "FUNDING" in wallets:
                free["FUNDING"] = {r.asset: r.free for r in await client.funding_balances()}
            if "MARGIN" in wallets:
                margin = await client.margin_account()
                free["MARGIN"] = {r.asset: r.free for r in margin.user_assets}
            if "UMFUTURE" in wallets:
                um = await client.futures_balances(market=FuturesMarket.USDM)
                free["UMFUTURE"] = {r.asset: r.transferable for r in um}
            if "CMFUTURE" in wallets:
                cm = await client.futures_balances(market=FuturesMarket.COINM)
                free["CMFUTURE"] = {r.asset: r.transferable for r in cm}
        else:
            if "MAIN" in wallets:
                spot = await client.sub_account_assets(email=account)
                free["MAIN"] = {r.asset: r.free for r in spot.balances}
            if "MARGIN" in wallets:
                detail = await client.sub_account_margin_account(email=account)
                free["MARGIN"] = {r.asset: r.free for r in detail.margin_user_asset_vo_list}
        for wallet, amounts in free.items():
            for asset in wanted:
                out[(Place(account, wallet), asset)] = amounts.get(asset, Decimal(0))
    return out
