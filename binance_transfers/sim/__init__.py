"""A simulated Binance for tests, demos and load: every endpoint of the client.

::

    from binance_transfers.sim import SimulatedExchange, serve

    exchange = SimulatedExchange()
    account = exchange.add_account(balances={"MAIN": {"USDT": "100"}})

    async with exchange.client(account) as client:      # in-process, no sockets
        await client.transfer_to_futures(asset="USDT", amount="40")

    async with serve(exchange) as server:               # real TCP on loopback
        ...  # Client(key, secret, api_url=server.url, papi_url=server.url, fapi_url=...)

    assert exchange.ledger.over_limit() == []           # no window ever over its limit

It is driven by the same endpoint table and the same :func:`~binance_transfers.pools_for`
as the client and governor, checks keys, signatures and timestamps as Binance
does, counts weight in fixed windows, answers 429/418, keeps balances and
histories (rows that appear late, settle PENDING then CONFIRMED or FAILED,
and reach back 6 months), and injects network and server faults on demand,
before or after executing. A request once sent is served to the end, even
if its caller is cancelled, in-process as over TCP; the ledger says what
executed, and how many times::

    assert exchange.ledger.duplicates() == []  # no transfer moved money twice

This package imports nothing optional: Starlette and uvicorn (the ``sim``
extra) are imported when the ASGI app is first needed. Its names themselves
are imported on first use (PEP 562), so that the pytest plugin below it costs
a test run that does not use its fixtures nothing.
"""

from __future__ import annotations

import importlib
from types import FunctionType
from typing import TYPE_CHECKING
from typing import Any as _Any

if TYPE_CHECKING:
    from ._auth import ApiKey
    from ._errors import BinanceReject
    from ._exchange import (
        DEMO_API_KEY,
        DEMO_API_SECRET,
        DEMO_EMAIL,
        HISTORY_RETENTION,
        Incoming,
        Outgoing,
        SimulatedExchange,
    )
    from ._faults import Fault, FaultDecision, FaultKind, FaultRule, Faults
    from ._ledger import Charge, Ledger, LedgerEntry, Overrun
    from ._limits import BanPolicy
    from ._report import CapUsage, Execution, PoolUsage, Report, report, totals
    from ._server import SimServer, serve
    from ._state import Account, Bank, Posting, SubAccountTransfer, UniversalTransfer, Wallet

__all__ = [
    "DEMO_API_KEY",
    "DEMO_API_SECRET",
    "DEMO_EMAIL",
    "HISTORY_RETENTION",
    "Account",
    "ApiKey",
    "BanPolicy",
    "Bank",
    "BinanceReject",
    "CapUsage",
    "Charge",
    "Execution",
    "Fault",
    "FaultDecision",
    "FaultKind",
    "FaultRule",
    "Faults",
    "Incoming",
    "Ledger",
    "LedgerEntry",
    "Outgoing",
    "Overrun",
    "PoolUsage",
    "Posting",
    "Report",
    "SimServer",
    "SimulatedExchange",
    "SubAccountTransfer",
    "UniversalTransfer",
    "Wallet",
    "report",
    "serve",
    "totals",
]

#: Where each public name lives (module of this package -> names).
_SOURCES: dict[str, tuple[str, ...]] = {
    "_auth": ("ApiKey",),
    "_errors": ("BinanceReject",),
    "_exchange": (
        "DEMO_API_KEY",
        "DEMO_API_SECRET",
        "DEMO_EMAIL",
        "HISTORY_RETENTION",
        "Incoming",
        "Outgoing",
        "SimulatedExchange",
    ),
    "_faults": ("Fault", "FaultDecision", "FaultKind", "FaultRule", "Faults"),
    "_ledger": ("Charge", "Ledger", "LedgerEntry", "Overrun"),
    "_limits": ("BanPolicy",),
    "_report": ("CapUsage", "Execution", "PoolUsage", "Report", "report", "totals"),
    "_server": ("SimServer", "serve"),
    "_state": ("Account", "Bank", "Posting", "SubAccountTransfer", "UniversalTransfer", "Wallet"),
}


def _load() -> None:
    """Import every public name, naming it by its public path in tracebacks and reprs."""
    namespace = globals()
    for module, names in _SOURCES.items():
        source = importlib.import_module(f"{__name__}.{module}")
        for name in names:
            obj = getattr(source, name)
            if isinstance(obj, type | FunctionType) and obj.__module__.startswith(f"{__name__}._"):
                obj.__module__ = __name__
            namespace[name] = obj


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
