"""Typed asyncio client for Binance wallet transfers.

::

    from binance_transfers import Client, TransferType

    async with Client(api_key, api_secret) as client:
        await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="100")

Every request waits for a permit from a :class:`Governor` that models
Binance's rate limits exactly; share one governor between clients that leave
through the same IP.

Every public name is imported on first use (PEP 562): ``import binance_transfers``
and its pytest plugin cost nothing until a name is used, and then the whole
public API is loaded at once.
"""

from __future__ import annotations

import importlib
from types import FunctionType as _FunctionType
from typing import TYPE_CHECKING
from typing import Any as _Any

if TYPE_CHECKING:
    from ._client import ApiSecret, Client
    from ._clock import Clock, LoopClock, ServerClock
    from ._endpoints import ENDPOINTS, Endpoint, EndpointTable, Host, RollingCap, Security
    from ._exceptions import (
        AuthenticationError,
        BinanceAPIError,
        BinanceTransfersError,
        ClientClosedError,
        ConfigurationError,
        ConnectionFailedError,
        InsufficientBalanceError,
        InvalidInputError,
        InvalidParameterError,
        IPBannedError,
        MalformedResponseError,
        NotExecutedError,
        NotPortfolioMarginError,
        OutcomeUnknownError,
        PendingTransactionError,
        RateLimitError,
        ServiceUnavailableError,
        ThrottledError,
        TimestampError,
        TooManyRequestsError,
        TransferNotAllowedError,
    )
    from ._governor import Governor, GovernorHooks, Permit, PoolSnapshot
    from ._journal import Journal
    from ._limits import Limits, PoolKind, PoolSpec, pools_for
    from ._models import (
        Acknowledgement,
        AssetBalance,
        BnbTransferResult,
        BnbTransferSide,
        FuturesAccountSummary,
        FuturesBalance,
        FuturesMarket,
        FutureType,
        MarginAccount,
        MarginAccountSummary,
        MarginAsset,
        MarginTransferDirection,
        MarginTransferResult,
        PortfolioMarginAccount,
        PortfolioMarginBalance,
        ServerTime,
        SubAccount,
        SubAccountAccountType,
        SubAccountAssets,
        SubAccountFuturesRow,
        SubAccountMarginAccount,
        SubAccountMarginRow,
        SubAccountTransferPage,
        SubAccountTransferRecord,
        SubAccountTransferResult,
        SubAccountTransferStatus,
        TransferPage,
        TransferRecord,
        TransferResult,
        TransferStatus,
        TransferType,
        WalletBalance,
    )
    from ._params import Amount, RawType, format_amount
    from ._reconcile import SettleBy, Settlement
    from ._redis import RedisStorage
    from ._signing import Signer
    from ._storage import CallCounter, MemoryStorage, Storage, StorageLink, WindowCounter

__version__ = "0.1.0.dev0"

__all__ = [
    "ENDPOINTS",
    "Acknowledgement",
    "Amount",
    "ApiSecret",
    "AssetBalance",
    "AuthenticationError",
    "BinanceAPIError",
    "BinanceTransfersError",
    "BnbTransferResult",
    "BnbTransferSide",
    "CallCounter",
    "Client",
    "ClientClosedError",
    "Clock",
    "ConfigurationError",
    "ConnectionFailedError",
    "Endpoint",
    "EndpointTable",
    "FutureType",
    "FuturesAccountSummary",
    "FuturesBalance",
    "FuturesMarket",
    "Governor",
    "GovernorHooks",
    "Host",
    "IPBannedError",
    "InsufficientBalanceError",
    "InvalidInputError",
    "InvalidParameterError",
    "Journal",
    "Limits",
    "LoopClock",
    "MalformedResponseError",
    "MarginAccount",
    "MarginAccountSummary",
    "MarginAsset",
    "MarginTransferDirection",
    "MarginTransferResult",
    "MemoryStorage",
    "NotExecutedError",
    "NotPortfolioMarginError",
    "OutcomeUnknownError",
    "PendingTransactionError",
    "Permit",
    "PoolKind",
    "PoolSnapshot",
    "PoolSpec",
    "PortfolioMarginAccount",
    "PortfolioMarginBalance",
    "RateLimitError",
    "RawType",
    "RedisStorage",
    "RollingCap",
    "Security",
    "ServerClock",
    "ServerTime",
    "ServiceUnavailableError",
    "SettleBy",
    "Settlement",
    "Signer",
    "Storage",
    "StorageLink",
    "SubAccount",
    "SubAccountAccountType",
    "SubAccountAssets",
    "SubAccountFuturesRow",
    "SubAccountMarginAccount",
    "SubAccountMarginRow",
    "SubAccountTransferPage",
    "SubAccountTransferRecord",
    "SubAccountTransferResult",
    "SubAccountTransferStatus",
    "ThrottledError",
    "TimestampError",
    "TooManyRequestsError",
    "TransferNotAllowedError",
    "TransferPage",
    "TransferRecord",
    "TransferResult",
    "TransferStatus",
    "TransferType",
    "WalletBalance",
    "WindowCounter",
    "format_amount",
    "pools_for",
]

