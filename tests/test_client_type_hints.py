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
