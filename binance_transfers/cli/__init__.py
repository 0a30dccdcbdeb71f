"""``binance-transfers``: the operator's command line (typer and rich, the ``cli`` extra).

::

    binance-transfers --sim balances
    binance-transfers --sim plan rebalance.toml
    binance-transfers --sim apply rebalance.toml --journal rebalance.journal
    binance-transfers limits --watch 30

Credentials come from ``BINANCE_API_KEY`` and ``BINANCE_API_SECRET`` or a key
file, never from an argument. Exit codes: 0 done, 1 refused (nothing moved),
2 usage, 3 an unknown outcome needs attention, 4 try again later.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """The console script's entry point."""
    try:
        from ._app import app
    except ImportError as exc:  # typer or rich missing
        sys.stderr.write(
            f"binance-transfers needs the cli extra ({exc.name} is missing): "
            "pip install 'binance-transfers[cli]'\n"
        )
        return 1
    try:
        app(args=None if argv is None else list(argv), standalone_mode=True)
    except SystemExit as done:
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