#: Where each public name lives (module of this package -> names).
_SOURCES: dict[str, tuple[str, ...]] = {
    "_client": ("ApiSecret", "Client"),
    "_clock": ("Clock", "LoopClock", "ServerClock"),
    "_endpoints": ("ENDPOINTS", "Endpoint", "EndpointTable", "Host", "RollingCap", "Security"),
    "_exceptions": (
        "AuthenticationError",
        "BinanceAPIError",
        "BinanceTransfersError",
        "ClientClosedError",
        "ConfigurationError",
        "ConnectionFailedError",
        "InsufficientBalanceError",
        "InvalidInputError",
        "InvalidParameterError",
        "IPBannedError",
        "MalformedResponseError",
        "NotExecutedError",
        "NotPortfolioMarginError",
        "OutcomeUnknownError",
        "PendingTransactionError",
        "RateLimitError",
        "ServiceUnavailableError",
        "ThrottledError",
        "TimestampError",
        "TooManyRequestsError",
        "TransferNotAllowedError",
    ),
    "_governor": ("Governor", "GovernorHooks", "Permit", "PoolSnapshot"),
    "_journal": ("Journal",),
    "_limits": ("Limits", "PoolKind", "PoolSpec", "pools_for"),
    "_models": (
        "Acknowledgement",
        "AssetBalance",
        "BnbTransferResult",
        "BnbTransferSide",
        "FuturesAccountSummary",
        "FuturesBalance",
        "FuturesMarket",
        "FutureType",
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
        "SubAccountTransferPage",
        "SubAccountTransferRecord",
        "SubAccountTransferResult",
        "SubAccountTransferStatus",
        "TransferPage",
        "TransferRecord",
        "TransferResult",
        "TransferStatus",
        "TransferType",
        "WalletBalance",
    ),
    "_params": ("Amount", "RawType", "format_amount"),
    "_reconcile": ("SettleBy", "Settlement"),
    "_redis": ("RedisStorage",),
    "_signing": ("Signer",),
    "_storage": ("CallCounter", "MemoryStorage", "Storage", "StorageLink", "WindowCounter"),
}


def _load() -> None:
    """Import every public name into this module, naming it by its public path."""
    namespace = globals()
    for module, names in _SOURCES.items():
        source = importlib.import_module(f"{__name__}.{module}")
        for name in names:
            namespace[name] = _public(getattr(source, name))


def _public(obj: _Any) -> _Any:
    """Tracebacks, reprs and help() name the public path, not the private modules
    (httpx does this); help(Client.transfer) reads the method's own __module__."""
    if isinstance(obj, type | _FunctionType) and obj.__module__.startswith(f"{__name__}._"):
        obj.__module__ = __name__
        for member in vars(obj).values() if isinstance(obj, type) else ():
            function = getattr(member, "fget", getattr(member, "__func__", member))
            if isinstance(function, _FunctionType) and function.__module__.startswith(
                f"{__name__}._"
            ):
                function.__module__ = __name__
    return obj


# Hidden from type checkers: they see the imports above, and would take a
# module-level __getattr__ to accept any name (a typo included).
if not TYPE_CHECKING:

    def __getattr__(name: str) -> _Any:
        if name in __all__:
            _load()
            return globals()[name]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
