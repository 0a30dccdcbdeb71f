"""Enums and the frozen models the client returns.

Enum members are Binance's wire values. Where Binance adds values faster than
we release (transfer types, statuses), fields are typed ``Enum | str``: known
values come back as members, new ones as plain strings instead of failing.
"""

# No `from __future__ import annotations`: the package re-homes these classes
# to `binance_transfers` (nicer reprs), and typing.get_type_hints evaluates a
# class's string annotations in the module it names, where Decimal and
# datetime are not. Evaluated here, they are objects already (and attrs and
# cattrs need no attrs.resolve_types).
import enum
import functools
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ._params import format_amount

if TYPE_CHECKING:
    import cattrs

__all__ = [
    "Acknowledgement",
    "AssetBalance",
    "BnbTransferResult",
    "BnbTransferSide",
    "FutureType",
    "FuturesAccountSummary",
    "FuturesBalance",
    "FuturesMarket",
    "MarginAccount",
    "MarginAccountSummary",
    "MarginAsset",
    "MarginTransferDirection",
    "MarginTransferResult",
    "PortfolioMarginAccount",
    "PortfolioMarginBalance",
    "ServerTime",
    "SubAccount",
    "SubAccountAccountType",
    "SubAccountAssets",
    "SubAccountFuturesRow",
    "SubAccountMarginAccount",
    "SubAccountMarginRow",
    "SubAccountTransferRecord",
    "SubAccountTransferResult",
    "SubAccountTransferStatus",
    "TransferRecord",
    "TransferResult",
    "TransferStatus",
    "TransferType",
    "WalletBalance",
]


class TransferType(enum.StrEnum):
    """``type`` of the user universal transfer (POST /sapi/v1/asset/transfer)."""

    MAIN_UMFUTURE = "MAIN_UMFUTURE"
    MAIN_CMFUTURE = "MAIN_CMFUTURE"
    MAIN_MARGIN = "MAIN_MARGIN"
    UMFUTURE_MAIN = "UMFUTURE_MAIN"
    UMFUTURE_MARGIN = "UMFUTURE_MARGIN"
    CMFUTURE_MAIN = "CMFUTURE_MAIN"
    CMFUTURE_MARGIN = "CMFUTURE_MARGIN"
    MARGIN_MAIN = "MARGIN_MAIN"
    MARGIN_UMFUTURE = "MARGIN_UMFUTURE"
    MARGIN_CMFUTURE = "MARGIN_CMFUTURE"
    ISOLATEDMARGIN_MARGIN = "ISOLATEDMARGIN_MARGIN"
    MARGIN_ISOLATEDMARGIN = "MARGIN_ISOLATEDMARGIN"
    ISOLATEDMARGIN_ISOLATEDMARGIN = "ISOLATEDMARGIN_ISOLATEDMARGIN"
    MAIN_FUNDING = "MAIN_FUNDING"
    FUNDING_MAIN = "FUNDING_MAIN"
    FUNDING_UMFUTURE = "FUNDING_UMFUTURE"
    UMFUTURE_FUNDING = "UMFUTURE_FUNDING"
    MARGIN_FUNDING = "MARGIN_FUNDING"
    FUNDING_MARGIN = "FUNDING_MARGIN"
    FUNDING_CMFUTURE = "FUNDING_CMFUTURE"
    CMFUTURE_FUNDING = "CMFUTURE_FUNDING"
    MAIN_OPTION = "MAIN_OPTION"
    OPTION_MAIN = "OPTION_MAIN"
    UMFUTURE_OPTION = "UMFUTURE_OPTION"
    OPTION_UMFUTURE = "OPTION_UMFUTURE"
    MARGIN_OPTION = "MARGIN_OPTION"
    OPTION_MARGIN = "OPTION_MARGIN"
    FUNDING_OPTION = "FUNDING_OPTION"
    OPTION_FUNDING = "OPTION_FUNDING"
    MAIN_PORTFOLIO_MARGIN = "MAIN_PORTFOLIO_MARGIN"
    PORTFOLIO_MARGIN_MAIN = "PORTFOLIO_MARGIN_MAIN"
    #: Listed on Binance's Chinese page and in older specs; gone from the connector.
    MAIN_ISOLATED_MARGIN = "MAIN_ISOLATED_MARGIN"
    #: Listed on Binance's Chinese page and in older specs; gone from the connector.
    ISOLATED_MARGIN_MAIN = "ISOLATED_MARGIN_MAIN"

    @property
    def needs_from_symbol(self) -> bool:
        """Binance requires ``fromSymbol`` (the source is an isolated-margin pair)."""
        return self in _FROM_SYMBOL

    @property
    def needs_to_symbol(self) -> bool:
        """Binance requires ``toSymbol`` (the target is an isolated-margin pair)."""
        return self in _TO_SYMBOL

    @property
    def source(self) -> str:
        """The wallet money leaves, as named in the type (``MAIN``, ``UMFUTURE``...)."""
        return _split_type(self.value)[0]

    @property
    def target(self) -> str:
        """The wallet money arrives in."""
        return _split_type(self.value)[1]


