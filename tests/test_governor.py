"""The governor on a fake clock: windows, caps, fairness, deadlines, feedback, cancellation."""

from __future__ import annotations

import logging
import random
from typing import Any

import anyio
import looptime
import pytest

from binance_transfers import (
    ENDPOINTS,
    ConfigurationError,
    Governor,
    GovernorHooks,
    IPBannedError,
    Limits,
    Permit,
    ThrottledError,
)
from binance_transfers._governor._geometry import BAN_SLACK, CLOCK_STEP, step_band

E0 = 1_767_225_600.0  # a minute boundary on Binance's clock
PM_ASSET = ENDPOINTS["pm_collect_asset"]  # /papi, weight 30
PM_AUTO = ENDPOINTS["pm_auto_collect"]  # /papi, weight 750, 500 per rolling hour
PRO_AUTO = ENDPOINTS["pmpro_auto_collect"]  # own /sapi bucket, 1500, 500 per rolling hour
PMPRO_BNB = ENDPOINTS["pmpro_bnb_transfer"]  # RollingCap(2, 600): 2 calls in any 600 s (scaled)
SUB_MARGIN = ENDPOINTS["sub_account_margin_transfer"]  # own /sapi bucket, weight 1
SUB_UNIVERSAL = ENDPOINTS["sub_account_transfer"]  # IP 1 and UID 360
TIME = ENDPOINTS["server_time"]  # /api, weight 1

fake_time = looptime.enabled(strict=True)


def synced(governor: Governor, server_now: float, eps: float = 0.001) -> Governor:
    """Set the governor's estimate of Binance's clock: ``server_now`` now, +- ``eps``."""
    clock = governor.server_clock
    mono = clock.clock.monotonic()
    half = eps - 0.001
    clock.update(sent=mono - half, received=mono + half, server_ms=round(server_now * 1000))
    return governor


def server_now(governor: Governor) -> float:
    return governor.server_clock.now()


def mono(governor: Governor) -> float:
    return governor.server_clock.clock.monotonic()


def used(governor: Governor, key: str) -> int:
    return next(p.used for p in governor.snapshot() if p.key == key)


async def sleep_until(governor: Governor, server_time: float) -> None:
    await anyio.sleep(server_time - server_now(governor))


@fake_time
async def test_a_full_window_waits_for_the_next_one_at_its_start() -> None:
    """30-weight calls into a 100 pool: 3 now, the 4th when Binance's next minute starts."""
    g = synced(Governor(Limits(papi_ip=100), latency=0.0, cold_start=False), E0 + 20)
    for _ in range(3):
        await g.acquire(PM_ASSET)
    assert used(g, "papi-ip") == 90
    await g.acquire(PM_ASSET)
    # Admitted once the earliest possible landing (now - eps - guard) is in the
    # next minute: eps is 1 ms plus 50 ppm drift since the sync plus a clock
    # step, the guard 2 ms.
    assert E0 + 60.003 + CLOCK_STEP < server_now(g) < E0 + 60.006 + CLOCK_STEP


@fake_time
async def test_windows_follow_binances_clock_not_ours() -> None:
    """With Binance 25 s ahead of the local clock, the window still resets at Binance's :00."""
    g = synced(Governor(Limits(papi_ip=60), latency=0.0, cold_start=False), E0 + 50)
    await g.acquire(PM_ASSET)
    await g.acquire(PM_ASSET)
    start = anyio.current_time()
    await g.acquire(PM_ASSET)
    assert 9.99 < anyio.current_time() - start < 10.01 + CLOCK_STEP


