"""The money-safety soak: transfers under every fault, cancelled callers, then settlement.

``N`` transfers (user universal and sub-account universal, with a handful of
amounts so that identical transfers are common) leave from ``M`` coroutines
while the simulated exchange executes-then-fails, refuses, answers late or
hangs up on about 5 % of them each, and some callers are cancelled while
their transfer is on the wire. Every unknown outcome (from a caller or from
a cancelled caller's detached request) is then settled with
:meth:`Client.reconcile`, all at once, so one wait covers them all.

The verdict compares the exchange's ledger with what the callers learned:
every executed transfer must be accounted for exactly once (confirmed by its
answer, by a detached outcome, or by a settlement), nothing may be executed
that nobody accounts for, and no exception but the SDK's own may reach a caller.
Each call accounts for at most one ``tranId``, so a transfer executed twice
would leave one of its ids unaccounted for. (The ledger's ``duplicates()``
cannot be used here: identical transfers are intended, to test that no
settlement takes one for another.)
"""

from __future__ import annotations

import contextlib
import contextvars
import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import anyio
import attrs
import httpx

from .._client import Client
from .._exceptions import BinanceTransfersError, OutcomeUnknownError
from .._governor import Governor
from .._models import SubAccountTransferResult, TransferResult, TransferType
from .._reconcile import Settlement
from .._transport import ExchangeOutcome
from ..sim import Fault, SimulatedExchange

__all__ = ["SoakResult", "add_faults", "soak"]

DESK = "desk-1@sim.invalid"
AMOUNTS = ("1", "2", "3")
SETTLED_ENDPOINTS = ("universal_transfer", "sub_account_transfer")

# The caller's "cancel me now" for the wire tap below; None for callers left alone.
_CANCEL_ON_WIRE: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "soak_cancel_on_wire", default=None
)


def add_faults(exchange: SimulatedExchange, share: float = 0.05, *, late: float = 60.0) -> None:
    """Each fault on ``share`` of the transfers of both kinds: executed then a 5xx
    (500/502/503/504, with Binance's "unknown" body, a -1003 rate-limit body, a
    -1000 body or none), executed then the connection reset mid-body, executed
    then dropped, executed then answered ``late`` s late (past the read timeout),
    503 without executing; and half as many left PENDING for a while."""
    bodies = ((None, None), (-1003, "Too much request weight used."), (-1000, "Unknown error."))
    for endpoint in SETTLED_ENDPOINTS:
        for status in (500, 502, 503, 504):
            for code, msg in bodies:
                fault = Fault.server_error(status=status, code=code, msg=msg)
                exchange.faults.add(fault, endpoint=endpoint, probability=share / 12)
        exchange.faults.add(Fault.reset(), endpoint=endpoint, probability=share)
        exchange.faults.add(Fault.drop(), endpoint=endpoint, probability=share)
        exchange.faults.add(Fault.late(late), endpoint=endpoint, probability=share)
        exchange.faults.add(Fault.unavailable(), endpoint=endpoint, probability=share)
        exchange.faults.add(Fault.pending(5.0), endpoint=endpoint, probability=share / 2)


