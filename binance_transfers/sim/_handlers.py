"""What each endpoint does, by endpoint name.

The exchange looks handlers up by the names in the endpoint table; a table
entry without a handler here is an error when the app is built, so adding an
endpoint to the client without teaching the simulator fails loudly.

Rules come from Binance's endpoint pages. Where Binance documents a rule but
not the error it answers, the closest documented code is used (marked
*unverified* in :mod:`._errors`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .._models import TransferType, converter
from .._params import format_amount
from . import _errors as err
from ._balances import BALANCE_HANDLERS
from ._faults import Fault, FaultKind
from ._params import Params
from ._state import (
    Account,
    Bank,
    Posting,
    SubAccountTransfer,
    UniversalTransfer,
    Wallet,
    WalletKey,
)

__all__ = ["HANDLERS", "Context"]

Body = dict[str, Any]
#: The JSON answer (an object, or a list for some balances) and the id of
#: what was executed (for the ledger).
Outcome = tuple[Body | list[Body], object]

_DAY_MS = 24 * 3600 * 1000
_TRANSFER_TYPES = frozenset(t.value for t in TransferType)
_LEGACY_WALLETS = {"ISOLATED_MARGIN": "ISOLATEDMARGIN"}
_ACCOUNT_TYPES: Mapping[str, Wallet] = {
    "SPOT": Wallet.MAIN,
    "USDT_FUTURE": Wallet.UMFUTURE,
    "COIN_FUTURE": Wallet.CMFUTURE,
    "MARGIN": Wallet.MARGIN,
    "ISOLATED_MARGIN": Wallet.ISOLATEDMARGIN,
}
_FUTURE_WALLETS = {"UM": Wallet.UMFUTURE, "CM": Wallet.CMFUTURE, "OPTION": Wallet.OPTION}
_SPOT_OR_FUTURES = frozenset({"SPOT", "USDT_FUTURE", "COIN_FUTURE"})
_MARGINS = frozenset({"MARGIN", "ISOLATED_MARGIN"})


@attrs.define(kw_only=True)
class Context:
    """Who is calling, and when."""

    bank: Bank
    account: Account | None
    now_ms: int
    """Server epoch milliseconds at arrival."""
    settlement: Fault | None = None
    """PENDING or FAILED: how a transfer with a history settles (None: confirmed at once)."""
    settle_after_ms: int = 0
    history_lag_ms: int = 0
    """How long after execution a transfer's row appears in its history."""
    retention_ms: int | None = None
    """How far back the histories reach (Binance: the last 6 months); None: forever."""

    def post(self, tran_id: int, *, confirmed: str, failed: str, pending: str) -> Posting:
        """Record the history timing of the transfer ``tran_id`` executed now."""
        posting = Posting(
            tran_id=tran_id,
            executed_at=self.now_ms,
            visible_at=self.now_ms + self.history_lag_ms,
            settles_at=self.settles_at,
            status=failed if self.fails else confirmed,
            pending_status=pending,
        )
        self.bank.post(posting)
        return posting

    @property
    def settles_at(self) -> int:
        return self.now_ms + (self.settle_after_ms if self.settlement is not None else 0)

    @property
    def fails(self) -> bool:
        return self.settlement is not None and self.settlement.kind is FaultKind.FAILED

    def shown(self, tran_id: int, at: int) -> Posting | None:
        """The posting of a row the history shows now (None: not yet, or too old)."""
        posting = self.bank.postings.get(tran_id)
        if posting is None or posting.visible_at > self.now_ms:
            return None
        if self.retention_ms is not None and at < self.now_ms - self.retention_ms:
            return None
        return posting

    @property
    def caller(self) -> Account:
        if self.account is None:  # pragma: no cover - signed endpoints always have one
            raise RuntimeError("a signed endpoint was served without an account")
        return self.account

    @property
    def master(self) -> Account:
        """The caller, which must be a master account (sub-account endpoints)."""
        if self.caller.master is not None:
            raise err.unauthorized()
        return self.caller


Handler = Callable[[Context, Params], Outcome]


# -- user universal transfer --------------------------------------------------


def _wallet(name: str) -> Wallet:
    return Wallet(_LEGACY_WALLETS.get(name, name))


