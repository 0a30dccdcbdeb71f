"""Typed asyncio client for Binance wallet transfers.

::

    from binance_transfers import Client, TransferType

    async with Client(api_key, api_secret) as client:
        await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="100")

Every request waits for a permit from a :class:`Governor` that models
Binance's rate limits exactly; share one governor between clients that leave
through the same IP.

Every public name is imported on first use (PEP 562): ``import binance_transfers``
and its pytest plugin cost nothing until a name is used, and then the module
holding it (with what that module imports).
"""

from __future__ import annotations

# Not typing.TYPE_CHECKING: `import typing` alone costs ~9 ms, and type
# checkers take any name TYPE_CHECKING to be true.
TYPE_CHECKING = False

# Every public name is written twice: imported here for type checkers, and in
# __all__, which they need literal. ruff fails an import missing from __all__
# (F401); tests/test_public_api.py fails a name of __all__ not imported here.
# At run time, _load() finds where each name lives.
if TYPE_CHECKING:
    from typing import Any

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

#: The modules the public names come from (the imports above).
_MODULES = (
    "_client",
    "_clock",
    "_endpoints",
    "_exceptions",
    "_governor",
    "_journal",
    "_limits",
    "_models",
    "_params",
    "_reconcile",
    "_redis",
    "_signing",
    "_storage",
)


def _load(name: str) -> None:
    """Import the modules of _MODULES in turn until one has ``name``, publishing
    (at their public path) every name of __all__ that the modules imported so far hold.

    Each name is taken from the first module of _MODULES that has it: any other
    module holding it imported the same object (tests/test_public_api.py). Only
    what is used loads: ``from binance_transfers import Client`` stops at
    ``_client`` (and what it imports), not ``_redis`` (~2.5 ms).
    """
    import importlib

    namespace = globals()
    for module_name in _MODULES:
        module = importlib.import_module(f"{__name__}.{module_name}")
        for public in __all__:
            if public not in namespace and hasattr(module, public):
                namespace[public] = _public(getattr(module, public))
        if name in namespace:
            return
    raise ImportError(f"{__name__}.{name} is in __all__ but in none of {_MODULES}")


def _public(obj: Any) -> Any:
    """Tracebacks, reprs and help() name the public path, not the private modules
    (httpx does this); help(Client.transfer) reads the method's own __module__."""
    function_type = type(_load)
    if isinstance(obj, type | function_type) and obj.__module__.startswith(f"{__name__}._"):
        obj.__module__ = __name__
        for member in vars(obj).values() if isinstance(obj, type) else ():
            function = getattr(member, "fget", getattr(member, "__func__", member))
            if isinstance(function, function_type) and function.__module__.startswith(
                f"{__name__}._"
            ):
                function.__module__ = __name__
    return obj


# Hidden from type checkers: they see the imports above, and would take a
# module-level __getattr__ to accept any name (a typo included).
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name in __all__:
            _load(name)
            return globals()[name]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
