"""aclose() at every await point under trio.

After 0 to 30 ms and 0, 1,
2, ... checkpoints, with one or two transfers under way (``write_ahead=1``), a
client is closed; the governor is shared by every client. Every transfer
executed must reach its caller (result or ``OutcomeUnknownError``) or
``on_detached``; the governor must have nothing in flight and nobody waiting.

``aclose`` alone: a regression test for the client's cached scope class.
``owner-cancel-and-aclose`` (the first caller's own scope cancelled just
before aclose(), as a failing nursery sibling does): before the fix, 20 of 54
executed transfers (one call) reached neither caller nor ``on_detached``.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
import trio
import trio.testing

from binance_transfers import (
    Client,
    ClientClosedError,
    Governor,
    OutcomeUnknownError,
    TransferType,
)
from binance_transfers._transport import ExchangeOutcome
from binance_transfers.sim import Fault, SimulatedExchange

UNIVERSAL = "universal_transfer"
DELAYS = (0.0, 0.019, 0.02, 0.021, 0.03)


@pytest.mark.parametrize("own", [False, True], ids=["aclose", "owner-cancel-and-aclose"])
@pytest.mark.parametrize("calls", [1, 2], ids=["one-call", "two-calls-gate-contended"])
def test_aclose_at_any_checkpoint_under_trio_loses_nothing_and_leaks_nothing(
    calls: int, own: bool
) -> None:
    """With ``own``, the first caller's owner cancels its scope just before aclose()."""

    exchange = SimulatedExchange(seed=3)
    exchange.add_demo_account()
    exchange.faults.add(Fault.latency(0.02), endpoint=UNIVERSAL, probability=1.0)
    detached: list[ExchangeOutcome] = []
    returned: list[int] = []
    unknown = 0
    problems: list[str] = []
    started: set[str] = set()  # owned callers that ran before the close
    closed: set[str] = set()  # owned callers that got ClientClosedError

    async def one(client: Client, where: str, owned: bool = False) -> None:
        nonlocal unknown
        try:
            done = await client.transfer(
                type=TransferType.MAIN_UMFUTURE, asset="USDT", amount=Decimal("1")
            )
            returned.append(done.tran_id)
        except OutcomeUnknownError:
            unknown += 1
        except ClientClosedError:
            if owned:
                closed.add(where)
        except BaseException as exc:
            if not (owned and isinstance(exc, trio.Cancelled)):
                problems.append(f"{where}: caller got {exc!r}")
            raise

    async def main() -> None:
        # A fresh exchange: no previous life to probe for. (Cold, the first
        # cancelled write would hold the pool to the next minute: its answer
        # alone could tell whether the window was full; the sweep lasts 2 s.)
        governor = Governor(exchange.limits, clock=exchange.clock, cold_start=False)
        for delay, turns in itertools.product(DELAYS, range(12)):
            client = exchange.client(
                governor=governor, on_detached=detached.append, max_in_flight=1
            )
            client._transport.write_ahead = 1
            where = f"delay {delay}, {turns} checkpoints"
            owner = trio.CancelScope()

            async def owned(
                client: Client = client, where: str = where, owner: trio.CancelScope = owner
            ) -> None:
                started.add(where)
                with owner:
                    await one(client, where, owned=own)

            async with trio.open_nursery() as nursery:
                for n in range(calls):
                    nursery.start_soon(owned if n == 0 else one, client, where)
                if delay:
                    await trio.sleep(delay)
                for _ in range(turns):
                    await trio.lowlevel.checkpoint()
                under_way = where in started  # (not yet run: ClientClosedError is its due)
                if own:
                    owner.cancel()
                await client.aclose()
            if own and under_way and where in closed:
                problems.append(f"{where}: the owner's cancellation became ClientClosedError")
            busy = [p for p in governor.snapshot() if p.in_flight or p.waiters]
            if busy:
                problems.append(f"{where}: governor busy {busy}")

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    executed = [int(str(e.result)) for e in exchange.ledger.executed(UNIVERSAL)]
    hooked = [d for d in detached if d.data is not None]
    assert problems == []
    assert len(executed) == len(set(executed))
    assert len(executed) == len(returned) + unknown + len(hooked)
    assert executed, "the sweep never reached the wire"