def _transfer_wallets(p: Params, kind: TransferType) -> tuple[WalletKey, WalletKey]:
    source, target = _wallet(kind.source), _wallet(kind.target)
    from_symbol, to_symbol = p.symbol("fromSymbol"), p.symbol("toSymbol")
    if source is Wallet.ISOLATEDMARGIN and from_symbol is None:
        raise err.mandatory("fromSymbol")
    if target is Wallet.ISOLATEDMARGIN and to_symbol is None:
        raise err.mandatory("toSymbol")
    if source is target is Wallet.ISOLATEDMARGIN and from_symbol == to_symbol:
        raise err.invalid("toSymbol")
    # A symbol sent with a type that has no isolated side is ignored, as Binance does.
    return (
        (source, from_symbol if source is Wallet.ISOLATEDMARGIN else None),
        (target, to_symbol if target is Wallet.ISOLATEDMARGIN else None),
    )


def universal_transfer(ctx: Context, p: Params) -> Outcome:
    kind = TransferType(p.choice("type", _TRANSFER_TYPES))
    asset, amount = p.asset(), p.amount()
    source, target = _transfer_wallets(p, kind)
    account = ctx.caller
    if Wallet.PORTFOLIO_MARGIN in (source[0], target[0]) and not account.portfolio_margin:
        raise err.not_portfolio_margin()
    ctx.bank.transfer(
        account,
        source,
        account,
        target,
        asset,
        amount,
        now_ms=ctx.now_ms,
        settles_at=ctx.settles_at,
        fails=ctx.fails,
    )
    tran_id = ctx.bank.next_id()
    posting = ctx.post(tran_id, confirmed="CONFIRMED", failed="FAILED", pending="PENDING")
    account.transfers.append(
        UniversalTransfer(
            tran_id=tran_id,
            type=kind.value,
            asset=asset,
            amount=amount,
            status=posting.status,
            timestamp=ctx.now_ms,
            from_symbol=source[1],
            to_symbol=target[1],
        )
    )
    return {"tranId": tran_id}, tran_id


def transfer_history(ctx: Context, p: Params) -> Outcome:
    kind = TransferType(p.choice("type", _TRANSFER_TYPES))
    start, end = p.integer("startTime", low=0), p.integer("endTime", low=0)
    current = p.page("current", default=1)
    size = p.page("size", default=10, high=100)
    source, target = _transfer_wallets(p, kind)
    rows = [
        (t, posting)
        for t in ctx.caller.transfers
        if t.type == kind.value
        and (source[1] is None or t.from_symbol == source[1])
        and (target[1] is None or t.to_symbol == target[1])
        and _in_range(t.timestamp, start, end, ctx.now_ms)
        and (posting := ctx.shown(t.tran_id, t.timestamp)) is not None
    ]
    rows.sort(key=lambda row: (row[0].timestamp, row[0].tran_id), reverse=True)
    page = rows[(current - 1) * size : current * size]
    body: Body = {"total": len(rows)}
    if page:
        # With nothing to show Binance leaves "rows" out altogether.
        body["rows"] = [
            {
                "asset": t.asset,
                "amount": format_amount(t.amount),
                "type": t.type,
                "status": posting.status_at(ctx.now_ms),
                "tranId": t.tran_id,
                "timestamp": t.timestamp,
            }
            for t, posting in page
        ]
    return body, None


def _in_range(at: int, start: int | None, end: int | None, now_ms: int) -> bool:
    if start is None and end is None:
        return at >= now_ms - 7 * _DAY_MS  # "the last 7 days by default"
    return (start is None or at >= start) and (end is None or at <= end)


# -- Portfolio Margin (classic, /papi) and Pro (/sapi/v1/portfolio) ------------


def _require(account: Account, pro: bool) -> None:
    if not (account.pm_pro if pro else account.portfolio_margin):
        raise err.not_portfolio_margin()


def _collect(ctx: Context, asset: str | None) -> None:
    """Move everything (one asset, or every asset but BNB) from futures to margin."""
    account = ctx.caller
    for wallet in (Wallet.UMFUTURE, Wallet.CMFUTURE):
        for held, amount in account.holdings(wallet).items():
            if (held == asset or (asset is None and held != "BNB")) and amount > 0:
                ctx.bank.move(account, (wallet, None), account, (Wallet.MARGIN, None), held, amount)


