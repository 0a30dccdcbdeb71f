"""Settling a sub-account margin transfer by the sub-account's balances.

Binance keeps no history of ``POST /sapi/v1/sub-account/margin/transfer``, so
an unknown outcome cannot be looked up. It can be *measured*: read the
sub-account's spot and margin balances of the asset before sending (a
:class:`MarginTransferBaseline`), and again once Binance's clock has passed
the request's ``timestamp + recvWindow`` (after which it can no longer
execute). The verdict is definitive only when both legs agree:

* spot moved by ``-amount`` and margin by ``+amount`` (or the reverse for
  margin -> spot): executed;
* neither moved at all: not executed (safe to send again);
* anything else (the sub-account traded, another transfer moved the same
  asset): Binance's balances cannot tell, ``executed`` is None.

The precondition is the caller's to keep: between the baseline and the
settlement nothing else moves that asset on that sub-account (no trading, no
other transfer), or at least nothing that could exactly cancel or mimic the
transfer. A rebalancing job that owns the sub-account's money meets it.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

import anyio

from ._baseline import MarginTransferBaseline
from ._exceptions import InvalidInputError, OutcomeUnknownError
from ._models import MarginTransferDirection
from ._reconcile import SettleBy, Settlement, through_limits

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["MarginTransferBaseline", "settle_by_balances", "take_baseline", "verdict"]

_ENDPOINT = "sub_account_margin_transfer"


async def _read(client: Client, email: str, asset: str) -> tuple[Decimal, Decimal]:
    spot_rows = await client.sub_account_assets(email=email)
    spot = sum((row.total for row in spot_rows.balances if row.asset == asset), Decimal(0))
    margin_row = (await client.sub_account_margin_account(email=email)).asset(asset)
    margin = Decimal(0) if margin_row is None else margin_row.free + margin_row.locked
    return spot, margin


async def take_baseline(client: Client, *, email: str, asset: str) -> MarginTransferBaseline:
    """Read the balances a later :func:`settle_by_balances` compares with."""
    spot, margin = await _read(client, email, asset)
    return MarginTransferBaseline(
        email=email,
        asset=asset,
        spot=spot,
        margin=margin,
        server_ms=client.governor.server_clock.now_ms(),
    )


def verdict(
    baseline: MarginTransferBaseline,
    spot: Decimal,
    margin: Decimal,
    *,
    amount: Decimal,
    direction: MarginTransferDirection,
) -> tuple[bool | None, str]:
    """Executed (True), not executed (False) or cannot tell (None), and why: a pure function."""
    sign = 1 if direction is MarginTransferDirection.SPOT_TO_MARGIN else -1
    spot_moved, margin_moved = spot - baseline.spot, margin - baseline.margin
    moved = f"spot moved {spot_moved:+f}, margin {margin_moved:+f}"
    if spot_moved == -sign * amount and margin_moved == sign * amount:
        return True, f"balances show the transfer: {moved}"
    if spot_moved == 0 and margin_moved == 0:
        return False, f"balances show no transfer: {moved}"
    return None, (
        f"balances moved otherwise than by this transfer alone ({moved}, amount {amount}): "
        "something else moved the asset on this sub-account"
    )


async def settle_by_balances(
    client: Client, error: OutcomeUnknownError, baseline: MarginTransferBaseline
) -> Settlement:
    """Settle an unknown sub-account margin transfer by comparing balances with ``baseline``.

    Waits until Binance's clock is past the request's window (plus the
    client's settle margin), reads the balances again and compares. See the
    module docstring for when the answer is definitive.
    """
    if error.endpoint != _ENDPOINT:
        raise InvalidInputError(
            "settle_by_balances settles a sub_account_margin_transfer OutcomeUnknownError"
        )
    params = {k: v for k, v in error.params.items() if k not in ("timestamp", "recvWindow")}
    if params.get("email") != baseline.email or params.get("asset") != baseline.asset:
        raise InvalidInputError("the baseline is of another sub-account or asset")
    try:
        amount = Decimal(params["amount"])
        direction = MarginTransferDirection(int(params["type"]))
    except (KeyError, ValueError, InvalidOperation):
        raise InvalidInputError("the error carries no readable amount and type") from None
    reconciler = client._reconciler
    window = reconciler.window_of(error)
    if window is None:
        return reconciler._unsettled(
            _ENDPOINT,
            params,
            "the error carries no timestamp: no moment after which it cannot execute",
            SettleBy.BALANCES,
        )
    sent_ms = error.timestamp if error.timestamp is not None else int(error.params["timestamp"])
    if baseline.server_ms > sent_ms + _clock_slack_ms(client):
        return reconciler._unsettled(
            _ENDPOINT,
            params,
            "the baseline was read after the request may have executed",
            SettleBy.BALANCES,
        )
    # Once past its window (and the margin), the request can no longer execute.
    clock = client.governor.server_clock
    margin_ms = int((reconciler.margin + clock.uncertainty) * 1000)
    left_ms = window.last_ms + margin_ms - clock.now_ms()
    if left_ms > 0:
        await anyio.sleep(left_ms / 1000)
    # Reads only: a ban or a 429 meanwhile is waited out (see through_limits).
    spot, margin = await through_limits(
        lambda: _read(client, baseline.email, baseline.asset), _ENDPOINT, reconciler.margin
    )
    executed, reason = verdict(baseline, spot, margin, amount=amount, direction=direction)
    return Settlement(
        endpoint=_ENDPOINT,
        params=params,
        executed=executed,
        by=SettleBy.BALANCES,
        reason=reason,
        journal_id=getattr(error, "journal_id", None),
    )


def _clock_slack_ms(client: Client) -> int:
    return int(client.governor.server_clock.uncertainty * 1000)