# Binance documents the first two of each; the legacy ISOLATED_MARGIN types
# move money out of (into) one isolated pair, which has to be named too.
_FROM_SYMBOL = frozenset(
    {
        TransferType.ISOLATEDMARGIN_MARGIN,
        TransferType.ISOLATEDMARGIN_ISOLATEDMARGIN,
        TransferType.ISOLATED_MARGIN_MAIN,
    }
)
_TO_SYMBOL = frozenset(
    {
        TransferType.MARGIN_ISOLATEDMARGIN,
        TransferType.ISOLATEDMARGIN_ISOLATEDMARGIN,
        TransferType.MAIN_ISOLATED_MARGIN,
    }
)
_WALLETS = re.compile(
    r"(MAIN|UMFUTURE|CMFUTURE|MARGIN|ISOLATEDMARGIN|FUNDING|OPTION|PORTFOLIO_MARGIN|ISOLATED_MARGIN)"
    r"_(MAIN|UMFUTURE|CMFUTURE|MARGIN|ISOLATEDMARGIN|FUNDING|OPTION|PORTFOLIO_MARGIN|ISOLATED_MARGIN)"
)


def _split_type(value: str) -> tuple[str, str]:
    match = _WALLETS.fullmatch(value)
    if match is None:  # pragma: no cover - every member matches (tested)
        raise ValueError(value)
    return match.group(1), match.group(2)


class FuturesMarket(enum.StrEnum):
    """Which futures wallet :meth:`Client.transfer_to_futures` moves money to."""

    USDM = "UMFUTURE"
    COINM = "CMFUTURE"


class TransferStatus(enum.StrEnum):
    """Status of a row in the universal transfer history."""

    CONFIRMED = "CONFIRMED"
    PENDING = "PENDING"
    FAILED = "FAILED"


class SubAccountTransferStatus(enum.StrEnum):
    """Status of a row in the sub-account universal transfer history."""

    SUCCESS = "SUCCESS"
    PROCESS = "PROCESS"
    """Accepted, not settled yet (the universal history's PENDING)."""
    FAILURE = "FAILURE"


class FutureType(enum.StrEnum):
    """``futureType`` of Portfolio Margin fund collection by asset."""

    UM = "UM"
    CM = "CM"
    #: Only for SPAN Portfolio Margin accounts.
    OPTION = "OPTION"


class BnbTransferSide(enum.StrEnum):
    """``transferSide`` of the Portfolio Margin BNB transfers."""

    TO_UM = "TO_UM"
    FROM_UM = "FROM_UM"


class MarginTransferDirection(enum.IntEnum):
    """``type`` of the sub-account margin transfer."""

    SPOT_TO_MARGIN = 1
    MARGIN_TO_SPOT = 2