def _collect_asset(ctx: Context, p: Params, pro: bool) -> Outcome:
    asset = p.asset()
    if asset == "BNB":  # "The BNB transfer is not be supported"
        raise err.invalid("asset")
    amount, future_type = None, None
    if not pro:
        amount = p.optional_amount()
        future_type = p.optional_choice("futureType", _FUTURE_WALLETS)
        if (amount is None) != (future_type is None):
            raise err.combination("amount", "futureType")
    _require(ctx.caller, pro)
    if amount is None or future_type is None:
        _collect(ctx, asset)
    else:
        source = (_FUTURE_WALLETS[future_type], None)
        ctx.bank.move(ctx.caller, source, ctx.caller, (Wallet.MARGIN, None), asset, amount)
    return {"msg": "success"}, None


def _auto_collect(ctx: Context, pro: bool) -> Outcome:
    _require(ctx.caller, pro)
    _collect(ctx, None)
    return {"msg": "success"}, None


def _bnb_transfer(ctx: Context, p: Params, pro: bool) -> Outcome:
    amount = p.amount()
    side = p.choice("transferSide", ("TO_UM", "FROM_UM"))
    _require(ctx.caller, pro)
    margin, um = (Wallet.MARGIN, None), (Wallet.UMFUTURE, None)
    source, target = (margin, um) if side == "TO_UM" else (um, margin)
    ctx.bank.move(ctx.caller, source, ctx.caller, target, "BNB", amount)
    tran_id = ctx.bank.next_id()
    return {"tranId": tran_id}, tran_id


# -- sub-accounts ---------------------------------------------------------------


def sub_account_margin_transfer(ctx: Context, p: Params) -> Outcome:
    email = p.required("email")
    asset, amount = p.asset(), p.amount()
    direction = p.integer("type")
    if direction is None:
        raise err.mandatory("type")
    if direction not in (1, 2):
        raise err.invalid("type")
    sub = ctx.master.sub_accounts.get(email)
    if sub is None:
        raise err.no_relation()
    if not sub.margin:
        raise err.no_margin_account()
    spot, margin = (Wallet.MAIN, None), (Wallet.MARGIN, None)
    source, target = (spot, margin) if direction == 1 else (margin, spot)
    ctx.bank.move(sub, source, sub, target, asset, amount)
    txn_id = str(ctx.bank.next_id())
    return {"txnId": txn_id}, txn_id


def _party(master: Account, email: str | None) -> Account:
    if email is None or email == master.email:
        return master
    sub = master.sub_accounts.get(email)
    if sub is None:
        raise err.no_relation()
    return sub


def _supported(from_master: bool, from_type: str, to_master: bool, to_type: str) -> bool:
    """The scenarios Binance's page lists for the sub-account universal transfer."""
    return (
        (from_type == "SPOT" and to_type in _SPOT_OR_FUTURES)
        or (from_type in _SPOT_OR_FUTURES and to_type == "SPOT")
        or (from_master and from_type == "SPOT" and not to_master and to_type in _MARGINS)
        or (not from_master and from_type in _MARGINS and to_master and to_type == "SPOT")
        or (not from_master and not to_master and from_type == to_type == "MARGIN")
    )


