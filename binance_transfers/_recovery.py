"""Recovery after a restart: what the journal says earlier runs left.

:meth:`Client.recover` settles the rows a crash left open; :func:`seed` tells
the governor what earlier runs sent to endpoints with rolling caps, before
this run's first mutating call. Split out of ``_client.py``, which keeps the
calls' own path.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import anyio
import attrs

from ._exceptions import ConfigurationError
from ._journal import UNKNOWN, Journal
from ._reconcile import Settlement, Window, claimant
from ._settling import journal_settlement, remember, request_keys, row_owner, settling_once

if TYPE_CHECKING:
    from ._client import Client


async def recover(client: Client) -> tuple[Settlement, ...]:
    """The body of :meth:`Client.recover` (its docstring says what it does)."""
    client._check_open()
    journal = client.journal
    if journal is None:
        raise ConfigurationError("recover() needs a journal: Client(..., journal=PATH)")
    await seed(client, journal)
    orphans = set(client._orphans)
    client._orphans -= orphans  # settled below (a concurrent recover() skips them)
    try:
        return await settle_left_over(client, journal, orphans)
    finally:
        client._orphans |= orphans  # those left unsettled by a failure


async def seed(client: Client, journal: Journal) -> None:
    """Tell the governor what earlier runs sent to endpoints with rolling caps.

    A restarted process (after a crash, a kill, a deploy) would otherwise
    take a cap such as "2 per 10 minutes" as unused and earn a 429. Each
    journal row within an endpoint's longest cap counts (at its
    ``timestamp``, else when its intent was written): a row refused
    before sending counts too, which only ever makes the governor wait
    longer, never shorter. Once per client, before its first mutating call.
    """
    while client._seeded is not None:
        if client._seeded.is_set():
            return
        # Another call is seeding: wait for it. If it is cancelled or fails
        # on the way, nothing is seeded (``_seeded`` is None again) and this
        # call seeds: a full cap taken as unused earns a 429.
        await client._seeded.wait()
    done = client._seeded = anyio.Event()
    try:
        periods = {
            endpoint.name: max(cap.seconds for cap in endpoint.caps)
            for endpoint in client.endpoints.values()
            if endpoint.caps
        }
        now_ms = client.governor.server_clock.now_ms()
        since = {name: now_ms - math.ceil(period * 1000) for name, period in periods.items()}
        sent = await journal.sent_since(since)
        for name in periods:
            client.governor.seed(
                client.endpoints[name],
                [ms / 1000 for ms in sent.get(name, [])],
                account=client.account,
            )
    except BaseException:
        client._seeded = None
        raise
    finally:
        done.set()


async def settle_left_over(
    client: Client, journal: Journal, orphans: set[int]
) -> tuple[Settlement, ...]:
    left = await journal.left_over(also=orphans)
    if not left:
        return ()
    for tran_id in await journal.claimed():
        client._reconciler.claimed.setdefault(tran_id, None)
    await client._transport.sync_time()
    now_ms = client.governor.server_clock.now_ms()
    found = []
    for intent in left:
        timestamp = intent.timestamp if intent.state == UNKNOWN else None
        keys = request_keys(None, intent.id)
        async with settling_once(client, keys) as known:
            if known is not None:  # settled meanwhile by reconcile()
                settlement = attrs.evolve(known, journal_id=intent.id)
            else:
                if timestamp is not None:
                    first, last = timestamp - 1000, timestamp + intent.recv_window
                else:
                    # Never answered: sent (if at all) between the intent and now.
                    first, last = intent.created_ms - 1000, now_ms + intent.recv_window
                settlement = await client._reconciler.settle(
                    intent.endpoint,
                    intent.params,
                    Window(first_ms=first, last_ms=last),
                    claimant=claimant(intent.endpoint, intent.params, timestamp),
                    owner=row_owner(intent),
                )
                settlement = attrs.evolve(settlement, journal_id=intent.id)
                remember(client, settlement, keys)
            await journal_settlement(client, intent.id, settlement)
            if settlement.executed is not None:
                client._reconciler.closed(intent=intent.id)
        orphans.discard(intent.id)
        found.append(settlement)
    return tuple(found)