class SubAccountAccountType(enum.StrEnum):
    """``fromAccountType`` / ``toAccountType`` of the sub-account universal transfer."""

    SPOT = "SPOT"
    USDT_FUTURE = "USDT_FUTURE"
    COIN_FUTURE = "COIN_FUTURE"
    MARGIN = "MARGIN"
    ISOLATED_MARGIN = "ISOLATED_MARGIN"


@attrs.frozen(kw_only=True)
class TransferResult:
    """Answer of a universal transfer."""

    tran_id: int
    """Binance's id of the transfer; it appears in the transfer history."""


@attrs.frozen(kw_only=True)
class Acknowledgement:
    """Answer of the collection endpoints, which return no id (``{"msg": "success"}``)."""

    msg: str


@attrs.frozen(kw_only=True)
class MarginTransferResult:
    """Answer of the sub-account margin transfer."""

    txn_id: str
    """Binance's id of the transfer; a string on the wire, kept as one."""


@attrs.frozen(kw_only=True)
class BnbTransferResult:
    """Answer of the Portfolio Margin (Pro) BNB transfers."""

    tran_id: int


@attrs.frozen(kw_only=True)
class SubAccountTransferResult:
    """Answer of the sub-account universal transfer."""

    tran_id: int
    client_tran_id: str | None = None
    """The ``clientTranId`` sent, echoed back by Binance."""


@attrs.frozen(kw_only=True)
class ServerTime:
    """Binance's clock."""

    server_time: int
    """Epoch milliseconds."""

    @property
    def datetime(self) -> datetime:
        """``server_time`` as an aware UTC datetime."""
        return _utc(self.server_time)


@attrs.frozen(kw_only=True)
class TransferRecord:
    """One row of the universal transfer history."""

    asset: str
    amount: Decimal
    type: TransferType | str
    status: TransferStatus | str
    tran_id: int
    timestamp: int
    """Epoch milliseconds."""

    @property
    def datetime(self) -> datetime:
        """``timestamp`` as an aware UTC datetime."""
        return _utc(self.timestamp)


@attrs.frozen(kw_only=True)
class TransferPage:
    """One page of the universal transfer history as Binance returns it."""

    total: int
    rows: tuple[TransferRecord, ...] = ()


@attrs.frozen(kw_only=True)
class SubAccountTransferRecord:
    """One row of the sub-account universal transfer history."""

    tran_id: int
    from_email: str
    to_email: str
    asset: str
    amount: Decimal
    create_time_stamp: int
    """Epoch milliseconds."""
    from_account_type: SubAccountAccountType | str
    to_account_type: SubAccountAccountType | str
    status: SubAccountTransferStatus | str
    """A :class:`SubAccountTransferStatus`, or the plain string of a status Binance added since."""
    client_tran_id: str | None = None

    @property
    def datetime(self) -> datetime:
        """``create_time_stamp`` as an aware UTC datetime."""
        return _utc(self.create_time_stamp)


@attrs.frozen(kw_only=True)
class SubAccountTransferPage:
    """One page of the sub-account universal transfer history."""

    total_count: int
    result: tuple[SubAccountTransferRecord, ...] = ()


# -- balances (issue 11) --------------------------------------------------------

_ZERO = Decimal(0)


def _wire_name(name: str) -> dict[str, str]:
    return {"wire": name}


@attrs.frozen(kw_only=True)
class WalletBalance:
    """One wallet of the overview (GET /sapi/v1/asset/wallet/balance), valued in a quote asset."""

    wallet_name: str
    """Binance's display name: ``Spot``, ``Funding``, ``Cross Margin``, ``USDⓈ-M Futures``..."""
    balance: Decimal
    """The wallet's value in the quote asset asked for (BTC by default)."""
    activate: bool = True
    """Whether the wallet is opened."""


