"""The client's balance-settling methods keep resolvable type hints under lazy imports.

Since the settlement modules load only when first needed (issue 9), the name
``MarginTransferBaseline`` lived only under ``TYPE_CHECKING`` in the client's
module: ``typing.get_type_hints`` on ``margin_transfer_baseline`` and
``reconcile_margin_transfer`` raised NameError, and so would every tool that
introspects signatures (cattrs, documentation generators). A module
``__getattr__`` cannot help: annotations are evaluated against the module's
dict, never through attribute access.
"""

from __future__ import annotations

import textwrap
import typing
from collections.abc import Callable, Mapping
from decimal import Decimal

from binance_transfers import Client, OutcomeUnknownError, Settlement

from .conftest import last_json


def test_the_balance_settling_methods_type_hints_resolve() -> None:
    """Both methods' hints name the baseline class the settlement code uses."""
    from binance_transfers._settle_balances import MarginTransferBaseline

    assert typing.get_type_hints(Client.margin_transfer_baseline) == {
        "email": str,
        "asset": str,
        "return": MarginTransferBaseline,
    }
    assert typing.get_type_hints(Client.reconcile_margin_transfer) == {
        "error": OutcomeUnknownError,
        "baseline": MarginTransferBaseline,
        "return": Settlement,
    }


_SCRIPT = textwrap.dedent(
    """
    import json, sys, typing
    from binance_transfers import Client
    hints = typing.get_type_hints(Client.margin_transfer_baseline)
    LAZY = ("_journal", "_recovery", "_settling", "_settle_balances", "_claims", "sqlite3")
    loaded = [m for m in LAZY if "binance_transfers." + m in sys.modules or m in sys.modules]
    from binance_transfers._settle_balances import MarginTransferBaseline
    print(json.dumps({"loaded": loaded, "same": hints["return"] is MarginTransferBaseline}))
    """
)


def test_resolving_them_loads_no_settlement_module() -> None:
    """Resolving the hints in a fresh interpreter imports none of the lazy modules."""
    assert last_json(_SCRIPT) == {"loaded": [], "same": True}


def _public_functions() -> list[tuple[str, object]]:
    """Every class and function of ``__all__``, and every function of those classes."""
    import inspect

    import binance_transfers

    found: list[tuple[str, object]] = []
    for name in binance_transfers.__all__:
        obj = getattr(binance_transfers, name)
        if inspect.isclass(obj):
            found.append((name, obj))
            for attribute, member in vars(obj).items():
                function = getattr(member, "fget", getattr(member, "__func__", member))
                if inspect.isfunction(function):
                    found.append((f"{name}.{attribute}", function))
        elif inspect.isfunction(obj):
            found.append((name, obj))
    return found


def test_every_public_class_and_function_has_resolvable_type_hints() -> None:
    """typing.get_type_hints works on every class and function of ``__all__`` and their methods.

    The package re-homes its public classes to ``binance_transfers``, and a class's
    string annotations are evaluated in the module its ``__module__`` names:
    ``Decimal`` (the models), ``Mapping`` (Limits, Settlement) were not there. A
    function's are evaluated in its own module, where a name imported only for
    type checkers (a lazily imported module's class, an extra's) is not.
    """
    failed = {}
    for name, obj in _public_functions():
        try:
            typing.get_type_hints(obj)
        except Exception as error:
            failed[name] = f"{type(error).__name__}: {error}"
    assert failed == {}


def test_the_hints_name_the_real_classes() -> None:
    """A few resolved hints, lazily imported modules' and extras' classes among them."""
    import httpx
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from binance_transfers import (
        AssetBalance,
        Journal,
        Limits,
        RedisStorage,
        Settlement,
        StorageLink,
    )
    from binance_transfers._claims import Claims

    assert typing.get_type_hints(AssetBalance)["free"] is Decimal
    init = typing.get_type_hints(Client.__init__)
    assert init["timeout"] == httpx.Timeout | float | tuple[float, float, float, float]
    assert Journal in typing.get_args(init["journal"])
    assert Claims in typing.get_args(init["claims"])
    assert RSAPrivateKey in typing.get_args(init["api_secret"])
    assert typing.get_type_hints(Limits)["caps"] == Mapping[str, tuple[tuple[int, float], ...]]
    assert typing.get_type_hints(Settlement)["params"] == Mapping[str, str]
    assert typing.get_type_hints(StorageLink)["wake"] == Callable[[str], None]
    import redis.asyncio

    assert typing.get_type_hints(RedisStorage.__init__)["client"] is redis.asyncio.Redis
