"""``snapshot()`` tells Binance's count (landed) from the governor's reservation.

Near a window boundary a request in flight is reserved in both windows it may
land in, so ``used`` may pass the limit: a view that showed ``used / limit``
read like a breach. ``landed`` and ``in_flight`` say what Binance counts and
what is still on its way.
"""

from __future__ import annotations

import looptime

from binance_transfers import ENDPOINTS, Governor, Limits, PoolSnapshot

from .test_governor import synced

E0 = 1_767_225_600.0  # a minute boundary on Binance's clock
PM_ASSET = ENDPOINTS["pm_collect_asset"]  # /papi, weight 30
PM_AUTO = ENDPOINTS["pm_auto_collect"]  # /papi weight plus a rolling cap

fake_time = looptime.enabled(strict=True)


def pool(governor: Governor, key: str) -> PoolSnapshot:
    return next(p for p in governor.snapshot() if p.key == key)


@fake_time
async def test_in_flight_weight_is_apart_from_what_binance_reported() -> None:
    """Written and unanswered: in flight, not landed; an answer's usage header: landed."""
    g = synced(Governor(Limits(papi_ip=100), latency=0.0, cold_start=False), E0 + 20)
    permits = [await g.acquire(PM_ASSET) for _ in range(3)]
    snap = pool(g, "papi-ip")
    assert (snap.used, snap.landed, snap.in_flight) == (90, 0, 0)  # admitted, not written
    written = [g.renew(p) for p in permits]
    assert all(w is not None for w in written)
    snap = pool(g, "papi-ip")
    assert (snap.used, snap.landed, snap.in_flight) == (90, 0, 90)
    first = written[0]
    assert first is not None
    mono = g.server_clock.clock.monotonic()
    # Binance counts 30 of ours plus 45 spent by another process on this IP.
    g.observe(first, sent=first[1], received=mono, status=200,
              headers={"x-mbx-used-weight-1m": "75"})  # fmt: skip
    snap = pool(g, "papi-ip")
    assert (snap.landed, snap.in_flight) == (75, 60)
    assert snap.landed <= snap.limit


@fake_time
async def test_a_rolling_cap_counts_calls_in_flight_apart() -> None:
    """A cap: calls written and unanswered are in flight; answered ones have landed."""
    g = synced(Governor(Limits(), latency=0.0, cold_start=False), E0 + 20)
    a = g.renew(await g.acquire(PM_AUTO))
    b = g.renew(await g.acquire(PM_AUTO))
    assert a is not None and b is not None
    key = f"cap0 default {PM_AUTO.name}"
    snap = pool(g, key)
    assert (snap.used, snap.landed, snap.in_flight) == (2, 0, 2)
    mono = g.server_clock.clock.monotonic()
    g.observe(a, sent=a[1], received=mono, status=200)
    snap = pool(g, key)
    assert (snap.used, snap.landed, snap.in_flight) == (2, 1, 1)