@attrs.frozen(kw_only=True)
class AssetBalance:
    """One asset of a spot, funding or sub-account spot wallet."""

    asset: str
    free: Decimal
    locked: Decimal = _ZERO
    freeze: Decimal = _ZERO
    withdrawing: Decimal = _ZERO
    ipoable: Decimal = _ZERO
    btc_valuation: Decimal = _ZERO

    @property
    def total(self) -> Decimal:
        """Everything the wallet holds of the asset: free, locked, frozen and withdrawing."""
        return self.free + self.locked + self.freeze + self.withdrawing


@attrs.frozen(kw_only=True)
class MarginAsset:
    """One asset of a cross-margin account."""

    asset: str
    free: Decimal
    locked: Decimal = _ZERO
    borrowed: Decimal = _ZERO
    interest: Decimal = _ZERO
    net_asset: Decimal = _ZERO


@attrs.frozen(kw_only=True)
class MarginAccount:
    """The cross-margin account (GET /sapi/v1/margin/account)."""

    user_assets: tuple[MarginAsset, ...] = ()
    created: bool = True
    """False: the margin account is not opened."""
    margin_level: Decimal | None = None
    total_asset_of_btc: Decimal | None = None
    total_liability_of_btc: Decimal | None = None
    total_net_asset_of_btc: Decimal | None = None
    trade_enabled: bool = True
    transfer_in_enabled: bool = True
    transfer_out_enabled: bool = True

    def asset(self, name: str) -> MarginAsset | None:
        """The row of asset ``name`` (None: the account holds none)."""
        return next((row for row in self.user_assets if row.asset == name), None)


@attrs.frozen(kw_only=True)
class FuturesBalance:
    """One asset of a USDⓈ-M (GET /fapi/v3/balance) or COIN-M (GET /dapi/v1/balance) wallet."""

    asset: str
    balance: Decimal
    """Wallet balance."""
    available_balance: Decimal = _ZERO
    cross_wallet_balance: Decimal = _ZERO
    cross_un_pnl: Decimal = _ZERO
    max_withdraw_amount: Decimal | None = None
    """USDⓈ-M: the most that can be transferred out."""
    withdraw_available: Decimal | None = None
    """COIN-M's name for the most that can be transferred out."""
    margin_available: bool | None = None
    account_alias: str = ""
    update_time: int = 0

    @property
    def transferable(self) -> Decimal:
        """The most that can leave the wallet, whichever name Binance gave it."""
        for value in (self.max_withdraw_amount, self.withdraw_available):
            if value is not None:
                return value
        return self.available_balance


@attrs.frozen(kw_only=True)
class PortfolioMarginBalance:
    """One asset of a Portfolio Margin (GET /papi/v1/balance) or PM Pro account."""

    asset: str
    total_wallet_balance: Decimal
    """Cross margin free + locked + USDⓈ-M wallet + COIN-M wallet."""
    cross_margin_asset: Decimal | None = None
    cross_margin_borrowed: Decimal = _ZERO
    cross_margin_free: Decimal = _ZERO
    cross_margin_interest: Decimal = _ZERO
    cross_margin_locked: Decimal = _ZERO
    um_wallet_balance: Decimal = _ZERO
    um_unrealized_pnl: Decimal | None = attrs.field(
        default=None, metadata=_wire_name("umUnrealizedPNL")
    )
    cm_wallet_balance: Decimal = _ZERO
    cm_unrealized_pnl: Decimal | None = attrs.field(
        default=None, metadata=_wire_name("cmUnrealizedPNL")
    )
    negative_balance: Decimal = _ZERO
    option_wallet_balance: Decimal | None = None
    """PM Pro SPAN only."""
    update_time: int = 0


@attrs.frozen(kw_only=True)
class PortfolioMarginAccount:
    """The Portfolio Margin account (GET /papi/v1/account), amounts in USD."""

    account_status: str
    """``NORMAL``, ``MARGIN_CALL``, ``SUPPLY_MARGIN``, ``REDUCE_ONLY``, ``ACTIVE_LIQUIDATION``..."""
    uni_mmr: Decimal | None = attrs.field(default=None, metadata=_wire_name("uniMMR"))
    account_equity: Decimal | None = None
    actual_equity: Decimal | None = None
    account_initial_margin: Decimal | None = None
    account_maint_margin: Decimal | None = None
    virtual_max_withdraw_amount: Decimal | None = None
    """The most that can be transferred out, in USD."""
    total_available_balance: Decimal | None = None
    update_time: int = 0