def sub_account_transfer(ctx: Context, p: Params) -> Outcome:
    from_email, to_email = p.optional("fromEmail"), p.optional("toEmail")
    from_type = p.choice("fromAccountType", _ACCOUNT_TYPES)
    to_type = p.choice("toAccountType", _ACCOUNT_TYPES)
    client_tran_id = p.optional("clientTranId")
    symbol = p.symbol("symbol")
    asset, amount = p.asset(), p.amount()
    master = ctx.master
    if from_type == to_type and from_email is None and to_email is None:
        raise err.one_of("fromEmail", "toEmail")
    if "ISOLATED_MARGIN" in (from_type, to_type) and symbol is None:
        raise err.mandatory("symbol")
    source, target = _party(master, from_email), _party(master, to_email)
    if (source is target and from_type == to_type) or not _supported(
        source is master, from_type, target is master, to_type
    ):
        raise err.unsupported()
    for party, kind in ((source, from_type), (target, to_type)):
        if kind in _MARGINS and not party.margin:
            raise err.no_margin_account()
    if client_tran_id is not None and client_tran_id in master.client_tran_ids:
        raise err.duplicated_client_tran_id()

    def key(kind: str) -> WalletKey:
        wallet = _ACCOUNT_TYPES[kind]
        return wallet, symbol if wallet is Wallet.ISOLATEDMARGIN else None

    ctx.bank.transfer(
        source,
        key(from_type),
        target,
        key(to_type),
        asset,
        amount,
        now_ms=ctx.now_ms,
        settles_at=ctx.settles_at,
        fails=ctx.fails,
    )
    tran_id = ctx.bank.next_id()
    if client_tran_id is not None:
        # Used up even if the transfer fails later: the id names that transfer.
        master.client_tran_ids.add(client_tran_id)
    # The sub-account family's documented statuses (PROCESS / SUCCESS / FAILURE,
    # "Sub-account Transfer History"); this endpoint's page shows only SUCCESS.
    posting = ctx.post(tran_id, confirmed="SUCCESS", failed="FAILURE", pending="PROCESS")
    master.sub_account_transfers.append(
        SubAccountTransfer(
            tran_id=tran_id,
            from_email=source.email,
            to_email=target.email,
            asset=asset,
            amount=amount,
            create_time_stamp=ctx.now_ms,
            from_account_type=from_type,
            to_account_type=to_type,
            status=posting.status,
            client_tran_id=client_tran_id,
        )
    )
    body: Body = {"tranId": tran_id}
    if client_tran_id is not None:
        body["clientTranId"] = client_tran_id
    return body, tran_id


def sub_account_transfer_history(ctx: Context, p: Params) -> Outcome:
    from_email, to_email = p.optional("fromEmail"), p.optional("toEmail")
    if from_email is not None and to_email is not None:
        raise err.exclusive("fromEmail", "toEmail")
    client_tran_id = p.optional("clientTranId")
    start, end = p.integer("startTime", low=0), p.integer("endTime", low=0)
    page = p.page("page", default=1)
    limit = p.page("limit", default=500, high=500)
    if start is not None and end is not None and end - start >= 7 * _DAY_MS:
        raise err.interval_too_big(7 * 24)
    master = ctx.master
    rows = [
        (r, posting)
        for r in master.sub_account_transfers
        if _matches(r, master, from_email, to_email, client_tran_id)
        and _in_range(r.create_time_stamp, start, end, ctx.now_ms)
        and (posting := ctx.shown(r.tran_id, r.create_time_stamp)) is not None
    ]
    rows.sort(key=lambda row: (row[0].create_time_stamp, row[0].tran_id), reverse=True)
    result = []
    for r, posting in rows[(page - 1) * limit : page * limit]:
        row: Body = converter.unstructure(r)
        row["status"] = posting.status_at(ctx.now_ms)
        if r.client_tran_id is None:
            del row["clientTranId"]
        result.append(row)
    return {"result": result, "totalCount": len(rows)}, None


def _matches(
    row: SubAccountTransfer,
    master: Account,
    from_email: str | None,
    to_email: str | None,
    client_tran_id: str | None,
) -> bool:
    if client_tran_id is not None and row.client_tran_id != client_tran_id:
        return False
    if from_email is not None:
        return row.from_email == from_email
    if to_email is not None:
        return row.to_email == to_email
    # "Return fromEmail equal master account email by default" (a lookup by
    # clientTranId alone searches every row: it names one transfer).
    return client_tran_id is not None or row.from_email == master.email


def server_time(ctx: Context, p: Params) -> Outcome:
    return {"serverTime": ctx.now_ms}, None


HANDLERS: Mapping[str, Handler] = {
    "universal_transfer": universal_transfer,
    "transfer_history": transfer_history,
    "pm_collect_asset": lambda ctx, p: _collect_asset(ctx, p, pro=False),
    "pm_auto_collect": lambda ctx, p: _auto_collect(ctx, pro=False),
    "pm_bnb_transfer": lambda ctx, p: _bnb_transfer(ctx, p, pro=False),
    "pmpro_auto_collect": lambda ctx, p: _auto_collect(ctx, pro=True),
    "pmpro_collect_asset": lambda ctx, p: _collect_asset(ctx, p, pro=True),
    "pmpro_bnb_transfer": lambda ctx, p: _bnb_transfer(ctx, p, pro=True),
    "sub_account_margin_transfer": sub_account_margin_transfer,
    "sub_account_transfer": sub_account_transfer,
    "sub_account_transfer_history": sub_account_transfer_history,
    "server_time": server_time,
    **BALANCE_HANDLERS,
}