@fake_time
async def test_a_request_near_the_boundary_is_charged_to_both_windows() -> None:
    """It may land on either side of :00, so both minutes count it until the answer says."""
    g = synced(Governor(Limits(papi_ip=100), latency=0.5, cold_start=False), E0 + 59.8)
    permit = await g.acquire(PM_ASSET)
    window = int((E0 + 60) // 60)
    counter = g._pools["papi-ip"].counter  # type: ignore[attr-defined]
    assert (counter.used(window - 1), counter.used(window)) == (30, 30)
    # The answer came back before :00 (on Binance's clock): it landed in the old minute.
    now = g.server_clock.clock.monotonic()
    g.observe(permit, sent=now, received=now + 0.1, status=200, headers={})
    assert (counter.used(window - 1), counter.used(window)) == (30, 0)


@fake_time
async def test_an_answer_after_the_boundary_keeps_both_charges() -> None:
    """If it may have landed in either minute, it stays counted in both."""
    g = synced(Governor(Limits(papi_ip=100), latency=0.5, cold_start=False), E0 + 59.8)
    permit = await g.acquire(PM_ASSET)
    counter = g._pools["papi-ip"].counter  # type: ignore[attr-defined]
    window = int((E0 + 60) // 60)
    now = g.server_clock.clock.monotonic()
    g.observe(permit, sent=now, received=now + 0.4, status=200, headers={})
    assert (counter.used(window - 1), counter.used(window)) == (30, 30)


@fake_time
async def test_steady_demand_gets_at_least_97_percent() -> None:
    """Demand 5 % over the limit for 10 minutes: every minute gets >= 97 % and <= 100 %."""
    limit = 6000
    g = synced(Governor(Limits(papi_ip=limit), latency=0.5, cold_start=False), E0 + 0.25, eps=0.02)
    landed: dict[int, int] = {}
    interval = 60 / (limit / 30) / 1.05

    async def one_call() -> None:
        permit = await g.acquire(PM_ASSET)
        clock = g.server_clock.clock
        sent = clock.monotonic()
        await anyio.sleep(0.05)  # one-way trip
        window = int((server_now(g)) // 60)
        landed[window] = landed.get(window, 0) + 30
        await anyio.sleep(0.05)
        g.observe(permit, sent=sent, received=clock.monotonic(), status=200, headers={})

    async with anyio.create_task_group() as tg:
        while server_now(g) < E0 + 600:
            tg.start_soon(one_call)
            await anyio.sleep(interval)
        tg.cancel_scope.cancel()
    full = [landed[w] for w in range(int(E0 // 60), int(E0 // 60) + 10)]
    assert max(landed.values()) <= limit
    assert min(full) >= 0.97 * limit, full


@fake_time
async def test_heavy_calls_are_not_starved_by_light_ones() -> None:
    """A 60-weight call queued behind a stream of 1-weight calls is served in its turn."""
    g = synced(Governor(Limits(sapi_ip=100), latency=0.0, cold_start=False), E0 + 1)
    heavy = ENDPOINTS.evolve("sub_account_margin_transfer", ip_weight=60)[
        "sub_account_margin_transfer"
    ]
    order: list[str] = []
    for _ in range(70):
        await g.acquire(SUB_MARGIN)

    async def light(i: int) -> None:
        await g.acquire(SUB_MARGIN)
        order.append(f"light{i}")

    async def big() -> None:
        await g.acquire(heavy)
        order.append("heavy")

    async with anyio.create_task_group() as tg:
        tg.start_soon(big)  # 60 > 30 left: must wait for the next minute
        await anyio.sleep(0.01)
        for i in range(200):
            tg.start_soon(light, i)
            await anyio.sleep(0.05)
    # Nothing overtook the heavy call: it went first at the next minute.
    assert order[0] == "heavy"
    assert order[1:41] == [f"light{i}" for i in range(40)]


@fake_time
async def test_a_saturated_pool_never_delays_another() -> None:
    """With /papi saturated and queued, a /sapi call is admitted at once."""
    g = synced(Governor(Limits(papi_ip=60), latency=0.0, cold_start=False), E0 + 1)
    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(g.acquire, PM_ASSET)
        await anyio.sleep(0.001)
        start = anyio.current_time()
        await g.acquire(SUB_MARGIN)
        await g.acquire(TIME)
        assert anyio.current_time() == start
        tg.cancel_scope.cancel()


@fake_time
async def test_max_wait_fails_at_once_with_the_earliest_time() -> None:
    """No permit within max_wait: ThrottledError immediately, 'not before' the next minute."""
    g = synced(Governor(Limits(papi_ip=60), latency=0.0, cold_start=False), E0 + 30)
    await g.acquire(PM_ASSET)
    await g.acquire(PM_ASSET)
    start = anyio.current_time()
    with pytest.raises(ThrottledError) as info:
        await g.acquire(PM_ASSET, max_wait=5)
    assert anyio.current_time() == start
    assert info.value.retry_at == pytest.approx(E0 + 60 + CLOCK_STEP, abs=0.01)
    assert info.value.retry_after == pytest.approx(30 + CLOCK_STEP, abs=0.01)
    assert g.estimate(PM_ASSET) == pytest.approx(E0 + 60 + CLOCK_STEP, abs=0.01)
    assert used(g, "papi-ip") == 60  # nothing spent
    await g.acquire(PM_ASSET, max_wait=31)
    assert server_now(g) == pytest.approx(E0 + 60 + CLOCK_STEP, abs=0.01)


@fake_time
async def test_max_wait_known_too_short_fails_before_queueing() -> None:
    """Counting the calls queued ahead, a too-short max_wait is refused at once."""
    g = synced(Governor(Limits(papi_ip=60), latency=0.0, cold_start=False), E0 + 30)
    await g.acquire(PM_ASSET)
    await g.acquire(PM_ASSET)
    results: list[tuple[str, float]] = []

    async def patient() -> None:
        await g.acquire(PM_ASSET)
        results.append(("patient", server_now(g)))

    async def hasty() -> None:
        try:
            await g.acquire(PM_ASSET, max_wait=45)
        except ThrottledError as exc:
            results.append(("hasty gave up", server_now(g)))
            results.append(("retry at", exc.retry_at))

    async with anyio.create_task_group() as tg:
        for _ in range(2):
            tg.start_soon(patient)
        await anyio.sleep(0.01)
        tg.start_soon(hasty)  # the two ahead fill the next minute: hasty's is the one after
    assert [r[0] for r in results] == ["hasty gave up", "retry at", "patient", "patient"]
    assert results[0][1] == pytest.approx(E0 + 30.01, abs=0.001)
    assert results[1][1] == pytest.approx(E0 + 120 + CLOCK_STEP, abs=0.01)
    assert used(g, "papi-ip") == 60


@fake_time
async def test_max_wait_expiring_in_the_queue_spends_nothing() -> None:
    """When the estimate was optimistic the caller leaves at its deadline, taking nothing."""
    table = ENDPOINTS.evolve("pm_collect_asset", ip_weight=60)
    big = table["pm_collect_asset"]
    small = table.evolve("pm_collect_asset", ip_weight=10)["pm_collect_asset"]
    g = synced(Governor(Limits(papi_ip=100), latency=0.0, cold_start=False), E0 + 30)
    await g.acquire(big)
    results: list[tuple[str, float]] = []

    async def patient() -> None:
        await g.acquire(big)
        results.append(("patient", server_now(g)))

    async def hasty() -> None:
        try:
            await g.acquire(small, max_wait=120)
        except ThrottledError:
            results.append(("hasty gave up", server_now(g)))

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(patient)
        await anyio.sleep(0.01)
        tg.start_soon(hasty)  # 190 queued -> two minutes by weight, but 60s don't pack: three
    assert [r[0] for r in results] == ["patient", "patient", "hasty gave up", "patient"]
    assert results[2][1] == pytest.approx(E0 + 150.01, abs=0.001)
    assert used(g, "papi-ip") == 60


@fake_time
async def test_cancelled_waiters_leave_no_trace() -> None:
    """Thousands of random cancellations, then the whole limit is still there."""
    g = synced(Governor(Limits(sapi_ip=1000), latency=0.0, cold_start=False), E0 + 1)
    for _ in range(1000):
        await g.acquire(SUB_MARGIN)
    rng = random.Random(7)
    admitted = 0

    async def waiter() -> None:
        nonlocal admitted
        with anyio.move_on_after(rng.uniform(0, 58)):
            await g.acquire(SUB_MARGIN)
            admitted += 1

    async with anyio.create_task_group() as tg:
        for _ in range(3000):
            tg.start_soon(waiter)
    assert admitted == 0
    assert g._waiters == {}
    await sleep_until(g, E0 + 60.01 + CLOCK_STEP)
    start = anyio.current_time()
    for _ in range(1000):
        await g.acquire(SUB_MARGIN)
    assert anyio.current_time() == start  # all of it, at once, on the fast path
    with pytest.raises(ThrottledError):
        await g.acquire(SUB_MARGIN, max_wait=1)


@fake_time
async def test_cancelling_some_waiters_keeps_fifo_for_the_rest() -> None:
    """The survivors are admitted in arrival order; the cancelled ones take nothing."""
    g = synced(Governor(Limits(sapi_ip=10), latency=0.0, cold_start=False), E0 + 1)
    for _ in range(10):
        await g.acquire(SUB_MARGIN)
    order: list[int] = []
    scopes: dict[int, anyio.CancelScope] = {}

    async def waiter(i: int) -> None:
        with anyio.CancelScope() as scope:
            scopes[i] = scope
            await g.acquire(SUB_MARGIN)
            order.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(30):
            tg.start_soon(waiter, i)
        await anyio.sleep(1)
        for i in range(0, 30, 3):
            scopes[i].cancel()
    survivors = [i for i in range(30) if i % 3]
    assert order == survivors


@fake_time
async def test_a_permit_granted_to_a_cancelled_caller_is_given_back() -> None:
    """Admitted and cancelled in the same instant: the weight returns to the pool."""
    g = synced(Governor(Limits(sapi_ip=10), latency=0.0, cold_start=False), E0 + 59.5)
    for _ in range(10):
        await g.acquire(SUB_MARGIN)
    async with anyio.create_task_group() as tg:
        tg.start_soon(g.acquire, SUB_MARGIN)
        await sleep_until(g, E0 + 59.9)
        await anyio.sleep(0.1)  # the timer fires at :00 and admits the waiter...
        tg.cancel_scope.cancel()  # ...which is cancelled before it ever resumed
    await sleep_until(g, E0 + 60.01 + CLOCK_STEP)
    for _ in range(10):
        await g.acquire(SUB_MARGIN, max_wait=0)


@fake_time
async def test_429_stops_that_pool_for_retry_after_only() -> None:
    """A 429 freezes the pools of the rejected call; other pools carry on."""
    g = synced(Governor(latency=0.0, cold_start=False), E0 + 1)
    permit = await g.acquire(PM_ASSET)
    now = g.server_clock.clock.monotonic()
    g.observe(permit, sent=now, received=now, status=429, headers={}, retry_after=12)
    frozen = next(p for p in g.snapshot() if p.key == "papi-ip")
    assert frozen.frozen_until == pytest.approx(server_now(g) + 12, abs=0.01)
    start = anyio.current_time()
    await g.acquire(SUB_MARGIN)
    assert anyio.current_time() == start
    await g.acquire(PM_ASSET)
    assert anyio.current_time() - start == pytest.approx(12, abs=0.01)


@fake_time
async def test_429_without_retry_after_waits_for_the_window_end() -> None:
    """No Retry-After: stop until the minute the call may have landed in is over."""
    g = synced(Governor(latency=0.5, cold_start=False), E0 + 10)
    permit = await g.acquire(PM_ASSET)
    now = g.server_clock.clock.monotonic()
    g.observe(permit, sent=now, received=now, status=429, headers={})
    await g.acquire(PM_ASSET)
    assert E0 + 60 < server_now(g) < E0 + 60.01 + CLOCK_STEP


@fake_time
async def test_418_fails_waiters_at_once_unless_they_wait_on_bans() -> None:
    """A ban stops every pool; waiting callers learn its end at once, patient ones wait."""
    g = synced(Governor(Limits(papi_ip=30), latency=0.0, cold_start=False), E0 + 1)
    permit = await g.acquire(PM_ASSET)
    outcomes: dict[str, tuple[float, float]] = {}

    async def impatient() -> None:
        try:
            await g.acquire(PM_ASSET)
        except IPBannedError as exc:
            outcomes["impatient"] = (anyio.current_time(), exc.retry_at)

    async def patient() -> None:
        await g.acquire(PM_ASSET, wait_on_ban=True)
        outcomes["patient"] = (server_now(g), 0.0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(impatient)
        tg.start_soon(patient)
        await anyio.sleep(5)
        banned_at = anyio.current_time()
        now = g.server_clock.clock.monotonic()
        # B7-3: the ban ends for us once nothing written then can land
        # before its end on Binance's clock: + eps + guard (1 + 10 + 2 ms),
        # and a twentieth of it later (its end is read on our clock estimate).
        end = E0 + 300 + CLOCK_STEP
        end += (end - server_now(g)) * BAN_SLACK
        g.observe(permit, sent=now, received=now, status=418, headers={}, banned_until=E0 + 300)
        with pytest.raises(IPBannedError):
            await g.acquire(SUB_MARGIN)  # every pool of the IP, at once
        assert anyio.current_time() == banned_at
        assert g.banned_until == pytest.approx(end, abs=0.01)
    when, retry_at = outcomes["impatient"]
    assert when == banned_at
    assert retry_at == pytest.approx(end, abs=0.01)  # B7-3
    assert outcomes["patient"][0] == pytest.approx(end, abs=0.01)  # B7-3
    assert g.banned_until is None


@fake_time
async def test_usage_headers_count_weight_spent_elsewhere() -> None:
    """Binance reporting 5000 used after our first 30 leaves us 1000, not 5970,
    less one request as heavy as the heaviest /papi serves (750): the first news
    of another process, which may not have heard of us and fill the window (F7).

    (Whoever spent it may still be spending: the governor takes what is left
    over a few trips rather than at once, see test_governor_shared_ip.py.)"""
    g = synced(Governor(latency=0.0, cold_start=False), E0 + 1)
    permit = await g.acquire(PM_ASSET)
    now = g.server_clock.clock.monotonic()
    g.observe(permit, sent=now, received=now, status=200, headers={"x-mbx-used-weight-1m": "5000"})
    assert used(g, "papi-ip") == 5000
    admitted = 0
    while True:
        try:
            await g.acquire(PM_ASSET, max_wait=E0 + 59 - server_now(g))
        except ThrottledError:
            break
        admitted += 1
    assert admitted == (1000 - 750) // 30  # 8 (before: 33)


@fake_time
async def test_usage_headers_are_not_double_counted() -> None:
    """Two answers seeing the same foreign weight count it once."""
    g = synced(Governor(latency=0.0, cold_start=False), E0 + 1)
    first = await g.acquire(PM_ASSET)
    second = await g.acquire(PM_ASSET)
    now = g.server_clock.clock.monotonic()
    g.observe(first, sent=now, received=now, status=200, headers={"x-mbx-used-weight-1m": "1030"})
    g.observe(second, sent=now, received=now, status=200, headers={"x-mbx-used-weight-1m": "1060"})
    assert used(g, "papi-ip") == 1060


@fake_time
async def test_an_hour_long_rolling_cap_in_milliseconds() -> None:
    """5 calls per rolling hour: the 6th waits for the 1st to expire, the 7th for the 2nd."""
    limits = Limits(caps={"pmpro_auto_collect": ((5, 3600.0),)})
    g = synced(Governor(limits, latency=0.5, cold_start=False), E0 + 1, eps=0.001)
    start = anyio.current_time()
    for _ in range(5):
        await g.acquire(PRO_AUTO)
        await anyio.sleep(60)  # also lets the 1500-weight bucket refill
    await g.acquire(PRO_AUTO)

    # Unanswered, each counts for the period plus its landing interval at
    # admission: trip 0.5 + 2 x (1 ms + a clock step + 50 ppm since the sync) + 2 x 2 ms guard.
    def margin(admitted: float) -> float:
        return 0.5 + 2 * (0.001 + CLOCK_STEP + 50e-6 * (admitted + 0.05)) + 2 * 0.002

    assert anyio.current_time() - start == pytest.approx(3600 + margin(0), abs=0.002)
    await g.acquire(PRO_AUTO)
    assert anyio.current_time() - start == pytest.approx(3660 + margin(60), abs=0.002)


@fake_time
async def test_a_call_stuck_on_its_cap_does_not_hold_the_shared_pool() -> None:
    """A PM auto-collection waiting out its hourly cap lets other /papi calls through."""
    limits = Limits(papi_ip=1000, caps={"pm_auto_collect": ((1, 3600.0),)})
    g = synced(Governor(limits, latency=0.0, cold_start=False), E0 + 1)
    await g.acquire(PM_AUTO)  # 750 of 1000, and the cap's only call
    async with anyio.create_task_group() as tg:
        tg.start_soon(g.acquire, PM_AUTO)
        await anyio.sleep(0.01)
        start = anyio.current_time()
        for _ in range(8):  # the remaining 250 of this minute
            await g.acquire(PM_ASSET)
        assert anyio.current_time() == start
        tg.cancel_scope.cancel()


@fake_time
async def test_multi_pool_calls_are_atomic() -> None:
    """IP 1 + UID 360: when the UID pool is full nothing is taken from the IP pool."""
    g = synced(Governor(Limits(sapi_uid=720), latency=0.0, cold_start=False), E0 + 1)
    await g.acquire(SUB_UNIVERSAL, account="a")
    await g.acquire(SUB_UNIVERSAL, account="a")
    with pytest.raises(ThrottledError):
        await g.acquire(SUB_UNIVERSAL, account="a", max_wait=1)
    ip_key = "sapi-ip POST /sapi/v1/sub-account/universalTransfer"
    assert used(g, ip_key) == 2
    await g.acquire(SUB_UNIVERSAL, account="b", max_wait=0)  # another account, same IP
    assert used(g, ip_key) == 3


@fake_time
async def test_renew_moves_a_late_permit_to_the_minute_it_is_sent_in() -> None:
    """A permit used after crossing :00 is re-charged to the new minute, not the old."""
    g = synced(Governor(Limits(papi_ip=60), latency=0.0, cold_start=False), E0 + 59.99)
    permit = await g.acquire(PM_ASSET)
    await anyio.sleep(0.02 + CLOCK_STEP)  # waited (for a connection) across the boundary
    assert g.renew(permit) is not None
    counter = g._pools["papi-ip"].counter  # type: ignore[attr-defined]
    window = int((E0 + 60) // 60)
    assert (counter.used(window - 1), counter.used(window)) == (0, 30)


@fake_time
async def test_renew_gives_the_permit_back_when_the_new_minute_is_full() -> None:
    """No room where the request would now land: renew refuses and refunds everything."""
    g = synced(Governor(Limits(papi_ip=60), latency=0.0, cold_start=False), E0 + 59.99 - CLOCK_STEP)
    late = await g.acquire(PM_ASSET)
    await anyio.sleep(0.02 + 2 * CLOCK_STEP)
    await g.acquire(PM_ASSET)
    await g.acquire(PM_ASSET)  # the new minute is full without `late`
    assert g.renew(late) is None
    counter = g._pools["papi-ip"].counter  # type: ignore[attr-defined]
    window = int((E0 + 60) // 60)
    assert (counter.used(window - 1), counter.used(window)) == (0, 60)


def test_a_weight_above_its_pool_is_a_configuration_error() -> None:
    """A call that could never be admitted fails loudly instead of waiting forever."""
    g = Governor(Limits(papi_ip=10), cold_start=False)
    with pytest.raises(ConfigurationError, match="could never"):
        g._plan(PM_ASSET, "default")


@fake_time
async def test_hooks_and_logs_report_throttling_and_freezes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Hooks see throttled, admitted and frozen events; the log says when pools stop."""
    events: list[tuple[str, str]] = []

    class Recorder(GovernorHooks):
        def throttled(self, endpoint: str, wait: float) -> None:
            events.append(("throttled", endpoint))

        def admitted(self, endpoint: str, waited: float) -> None:
            events.append(("admitted", endpoint))

        def frozen(self, pool: str, until: float, reason: str) -> None:
            events.append(("frozen", pool))

    caplog.set_level(logging.DEBUG, "binance_transfers")
    g = synced(
        Governor(Limits(papi_ip=30), latency=0.0, hooks=Recorder(), cold_start=False), E0 + 1
    )
    permit: Permit = await g.acquire(PM_ASSET)
    await g.acquire(PM_ASSET)
    g.observe(permit, sent=permit[1], received=permit[1], status=429, headers={}, retry_after=1)
    assert events == [
        ("admitted", "pm_collect_asset"),  # the first, at once
        ("throttled", "pm_collect_asset"),
        ("admitted", "pm_collect_asset"),
        ("frozen", "papi-ip"),
    ]
    assert "waits for a permit" in caplog.text
    assert "papi-ip" in caplog.text and "429" in caplog.text
    snap = next(p for p in g.snapshot() if p.key == "papi-ip")
    assert (snap.limit, snap.used, snap.waiters) == (30, 30, 0)
    assert "Governor" in repr(g)


@fake_time
async def test_a_late_answer_counts_the_request_where_it_may_have_landed() -> None:
    """An answer slower than the assumed trip: the next window is charged too, afterwards."""
    g = synced(Governor(Limits(papi_ip=100), latency=0.0, cold_start=False), E0 + 59.9)
    permit = await g.acquire(PM_ASSET)
    counter = g._pools["papi-ip"].counter  # type: ignore[attr-defined]
    window = int((E0 + 60) // 60)
    assert (counter.used(window - 1), counter.used(window)) == (30, 0)
    await sleep_until(g, E0 + 60.5)
    g.observe(permit, sent=permit[1], received=g.server_clock.clock.monotonic(), status=200)
    assert (counter.used(window - 1), counter.used(window)) == (30, 30)


@fake_time
async def test_slow_answers_lengthen_the_assumed_trip(caplog: pytest.LogCaptureFixture) -> None:
    """After 0.8 s round trips, a request 0.5 s before :00 is charged to both minutes."""
    g = synced(Governor(Limits(papi_ip=100), latency=0.1, cold_start=False), E0 + 10)
    permit = await g.acquire(PM_ASSET)
    await anyio.sleep(0.8)
    g.observe(permit, sent=permit[1], received=g.server_clock.clock.monotonic(), status=200)
    assert "longer than the 0.100 s assumed" in caplog.text
    await sleep_until(g, E0 + 59.5)
    await g.acquire(PM_ASSET)
    counter = g._pools["papi-ip"].counter  # type: ignore[attr-defined]
    window = int((E0 + 60) // 60)
    assert (counter.used(window - 1), counter.used(window)) == (60, 30)
    assert "trip=0.800s" in repr(g)


@fake_time
async def test_a_ban_covers_pools_first_used_after_it() -> None:
    """During a ban, a call to a pool never used before waits too (wait_on_ban)."""
    g = synced(Governor(latency=0.0, cold_start=False), E0 + 1)
    permit = await g.acquire(PM_ASSET)
    g.observe(permit, sent=permit[1], received=permit[1], status=418, banned_until=E0 + 301)
    start = anyio.current_time()
    await g.acquire(SUB_UNIVERSAL, account="new", wait_on_ban=True)
    ban = 300 + CLOCK_STEP  # B7-3, and a twentieth of it later
    assert anyio.current_time() - start == pytest.approx(ban * (1 + BAN_SLACK), abs=0.01)


@fake_time
async def test_the_longest_ban_is_waited_out_with_its_margin_too() -> None:
    """A 3-day ban (Binance's longest) keeps the minute of margin a ban's end is
    waited out with; a longer one is clamped to 3 days first."""
    for days, expected in ((3, 3 * 86400 + 60), (4, 3 * 86400 + 60)):
        g = synced(Governor(latency=0.0, cold_start=False), E0 + 1)
        permit = await g.acquire(PM_ASSET)
        now = server_now(g)
        g.observe(
            permit, sent=permit[1], received=permit[1], status=418, banned_until=now + days * 86400
        )
        assert g.banned_until is not None
        assert g.banned_until - now == pytest.approx(expected, abs=0.1), days


@fake_time
async def test_a_permit_waiting_to_be_sent_waits_out_a_429_that_came_meanwhile() -> None:
    """renew() refuses a permit whose pool froze (or whose IP was banned) after admission."""
    g = synced(Governor(latency=0.0, cold_start=False), E0 + 1)
    first = await g.acquire(PM_ASSET)
    second = await g.acquire(PM_ASSET)  # admitted, then waits for a connection
    g.observe(first, sent=first[1], received=first[1], status=429, retry_after=5)
    await anyio.sleep(0.01)
    assert g.renew(second) is None
    assert used(g, "papi-ip") == 30  # the refused one gave its weight back
    third = await g.acquire(SUB_MARGIN)
    fourth = await g.acquire(SUB_UNIVERSAL)  # admitted, then waits for a connection
    g.observe(third, sent=third[1], received=third[1], status=418, retry_after=60)
    await anyio.sleep(0.01)
    assert g.renew(fourth) is None  # banned meanwhile: it must not leave
    assert used(g, "sapi-ip POST /sapi/v1/sub-account/universalTransfer") == 0


@fake_time
async def test_a_429_freezes_only_the_pools_binance_says_are_full() -> None:
    """A cap's 429 whose usage header shows room leaves the shared /papi pool running."""
    g = synced(Governor(latency=0.0, cold_start=False), E0 + 1)
    permit = await g.acquire(PM_AUTO)  # /papi 750 + its hourly cap
    g.observe(
        permit,
        sent=permit[1],
        received=permit[1],
        status=429,
        headers={"x-mbx-used-weight-1m": "1500"},
        retry_after=600,
    )
    frozen = {p.key for p in g.snapshot() if p.frozen_until is not None}
    assert frozen == {f"cap0 default {PM_AUTO.name}"}
    start = anyio.current_time()
    await g.acquire(PM_ASSET)
    assert anyio.current_time() == start


@fake_time
async def test_one_free_cap_slot_lets_one_waiter_through_not_all() -> None:
    """Passing a rolling cap holds that slot: the other waiters stay at the cap."""
    limits = Limits(papi_ip=1500, caps={"pm_auto_collect": ((1, 60.0),)})
    g = synced(Governor(limits, latency=0.0, cold_start=False), E0 + 1)
    await g.acquire(PM_AUTO)  # the cap's one call for the next 60 s
    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(g.acquire, PM_AUTO)
        await sleep_until(g, E0 + 60.5)
        for _ in range(25):  # 750 of the new minute's 1500: room for one more collection
            await g.acquire(PM_ASSET)
        await sleep_until(g, E0 + 61.5)  # the cap's slot is free again
        pools = {p.key: p for p in g.snapshot()}
        assert pools["papi-ip"].used == 1500  # one collection went through...
        assert pools["papi-ip"].waiters == 0  # ...and no other one queues at /papi
        assert pools[f"cap0 default {PM_AUTO.name}"].waiters == 49
        assert g.estimate(PM_ASSET) == pytest.approx(E0 + 120 + CLOCK_STEP, abs=0.01)
        tg.cancel_scope.cancel()


@fake_time
async def test_an_unanswered_request_is_counted_where_it_may_have_landed() -> None:
    """A timeout: the request may have landed up to now, so later windows count it too."""
    g = synced(Governor(Limits(papi_ip=100), latency=0.0, cold_start=False), E0 + 59.9)
    permit = await g.acquire(PM_ASSET)
    await sleep_until(g, E0 + 62)
    g.observe(permit, sent=permit[1], received=None)
    counter = g._pools["papi-ip"].counter  # type: ignore[attr-defined]
    window = int((E0 + 60) // 60)
    assert (counter.used(window - 1), counter.used(window)) == (30, 30)


@fake_time
@pytest.mark.parametrize("written_after", [0.0, 0.2, 9.0, 55.0])
async def test_renew_in_the_cached_window_does_what_the_pools_renew_does(
    written_after: float,
) -> None:
    """FixedPool.renew keeps a cached window's record without recomputing it: the
    same record, in-flight weight, counts and answers as FixedPool.renew gives
    (written at once, later in the window, after a geometry refresh, and in the next)."""
    endpoint = ENDPOINTS["universal_transfer"]
    results = []
    for fast in (True, False):
        g = synced(Governor(Limits(sapi_uid=10**6), latency=0.1, cold_start=False), E0 + 10)
        clock = g.server_clock.clock
        for _ in range(3):  # answered: the pool caches its window
            renewed = g.renew(await g.acquire(endpoint))
            assert renewed is not None
            now = clock.monotonic()
            g.observe(renewed, sent=now, received=now + 0.05)
            await anyio.sleep(0.1)
        permit = await g.acquire(endpoint)
        pool: Any = permit[2][0][0]
        if not fast:
            pool._geo = None  # off the cached window: FixedPool.renew decides
        await anyio.sleep(written_after)
        now = clock.monotonic()
        cached = pool._geo is g._geometry(now) and pool._from <= now < pool._until
        assert cached == (fast and written_after < 5)  # a geometry holds 5 s here
        renewed = g.renew(permit)
        assert renewed is not None
        state = _pool_state(pool)  # whatever the pool keeps, right after the write
        g.observe(renewed, sent=now, received=now + 0.05)
        results.append(
            (
                state,
                [(w, rec) for _, w, rec in renewed[2]],
                type(renewed[2]).__name__,
                pool.inflight,
                dict(pool.counter._used),
                dict(pool.counter._foreign),
                [(s.key, s.used) for s in g.snapshot()],
            )
        )
    assert results[0] == results[1]


@fake_time
async def test_a_new_governors_first_window_is_admitted_cached_as_the_slow_path_would() -> None:
    """Before the first window whose opening a new governor sees (``_first_opening``),
    a request has nothing to wait for: the cached one-window path admits it (it
    used to be off for the whole first window of every governor, where the
    benchmarks run: 1,700 against 1,100 Python operations a transfer), with the
    same records, counts, in-flight weight and pool state as the slow path."""
    endpoint = ENDPOINTS["universal_transfer"]
    header = "x-sapi-used-uid-weight-1m"
    results = []
    for fast in (True, False):
        g = synced(Governor(Limits(sapi_uid=10**6), latency=0.1), E0 + 10)  # a cold start
        clock = g.server_clock.clock
        start = clock.monotonic()  # the second governor runs later
        steps = []
        for i in range(1, 21):
            permit = await g.acquire(endpoint)
            pool: Any = permit[2][0][0]
            now = clock.monotonic()
            cached = pool._geo is g._geometry(now) and pool._from <= now < pool._until
            if not fast:
                pool._geo = None  # off the cached window: FixedPool.take and renew decide
            renewed = g.renew(permit)
            assert renewed is not None
            state = _pool_state(pool)
            state["born"] = repr(pool.born - start)
            g.observe(renewed, sent=now, received=now + 0.05, headers={header: str(900 * i)})
            await anyio.sleep(0.1)
            steps.append(
                (
                    cached,
                    state,
                    [(w, rec) for _, w, rec in renewed[2]],
                    pool.inflight,
                    dict(pool.counter._used),
                    [(s.key, s.used) for s in g.snapshot()],
                )
            )
        assert pool.opening == int((E0 + 60) // 60)  # still before the first opening
        results.append(steps)
    cached = [step[0] for step in results[0]]
    assert cached[2:] == [True] * 18  # on from the first warm answer
    assert [step[1:] for step in results[0]] == [step[1:] for step in results[1]]


def _pool_state(pool: Any) -> dict[str, object]:
    """Every slot of a pool, comparable across two governors (dicts by their values:
    a key may be an ``id()``). Not the cached window's bounds: monotonic times,
    and the second governor runs later."""
    skip = {"_geo", "_from", "_until", "_try_add", "counter", "spec", "queue"}
    names = {n for cls in type(pool).__mro__ for n in getattr(cls, "__slots__", ())} - skip
    state: dict[str, object] = {}
    for name in sorted(names):
        value = getattr(pool, name)
        if name == "flying":  # (write time, weight): monotonic times, weights kept
            value = {key: weight for key, (_, weight) in value.items()}
        if name == "counts":  # (answer time, count): monotonic times, counts kept
            value = {w: [count for _, count in seq] for w, seq in value.items()}
        if isinstance(value, dict):
            value = (len(value), sorted(map(repr, value.values())))
        state[name] = repr(value)
    return state


@fake_time
async def test_an_answered_cap_call_counts_past_a_clock_step() -> None:
    """A rolling cap's call counts a period on Binance's clock from its arrival:
    after a step of that clock (up to CLOCK_STEP) the period ends that
    much later on ours, beyond drift and the guard band."""
    limits = Limits(papi_ip=10**6, caps={"pm_auto_collect": ((1, 60.0),)})
    g = synced(Governor(limits, latency=0.05, cold_start=False), E0 + 1)
    clock = g.server_clock.clock
    permit = g.renew(await g.acquire(PM_AUTO))
    assert permit is not None
    sent = clock.monotonic()
    await anyio.sleep(0.05)
    answered = clock.monotonic()
    g.observe(permit, sent=sent, received=answered, status=200)
    guard = g._geometry(answered).guard
    await g.acquire(PM_AUTO)
    waited = clock.monotonic() - answered
    assert waited == pytest.approx(60 * (1 + 100e-6) + guard + CLOCK_STEP, abs=0.001)


@fake_time
async def test_a_seeded_cap_call_counts_past_a_clock_step() -> None:
    """A call of an earlier life, seeded from its journal, counts as an answered one:
    its period ends a clock step later too."""
    limits = Limits(papi_ip=10**6, caps={"pm_auto_collect": ((1, 60.0),)})
    g = synced(Governor(limits, latency=0.05, cold_start=False), E0 + 30)
    clock = g.server_clock.clock
    g.seed(PM_AUTO, [E0 + 10])  # sent 20 s ago
    geometry = g._geometry(clock.monotonic())
    start = clock.monotonic()
    await g.acquire(PM_AUTO)
    until = -20 + geometry.margin + 60 * (1 + 100e-6) + geometry.guard + CLOCK_STEP
    assert clock.monotonic() - start == pytest.approx(until, abs=0.001)


# -- B6-1: a rolling cap and the 10 ms clock step (the review's tests) -----------------


def _synced_instantly(governor: Governor, server_now: float) -> Governor:
    """A sync whose round trip was instant: uncertainty 1 ms."""
    clock = governor.server_clock
    mono = clock.clock.monotonic()
    clock.update(sent=mono, received=mono, server_ms=round(server_now * 1000))
    return governor


_B6_TRIP = 0.002


@fake_time
async def test_a_10ms_step_back_during_a_caps_period_keeps_it_under_the_cap() -> None:
    """Two calls fill the cap; Binance's clock steps back by the step eps allows; the
    third call must not reach Binance while it still counts the first."""
    governor = _synced_instantly(
        Governor(Limits(time_scale=60), latency=0.0, cold_start=False), E0 + 0.5
    )
    window = governor.limits.window
    step = step_band(window)
    assert step == 0.010  # the step eps is built to cover at this scale
    period = PMPRO_BNB.caps[0].seconds / governor.limits.time_scale
    monotonic = governor.server_clock.clock.monotonic
    true_shift = governor.server_clock.shift  # Binance's clock = our monotonic + this
    landed: list[float] = []  # Binance's clock at each call's arrival

    async def call() -> None:
        permit = await governor.acquire(PMPRO_BNB)
        written = governor.renew(permit)
        assert written is not None
        sent = monotonic()
        await anyio.sleep(_B6_TRIP / 2)
        landed.append(monotonic() + true_shift)
        await anyio.sleep(_B6_TRIP / 2)
        governor.observe(written, sent=sent, received=monotonic(), status=200)

    await call()
    await call()
    true_shift -= step  # an NTP step of Binance's clock, within what eps allows
    await call()
    # Binance's rolling cap at the third call's arrival: calls within the last period.
    counted = [t for t in landed if landed[-1] - period < t <= landed[-1]]
    assert len(counted) <= 2, (
        f"{len(counted)} calls in Binance's {period} s rolling period (cap 2): "
        f"the third arrived {landed[-1] - landed[0]:.4f} s after the first on Binance's clock"
    )