class WireTap(httpx.AsyncBaseTransport):
    """Cancels a marked caller the moment its transfer is handed to the wire."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        cancel = _CANCEL_ON_WIRE.get()
        if cancel is not None and request.method == "POST":
            cancel()  # lands at the caller's next await: the request is on its way
        return await self.inner.handle_async_request(request)


@attrs.define
class SoakResult:
    """What the soak saw; :attr:`problems` lists every broken promise."""

    transfers: int = 0
    confirmed: list[int] = attrs.Factory(list)
    unknown: list[OutcomeUnknownError] = attrs.Factory(list)
    refused: int = 0
    cancelled: int = 0
    detached: list[ExchangeOutcome] = attrs.Factory(list)
    plain_exceptions: list[str] = attrs.Factory(list)
    settlements: list[Settlement] = attrs.Factory(list)
    executed_by_exchange: list[int] = attrs.Factory(list)

    @property
    def unsettled(self) -> list[Settlement]:
        return [s for s in self.settlements if s.executed is None]

    @property
    def accounted(self) -> list[int]:
        """Every tranId a caller, a detached outcome or a settlement accounts for."""
        detached = [
            int(o.data["tranId"]) for o in self.detached if o.error is None and o.data is not None
        ]
        settled = [s.tran_id for s in self.settlements if s.executed and s.tran_id is not None]
        return sorted(self.confirmed + detached + settled)

    @property
    def problems(self) -> list[str]:
        found = []
        if self.plain_exceptions:
            found.append(f"plain exceptions reached callers: {self.plain_exceptions[:5]}")
        if self.unsettled:
            found.append(f"{len(self.unsettled)} unknown outcomes left unsettled")
        if self.accounted != sorted(self.executed_by_exchange):
            missing = set(self.executed_by_exchange) - set(self.accounted)
            extra = len(self.accounted) - len(set(self.accounted))
            found.append(
                f"ledger and callers disagree: {len(missing)} executed unaccounted, "
                f"{extra} accounted twice"
            )
        return found

    def summary(self) -> str:
        settled = [s for s in self.settlements if s.executed is not None]
        ran = sum(1 for s in settled if s.executed)
        return (
            f"{self.transfers} transfers: {len(self.confirmed)} confirmed, {self.refused} refused, "
            f"{len(self.unknown)} unknown, {self.cancelled} callers cancelled on the wire "
            f"({len(self.detached)} outcomes learned after them); {len(settled)} settled "
            f"({ran} executed, {len(settled) - ran} not), {len(self.unsettled)} unsettled; "
            f"executed by the exchange: {len(self.executed_by_exchange)}, "
            f"accounted for: {len(self.accounted)}"
        )


async def soak(
    exchange: SimulatedExchange,
    *,
    transfers: int,
    coroutines: int,
    cancellations: int,
    seed: int = 1,
    **client_options: Any,
) -> SoakResult:
    """Run the soak against ``exchange`` in-process and return what it saw."""
    rng = random.Random(seed)
    result = SoakResult(transfers=transfers)
    cancel_at = set(rng.sample(range(transfers), cancellations))
    plan = [(i, rng.random() < 0.5, rng.choice(AMOUNTS)) for i in range(transfers)]

    def detached(outcome: ExchangeOutcome) -> None:
        result.detached.append(outcome)

    account = exchange.demo_account
    if account is None:
        raise LookupError("the soak runs on the demo account: exchange.add_demo_account()")
    secret = account.api_key.secret
    if secret is None:  # an RSA or Ed25519 key: the exchange keeps only the public half
        raise LookupError("the soak needs the demo account's HMAC key")
    client = Client(
        account.api_key.key,
        secret,
        transport=WireTap(exchange.transport()),
        api_url=exchange.api_url,
        papi_url=exchange.papi_url,
        governor=Governor(exchange.limits, clock=exchange.clock),
        endpoints=exchange.endpoints,
        on_detached=detached,
        **client_options,
    )
    async with client:

        async def one(index: int, universal: bool, amount: str) -> None:
            token = None
            try:
                with anyio.CancelScope() as scope:
                    if index in cancel_at:
                        token = _CANCEL_ON_WIRE.set(scope.cancel)
                    done = await _send(client, universal, Decimal(amount))
                    result.confirmed.append(done.tran_id)
                if scope.cancelled_caught:
                    result.cancelled += 1
            except OutcomeUnknownError as unknown:
                result.unknown.append(unknown)
            except BinanceTransfersError:
                result.refused += 1
            except Exception as exc:  # the promise broken: record it, do not hide it
                result.plain_exceptions.append(repr(exc))
            finally:
                if token is not None:
                    _CANCEL_ON_WIRE.reset(token)

        async def worker(share: list[tuple[int, bool, str]]) -> None:
            for index, universal, amount in share:
                await one(index, universal, amount)

        async with anyio.create_task_group() as tg:
            for k in range(coroutines):
                tg.start_soon(worker, plan[k::coroutines])

        unknowns = list(result.unknown) + [
            o.error for o in result.detached if isinstance(o.error, OutcomeUnknownError)
        ]

        async def settle(error: OutcomeUnknownError) -> None:
            result.settlements.append(await client.reconcile(error))

        async with anyio.create_task_group() as tg:
            for error in unknowns:
                tg.start_soon(settle, error)
    for endpoint in SETTLED_ENDPOINTS:
        result.executed_by_exchange += [
            int(str(entry.result)) for entry in exchange.ledger.executed(endpoint)
        ]
    return result


async def _send(
    client: Client, universal: bool, amount: Decimal
) -> TransferResult | SubAccountTransferResult:
    if universal:
        return await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount=amount)
    return await client.sub_account_transfer(
        to_email=DESK,
        from_account_type="SPOT",
        to_account_type="SPOT",
        asset="USDT",
        amount=amount,
    )


async def journaled_run(url: str, journal: str, key: str, secret: str, recv_window: int) -> None:
    """Transfers from 8 coroutines, forever, journaled: the process a test kills."""
    async with Client(
        key, secret, api_url=url, papi_url=url, journal=journal, recv_window=recv_window
    ) as client:
        rng = random.Random()

        async def one() -> None:
            with contextlib.suppress(BinanceTransfersError):  # unknown outcomes included
                await _send(client, rng.random() < 0.5, Decimal(rng.choice(AMOUNTS)))

        while True:
            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(one)


if __name__ == "__main__":
    import sys

    url, journal, key, secret, *window = sys.argv[1:]
    anyio.run(journaled_run, url, journal, key, secret, int(window[0]) if window else 5000)
