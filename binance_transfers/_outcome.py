"""What became of a mutating request that may have been written.

A module of its own, light (attrs only), as ``_baseline`` is: the client's
signature names the class (``on_detached``), so it is imported with the
client, for ``typing.get_type_hints`` to resolve it, while the transport
that makes it (and httpx with it) loads when a client is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["ExchangeOutcome"]


@attrs.frozen(kw_only=True)
class ExchangeOutcome:
    """What became of one attempt of a mutating request that may have been written.

    Handed to :attr:`Transport.on_outcome` once the answer (or the failure) is
    known, even when the caller was cancelled meanwhile (``detached``).
    """

    endpoint: str
    params: Mapping[str, str]
    """The parameters sent, without the signature."""
    timestamp: int | None
    recv_window: int | None
    data: Any
    """Binance's parsed JSON answer on success, else None."""
    error: BaseException | None
    """The typed error the caller got (or would have got), else None."""
    detached: bool
    """The caller was cancelled while the request was on the wire: only this record knows."""
