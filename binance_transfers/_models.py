"""Enums and the frozen models the client returns.

Enum members are Binance's wire values. Where Binance adds values faster than
we release (transfer types, statuses), fields are typed ``Enum | str``: known
values come back as members, new ones as plain strings instead of failing.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ._params import format_amount

__all__ = [
    "Acknowledgement",
    "BnbTransferResult",
    "BnbTransferSide",
    "FutureType",
    "FuturesMarket",
    "MarginTransferDirection",
    "MarginTransferResult",
    "ServerTime",
    "SubAccountAccountType",
    "SubAccountTransferRecord",
    "SubAccountTransferResult",
    "SubAccountTransferStatus",
    "TransferRecord",
    "TransferResult",
    "TransferStatus",
    "TransferType",
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


_E = TypeVar("_E", bound=enum.Enum)


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


def _make_converter() -> cattrs.Converter:
    # A private converter: never the global one (cattrs' own advice).
    conv = cattrs.Converter(forbid_extra_keys=False)
    conv.register_structure_hook(Decimal, _decimal)
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
        renames = {a.name: override(rename=camel(a.name)) for a in attrs.fields(cls)}
        return make_dict_structure_fn(cls, conv, **renames)  # type: ignore[arg-type]

    def unstructure_factory(cls: type[Any]) -> Any:
        renames = {a.name: override(rename=camel(a.name)) for a in attrs.fields(cls)}
        return make_dict_unstructure_fn(cls, conv, **renames)  # type: ignore[arg-type]

    conv.register_structure_hook_factory(attrs.has, structure_factory)
    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    return conv


# Resolve the string annotations now, while this module's names are in scope:
# the package re-homes these classes to `binance_transfers` for nicer reprs.
for _cls in (
    TransferResult,
    Acknowledgement,
    MarginTransferResult,
    BnbTransferResult,
    SubAccountTransferResult,
    ServerTime,
    TransferRecord,
    TransferPage,
    SubAccountTransferRecord,
    SubAccountTransferPage,
):
    attrs.resolve_types(_cls)

#: Package-private converter between Binance's JSON and the models.
converter = _make_converter()
