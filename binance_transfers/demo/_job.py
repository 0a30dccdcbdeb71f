"""The rebalancing job the demo runs: hundreds of coroutines moving money.

Every operation has its mirror (spot -> futures, futures -> spot...), picked
at random, so balances wander but stay funded. Each coroutine sends one call
after another until the deadline; a call that could not get a permit before
the deadline is *deferred* (ThrottledError at once, no weight spent), not
failed.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Awaitable, Callable
from decimal import Decimal

import anyio
import attrs

from .._client import Client
from .._exceptions import (
    BinanceAPIError,
    BinanceTransfersError,
    IPBannedError,
    OutcomeUnknownError,
    ThrottledError,
    TooManyRequestsError,
)
from .._models import (
    BnbTransferSide,
    FuturesMarket,
    MarginTransferDirection,
    TransferType,
)

__all__ = ["JOBS", "OPERATIONS", "SATURATE", "Draws", "Tally", "coroutine_job", "worker"]

DESKS = ("desk-1@sim.invalid", "desk-2@sim.invalid")


class Draws(random.Random):
    """A coroutine's random draws, in its process's lane.

    Binance's history names a user universal transfer only by type, asset,
    amount and time, and a client settles an unknown outcome against it while
    excluding the transfers *it* knows of; it cannot exclude another process's.
    Processes sharing an account therefore keep their amounts apart: process
    ``lane`` of ``lanes`` sends amounts whose last unit (cent, or 0.00001 BTC)
    is its own. With one process (the default) the amounts are as before.
    """

    def __init__(self, seed: int, lane: int = 0, lanes: int = 1) -> None:
        super().__init__(seed)
        self.lane = lane
        self.lanes = lanes


Operation = Callable[[Client, Draws, float], Awaitable[object]]


def _usdt(rng: Draws, top: int = 50) -> Decimal:
    """Up to ``top`` USDT, in cents that are ``rng.lane + 1`` modulo ``rng.lanes``."""
    cents = rng.randint(0, max(top * 100 // rng.lanes, 1) - 1) * rng.lanes + rng.lane + 1
    return Decimal(cents) / 100


async def _futures(client: Client, rng: Draws, wait: float) -> object:
    market = rng.choice(list(FuturesMarket)) if rng.random() < 0.2 else FuturesMarket.USDM
    asset = "BTC" if market is FuturesMarket.COINM else "USDT"
    amount = Decimal("0.001") + Decimal(rng.lane) / 100_000 if asset == "BTC" else _usdt(rng)
    # Collections keep emptying the futures wallets: send more in than out.
    move = client.transfer_to_futures if rng.random() < 0.6 else client.transfer_from_futures
    return await move(asset=asset, amount=amount, market=market, max_wait=wait)


async def _wallets(client: Client, rng: Draws, wait: float) -> object:
    kind = rng.choice(
        [
            TransferType.MAIN_MARGIN,
            TransferType.MARGIN_MAIN,
            TransferType.MAIN_FUNDING,
            TransferType.FUNDING_MAIN,
            TransferType.UMFUTURE_MARGIN,
            TransferType.MARGIN_UMFUTURE,
        ]
    )
    return await client.transfer(type=kind, asset="USDT", amount=_usdt(rng), max_wait=wait)


async def _isolated(client: Client, rng: Draws, wait: float) -> object:
    if rng.random() < 0.5:
        return await client.transfer(
            type=TransferType.MARGIN_ISOLATEDMARGIN,
            asset="USDT",
            amount=_usdt(rng, 10),
            to_symbol="BNBUSDT",
            max_wait=wait,
        )
    return await client.transfer(
        type=TransferType.ISOLATEDMARGIN_MARGIN,
        asset="USDT",
        amount=_usdt(rng, 10),
        from_symbol="BNBUSDT",
        max_wait=wait,
    )


async def _desk_margin(client: Client, rng: Draws, wait: float) -> object:
    return await client.sub_account_margin_transfer(
        email=rng.choice(DESKS),
        asset="USDT",
        amount=_usdt(rng, 5),
        direction=rng.choice(list(MarginTransferDirection)),
        max_wait=wait,
    )


async def _desk_funding(client: Client, rng: Draws, wait: float) -> object:
    desk = rng.choice(DESKS)
    tran_id = f"demo-{rng.getrandbits(64):016x}"
    if rng.random() < 0.5:
        return await client.sub_account_transfer(
            to_email=desk,
            from_account_type="SPOT",
            to_account_type="SPOT",
            asset="USDT",
            amount=_usdt(rng),
            client_tran_id=tran_id,
            max_wait=wait,
        )
    return await client.sub_account_transfer(
        from_email=desk,
        from_account_type="SPOT",
        to_account_type="SPOT",
        asset="USDT",
        amount=_usdt(rng),
        client_tran_id=tran_id,
        max_wait=wait,
    )


async def _pm_collect(client: Client, rng: Draws, wait: float) -> object:
    return await client.pm_collect_asset(asset="USDT", max_wait=wait)


async def _pm_auto(client: Client, rng: Draws, wait: float) -> object:
    return await client.pm_auto_collect(max_wait=wait)


async def _pm_bnb(client: Client, rng: Draws, wait: float) -> object:
    side = rng.choice(list(BnbTransferSide))
    return await client.pm_bnb_transfer(amount="0.1", side=side, max_wait=wait)


async def _pro_collect(client: Client, rng: Draws, wait: float) -> object:
    return await client.pmpro_collect_asset(asset="USDT", max_wait=wait)


async def _pro_auto(client: Client, rng: Draws, wait: float) -> object:
    return await client.pmpro_auto_collect(max_wait=wait)


async def _pro_bnb(client: Client, rng: Draws, wait: float) -> object:
    side = rng.choice(list(BnbTransferSide))
    return await client.pmpro_bnb_transfer(amount="0.1", side=side, max_wait=wait)


async def _history(client: Client, rng: Draws, wait: float) -> object:
    rows = client.transfer_history(type=TransferType.MAIN_UMFUTURE, page_size=10, max_wait=wait)
    async for row in rows:
        return row
    return None


#: (label, relative frequency, operation)
OPERATIONS: tuple[tuple[str, int, Operation], ...] = (
    ("spot <-> futures", 20, _futures),
    ("between wallets", 20, _wallets),
    ("isolated margin", 5, _isolated),
    ("sub-account margin", 4, _desk_margin),
    ("sub-account transfer", 8, _desk_funding),
    ("PM collect asset", 10, _pm_collect),
    ("PM auto-collect", 3, _pm_auto),
    ("PM BNB transfer", 2, _pm_bnb),
    ("PM Pro collect asset", 10, _pro_collect),
    ("PM Pro auto-collect", 3, _pro_auto),
    ("PM Pro BNB transfer", 2, _pro_bnb),
    ("transfer history", 2, _history),
)


#: Issue 10's first target: only the three heaviest pools, /papi (PM collect
#: asset), PM Pro auto-collection's IP pool and universal transfer's UID pool.
#: Each coroutine keeps to one of them (:func:`coroutine_job`): with a random
#: pick, the slowest pool (8 auto-collections a window) would soon hold every
#: coroutine in its queue and leave the other two idle.
SATURATE: tuple[tuple[str, int, Operation], ...] = (
    ("PM collect asset", 1, _pm_collect),
    ("PM Pro auto-collect", 1, _pro_auto),
    ("between wallets", 1, _wallets),
)

#: The jobs a demo process can run, by name.
JOBS = {"rebalance": OPERATIONS, "saturate": SATURATE}


def coroutine_job(job: str, index: int) -> tuple[tuple[str, int, Operation], ...]:
    """The operations coroutine ``index`` of ``job`` picks from."""
    if job == "saturate":
        return (SATURATE[index % len(SATURATE)],)
    return JOBS[job]


@attrs.define
class Tally:
    """What the coroutines saw, from the client's side."""

    done: Counter[str] = attrs.Factory(Counter)
    refused: Counter[str] = attrs.Factory(Counter)
    """Binance said no (insufficient balance...): nothing happened."""
    deferred: int = 0
    """No permit before the deadline: not sent."""
    too_many_requests: int = 0
    banned: int = 0
    unknown: int = 0
    unknowns: list[OutcomeUnknownError] = attrs.Factory(list)
    """Each unknown outcome, to settle once the job is over."""
    errors: Counter[str] = attrs.Factory(Counter)

    @property
    def total_done(self) -> int:
        return sum(self.done.values())


async def worker(
    client: Client,
    tally: Tally,
    rng: Draws,
    deadline: float,
    now: Callable[[], float],
    job: tuple[tuple[str, int, Operation], ...] = OPERATIONS,
) -> None:
    """Send one random operation of ``job`` after another until ``deadline`` (``now()``'s clock)."""
    labels = [label for label, _, _ in job]
    weights = [weight for _, weight, _ in job]
    operations = {label: operation for label, _, operation in job}
    while (left := deadline - now()) > 0:
        label = rng.choices(labels, weights)[0]
        try:
            await operations[label](client, rng, left)
        except ThrottledError:
            tally.deferred += 1
        except TooManyRequestsError as exc:
            tally.too_many_requests += 1
            await anyio.sleep(exc.retry_after)
        except IPBannedError as exc:
            tally.banned += 1
            await anyio.sleep(exc.retry_after)  # calling on at once would only spin
        except OutcomeUnknownError as unknown:
            tally.unknown += 1
            tally.unknowns.append(unknown)
        except BinanceAPIError as exc:
            tally.refused[f"{label}: {exc.code}"] += 1
        except BinanceTransfersError as exc:
            tally.errors[f"{label}: {type(exc).__name__}"] += 1
        else:
            tally.done[label] += 1