@attrs.frozen(kw_only=True)
class SubAccountAssets:
    """A sub-account's spot assets (GET /sapi/v4/sub-account/assets)."""

    balances: tuple[AssetBalance, ...] = ()

    def free(self, asset: str) -> Decimal:
        """The free amount of ``asset`` (zero if none)."""
        return next((row.free for row in self.balances if row.asset == asset), _ZERO)


@attrs.frozen(kw_only=True)
class SubAccountFuturesRow:
    """One sub-account of the futures summary."""

    email: str
    total_wallet_balance: Decimal
    asset: str = "USD"
    total_margin_balance: Decimal = _ZERO
    total_unrealized_profit: Decimal = _ZERO


@attrs.frozen(kw_only=True)
class FuturesAccountSummary:
    """The master's view of its sub-accounts' USDⓈ-M or COIN-M futures wallets."""

    sub_account_list: tuple[SubAccountFuturesRow, ...] = ()
    asset: str = "USD"
    total_wallet_balance: Decimal | None = None
    """USDⓈ-M: the sum of the sub-accounts' wallets (USD)."""
    total_wallet_balance_of_btc: Decimal | None = attrs.field(
        default=None, metadata=_wire_name("totalWalletBalanceOfBTC")
    )
    """COIN-M: the sum valued in BTC."""


@attrs.frozen(kw_only=True)
class SubAccountFuturesSummaryPage:
    """GET /sapi/v2/sub-account/futures/accountSummary as Binance returns it."""

    future_account_summary_resp: FuturesAccountSummary | None = None
    delivery_account_summary_resp: FuturesAccountSummary | None = None


@attrs.frozen(kw_only=True)
class SubAccountMarginRow:
    """One sub-account of the margin summary (values in BTC)."""

    email: str
    total_asset_of_btc: Decimal = _ZERO
    total_liability_of_btc: Decimal = _ZERO
    total_net_asset_of_btc: Decimal = _ZERO


@attrs.frozen(kw_only=True)
class MarginAccountSummary:
    """The master's view of its sub-accounts' margin accounts (values in BTC)."""

    sub_account_list: tuple[SubAccountMarginRow, ...] = ()
    total_asset_of_btc: Decimal = _ZERO
    total_liability_of_btc: Decimal = _ZERO
    total_net_asset_of_btc: Decimal = _ZERO


@attrs.frozen(kw_only=True)
class SubAccountMarginAccount:
    """One sub-account's margin account in detail (GET /sapi/v1/sub-account/margin/account)."""

    email: str
    margin_user_asset_vo_list: tuple[MarginAsset, ...] = ()
    margin_level: Decimal | None = None
    total_asset_of_btc: Decimal | None = None
    total_liability_of_btc: Decimal | None = None
    total_net_asset_of_btc: Decimal | None = None

    def asset(self, name: str) -> MarginAsset | None:
        """The row of asset ``name`` (None: none held)."""
        return next((row for row in self.margin_user_asset_vo_list if row.asset == name), None)


@attrs.frozen(kw_only=True)
class SubAccount:
    """One sub-account of the master (GET /sapi/v1/sub-account/list)."""

    email: str
    sub_user_id: int | None = None
    is_freeze: bool = False
    create_time: int = 0
    remark: str = ""


@attrs.frozen(kw_only=True)
class SubAccountList:
    """One page of GET /sapi/v1/sub-account/list."""

    sub_accounts: tuple[SubAccount, ...] = ()


