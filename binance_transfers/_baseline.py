"""The balances a sub-account margin transfer is settled against.

A module of its own, light (attrs and Decimal): the client's signatures name
the class, so its module is imported with the client's, for
``typing.get_type_hints`` to resolve them, while the settlement code that
uses it (``_settle_balances``) still loads only when first needed.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

__all__ = ["MarginTransferBaseline"]


@attrs.frozen(kw_only=True)
class MarginTransferBaseline:
    """A sub-account's spot and margin balances of one asset, before a margin transfer."""

    email: str
    asset: str
    spot: Decimal
    """Spot: free + locked + frozen (a transfer moves free money; the rest must not move)."""
    margin: Decimal
    """Cross margin: free + locked."""
    server_ms: int
    """Binance's clock (estimated) when the reads were made."""
