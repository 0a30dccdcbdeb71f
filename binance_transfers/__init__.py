"""Typed asyncio client for Binance wallet transfers.

::

    from binance_transfers import Client, TransferType

    async with Client(api_key, api_secret) as client:
        await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="100")

Every request waits for a permit from a :class:`Governor` that models
Binance's rate limits exactly; share one governor between clients that leave
through the same IP.
"""

from types import FunctionType as _FunctionType

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

# Tracebacks, reprs and help() name the public path, not the private modules
# (httpx does this); help(Client.transfer) reads the method's own __module__.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type | _FunctionType) and _obj.__module__.startswith("binance_transfers._"):
        _obj.__module__ = __name__
        for _member in vars(_obj).values() if isinstance(_obj, type) else ():
            _function = getattr(_member, "fget", getattr(_member, "__func__", _member))
            if isinstance(_function, _FunctionType) and _function.__module__.startswith(
                "binance_transfers._"
            ):
                _function.__module__ = __name__
del _name, _obj, _member, _function