_BALANCE_MODELS = (
    WalletBalance,
    AssetBalance,
    MarginAsset,
    MarginAccount,
    FuturesBalance,
    PortfolioMarginBalance,
    PortfolioMarginAccount,
    SubAccountAssets,
    SubAccountFuturesRow,
    FuturesAccountSummary,
    SubAccountFuturesSummaryPage,
    SubAccountMarginRow,
    MarginAccountSummary,
    SubAccountMarginAccount,
    SubAccount,
    SubAccountList,
)

_E = TypeVar("_E", bound=enum.Enum)
_M = TypeVar("_M")


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def camel(name: str) -> str:
    """``tran_id`` -> ``tranId``: Binance's field names from ours."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _enum_or_str(enum_type: type[_E]) -> Callable[[Any, Any], _E | str]:
    def structure(value: Any, _: Any) -> _E | str:
        try:
            return enum_type(value)
        except ValueError:
            if isinstance(value, str):
                return value
            raise

    return structure


def _decimal(value: Any, _: Any) -> Decimal:
    # JSON is parsed with parse_float=Decimal, but be exact with strings and ints too.
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"not a decimal: {value!r}")
    return Decimal(value)


def _optional_decimal(value: Any, _: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return _decimal(value, _)


def _format_optional(value: Decimal | None) -> str | None:
    return None if value is None else format_amount(value)


def _wire(attribute: Any) -> str:
    """Binance's name for a field: ``wire`` metadata where camel case misses (``uniMMR``)."""
    return str(attribute.metadata.get("wire") or camel(attribute.name))


def _make_converter() -> "cattrs.Converter":
    import cattrs
    from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

    # A private converter: never the global one (cattrs' own advice).
    conv = cattrs.Converter(forbid_extra_keys=False)
    conv.register_structure_hook(Decimal, _decimal)
    # Binance sends "" for some amounts it has no value for (cmUnrealizedPNL).
    conv.register_structure_hook(Decimal | None, _optional_decimal)
    conv.register_unstructure_hook(Decimal | None, _format_optional)
    conv.register_unstructure_hook(Decimal, format_amount)  # as Binance writes them
    for enum_type in (
        TransferType,
        TransferStatus,
        SubAccountAccountType,
        SubAccountTransferStatus,
    ):
        conv.register_structure_hook(enum_type | str, _enum_or_str(enum_type))
        conv.register_unstructure_hook(enum_type | str, str)

    def structure_factory(cls: type[Any]) -> Any:
        renames = {a.name: override(rename=_wire(a)) for a in attrs.fields(cls)}
        return make_dict_structure_fn(cls, conv, **renames)  # type: ignore[arg-type]

    def unstructure_factory(cls: type[Any]) -> Any:
        renames = {a.name: override(rename=_wire(a)) for a in attrs.fields(cls)}
        return make_dict_unstructure_fn(cls, conv, **renames)  # type: ignore[arg-type]

    conv.register_structure_hook_factory(attrs.has, structure_factory)
    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    return conv


_PARSERS: dict[type[Any], Callable[[Any], Any]] = {}


@functools.cache
def get_converter() -> "cattrs.Converter":
    """The package-private converter between Binance's JSON and the models.

    issue 9: cattrs is imported, and the converter made, at its first use (a
    client built), not with the models: ``from binance_transfers import
    TransferType`` costs no cattrs.
    """
    return _make_converter()


if TYPE_CHECKING:
    #: Package-private converter between Binance's JSON and the models (get_converter()).
    converter: cattrs.Converter
else:

    def __getattr__(name: str) -> Any:
        if name == "converter":
            return get_converter()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parser(model: type[_M]) -> Callable[[Any], _M]:
    """``converter.structure(data, model)`` as a function of ``data``, made once per model.

    The client parses every answer with it: the converter's dispatch (which
    hook structures ``model``) is looked up once, not per call, and no closure
    is built per call.
    """
    parse = _PARSERS.get(model)
    if parse is None:
        hook = get_converter().get_structure_hook(model)

        def parse(data: Any) -> Any:
            return hook(data, model)

        _PARSERS[model] = parse
    return parse
