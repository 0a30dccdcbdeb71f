"""Issue 7: the governor at the edges production reaches (429s, bad headers, slow
and lost requests, many accounts, hooks). Each test failed on the code before
the fix it guards."""

from __future__ import annotations

import math

import anyio
import httpx
import looptime
import pytest

from binance_transfers import (
    ENDPOINTS,
    Client,
    ConfigurationError,
    Endpoint,
    Governor,
    GovernorHooks,
    Limits,
    Permit,
    RollingCap,
    ThrottledError,
)
from binance_transfers._governor._geometry import BAN_PAD, CLOCK_STEP

from .conftest import API_KEY, SECRET, FakeBinance, error, ok
from .test_governor import mono, server_now, synced

E0 = 1_767_225_600.0  # a minute boundary on Binance's clock
PM_ASSET = ENDPOINTS["pm_collect_asset"]  # /papi, weight 30
PM_AUTO = ENDPOINTS["pm_auto_collect"]  # /papi 750 + 500 per rolling hour
PRO_AUTO = ENDPOINTS["pmpro_auto_collect"]  # own /sapi bucket 1500 + 500 per rolling hour
SUB_MARGIN = ENDPOINTS["sub_account_margin_transfer"]  # own /sapi bucket, weight 1
SUB_UNIVERSAL = ENDPOINTS["sub_account_transfer"]  # IP 1 and UID 360
THREE_DAYS = 3 * 86400.0

fake_time = looptime.enabled(strict=True)


def frozen(governor: Governor) -> dict[str, float]:
    return {p.key: p.frozen_until for p in governor.snapshot() if p.frozen_until is not None}


async def fill(governor: Governor, endpoint: Endpoint, until: float) -> list[Permit]:
    """Every permit ``endpoint`` gets before Binance time ``until`` (waiting as needed)."""
    permits = []
    while True:
        try:
            permits.append(await governor.acquire(endpoint, max_wait=until - server_now(governor)))
        except ThrottledError:
            return permits


async def sleep_until(governor: Governor, server_time: float) -> None:
    await anyio.sleep(server_time - server_now(governor))


# -- defect 1: Retry-After is always honoured -----------------------------------


@fake_time
async def test_a_429_is_honoured_even_when_the_usage_header_shows_room() -> None:
    """Binance says wait 30 s: the pool waits 30 s, whatever the header says."""
    g = synced(Governor(latency=0.0, cold_start=False), E0 + 1)
    permit = await g.acquire(PM_ASSET)
    now = mono(g)
    g.observe(
        permit,
        sent=now,
        received=now,
        status=429,
        headers={"x-mbx-used-weight-1m": "30"},
        retry_after=30,
    )
    start = anyio.current_time()
    await g.acquire(PM_ASSET)
    assert anyio.current_time() - start == pytest.approx(30, abs=0.01)


@fake_time
async def test_a_429_no_pool_of_the_request_explains_stops_the_whole_ip() -> None:
    """Every header shows room: the broken limit is unknown, so every pool of the IP waits."""
    g = synced(Governor(latency=0.0, cold_start=False), E0 + 1)
    await g.acquire(SUB_MARGIN)  # a pool that exists before the 429...
    permit = await g.acquire(PM_ASSET)
    now = mono(g)
    g.observe(
        permit,
        sent=now,
        received=now,
        status=429,
        headers={"x-mbx-used-weight-1m": "30"},
        retry_after=20,
    )
    with pytest.raises(ThrottledError):
        await g.acquire(SUB_MARGIN, max_wait=1)
    with pytest.raises(ThrottledError):  # ...and one first used after it
        await g.acquire(SUB_UNIVERSAL, account="new", max_wait=1)
    start = anyio.current_time()
    await g.acquire(SUB_MARGIN)
    assert anyio.current_time() - start == pytest.approx(20, abs=0.01)


@fake_time
async def test_a_429_on_ip_and_uid_without_headers_stops_both() -> None:
    """Nothing says whether the IP or the UID limit broke: both wait; other pools do not."""
    g = synced(Governor(latency=0.0, cold_start=False), E0 + 1)
    permit = await g.acquire(SUB_UNIVERSAL)
    now = mono(g)
    g.observe(permit, sent=now, received=now, status=429, retry_after=10)
    assert set(frozen(g)) == {
        "sapi-ip POST /sapi/v1/sub-account/universalTransfer",
        "sapi-uid default POST /sapi/v1/sub-account/universalTransfer",
    }
    start = anyio.current_time()
    await g.acquire(SUB_MARGIN)
    assert anyio.current_time() == start


@fake_time
async def test_a_429_holds_back_what_is_queued_behind_it() -> None:
    """Callers already queued for the pool wait out the freeze too."""
    g = synced(Governor(Limits(papi_ip=60), latency=0.0, cold_start=False), E0 + 58)
    first = await g.acquire(PM_ASSET)
    await g.acquire(PM_ASSET)
    admitted: list[float] = []

    async def queued() -> None:
        await g.acquire(PM_ASSET)
        admitted.append(server_now(g))

    async with anyio.create_task_group() as tg:
        tg.start_soon(queued)
        await anyio.sleep(0.5)
        g.observe(first, sent=first[1], received=mono(g), status=429, retry_after=10)
    assert admitted == [pytest.approx(E0 + 68.5, abs=0.01)]


# -- defect 2: Retry-After and ban lengths are bounded -------------------------


@fake_time
@pytest.mark.parametrize("value", [1e9, 1e12])
async def test_retry_after_is_clamped_to_binances_longest_ban(value: float) -> None:
    """1e9 seconds (2057): the pool stops for 3 days at most, and later calls still work."""
    g = synced(Governor(latency=0.0, cold_start=False), E0 + 1)
    permit = await g.acquire(PM_ASSET)
    now = mono(g)
    g.observe(permit, sent=now, received=now, status=429, retry_after=value)
    until = frozen(g)["papi-ip"]
    assert server_now(g) + THREE_DAYS - 1 < until <= server_now(g) + THREE_DAYS + 0.01
    with pytest.raises(ThrottledError) as info:
        await g.acquire(PM_ASSET, max_wait=1)
    assert info.value.retry_after <= THREE_DAYS + 0.01


@fake_time
@pytest.mark.parametrize("value", [math.nan, -5.0, -math.inf, math.inf])
async def test_a_meaningless_retry_after_is_treated_as_absent(value: float) -> None:
    """NaN, negative or infinite: stop until the window the call may have landed in is over."""
    g = synced(Governor(latency=0.0, cold_start=False), E0 + 10)
    permit = await g.acquire(PM_ASSET)
    now = mono(g)
    g.observe(permit, sent=now, received=now, status=429, retry_after=value)
    assert frozen(g)["papi-ip"] == pytest.approx(E0 + 60 + CLOCK_STEP, abs=0.01)
    await g.acquire(PM_ASSET)
    assert E0 + 60 < server_now(g) < E0 + 60.02


@fake_time
async def test_a_ban_is_clamped_to_three_scaled_days() -> None:
    """A 418 'until 2057' stops the IP for Binance's longest ban, scaled, and the
    margin a ban's end is waited out with (a minute, scaled)."""
    g = synced(Governor(Limits(time_scale=60), latency=0.0, cold_start=False), E0 + 1)
    permit = await g.acquire(PM_ASSET)
    now = mono(g)
    g.observe(permit, sent=now, received=now, status=418, banned_until=2_700_000_000.0)
    banned = g.banned_until
    assert banned is not None
    longest = (THREE_DAYS + BAN_PAD) / 60
    assert banned == pytest.approx(server_now(g) + longest, abs=0.01)
    g.ban(math.inf)
    assert g.banned_until == pytest.approx(server_now(g) + longest, abs=0.01)


# -- defect 3: storage keeps every window a charge touches ----------------------


@fake_time
async def test_windows_are_never_forgotten_while_a_charge_may_land_in_them() -> None:
    """At time scale 600 a 0.5 s trip spans 6 windows: no true window ever gets over 30."""
    g = synced(Governor(Limits(papi_ip=30, time_scale=600), latency=0.5, cold_start=False), E0 + 1)
    landed: dict[int, int] = {}
    for _ in range(2000):
        try:
            permit = await g.acquire(PM_ASSET, max_wait=0)
        except ThrottledError:
            pass
        else:  # lands at once (the true clock is the estimated one here)
            window = int(server_now(g) // 0.1)
            landed[window] = landed.get(window, 0) + 30
            g.observe(permit, sent=mono(g), received=mono(g), status=200)
        await anyio.sleep(0.003)
    assert max(landed.values()) == 30
    assert len(landed) > 30  # and it kept going


# -- defect 4: rolling caps are corrected by the answer --------------------------


@fake_time
async def test_a_slow_call_counts_in_its_rolling_cap_from_when_it_may_have_landed() -> None:
    """Its answer came 5 s after admission: the next call waits 600 s after that answer."""
    limits = Limits(caps={"pmpro_auto_collect": ((1, 600.0),)})
    g = synced(Governor(limits, latency=0.5, cold_start=False), E0 + 1)
    permit = await g.acquire(PRO_AUTO)
    start = anyio.current_time()
    await anyio.sleep(5)
    g.observe(permit, sent=permit[1], received=mono(g), status=200)
    await anyio.sleep(100)
    for _ in range(40):  # fast answers since: the trip bound relaxes to 0.5 s
        quick = await g.acquire(SUB_MARGIN)
        g.observe(quick, sent=mono(g), received=mono(g), status=200)
        await anyio.sleep(1)
    await g.acquire(PRO_AUTO)
    assert anyio.current_time() - start >= 605


@fake_time
async def test_a_call_in_flight_keeps_its_cap_slot_until_its_answer() -> None:
    """Written and unanswered after its period: the slot is still taken."""
    limits = Limits(caps={"pmpro_auto_collect": ((1, 60.0),)})
    g = synced(Governor(limits, latency=0.5, cold_start=False), E0 + 1)
    permit = g.renew(await g.acquire(PRO_AUTO))  # written
    assert permit is not None
    await anyio.sleep(100)
    with pytest.raises(ThrottledError):
        await g.acquire(PRO_AUTO, max_wait=1)
    g.observe(permit, sent=permit[1], received=mono(g), status=200)
    start = anyio.current_time()
    await g.acquire(PRO_AUTO)
    # An answered cap call also covers a clock step.
    assert anyio.current_time() - start == pytest.approx(60 + CLOCK_STEP, abs=0.01)


# -- defect 5: in-flight requests stay charged until their answer ---------------


@fake_time
async def test_a_request_in_flight_past_its_bound_is_charged_to_the_next_window() -> None:
    """Written before :00 with a tiny trip bound and still unanswered after it."""
    g = synced(Governor(Limits(papi_ip=100), latency=0.0, cold_start=False), E0 + 59.9)
    slow = g.renew(await g.acquire(PM_ASSET))
    assert slow is not None
    await sleep_until(g, E0 + 60.01)
    await g.acquire(PM_ASSET, max_wait=0)
    await g.acquire(PM_ASSET, max_wait=0)
    with pytest.raises(ThrottledError):  # 30 in flight + 60 + 30 > 100
        await g.acquire(PM_ASSET, max_wait=0)
    g.observe(slow, sent=slow[1], received=mono(g), status=200)
    # It was answered after :00: it may have landed in the new minute, and counts there.
    with pytest.raises(ThrottledError):
        await g.acquire(PM_ASSET, max_wait=0)


@fake_time
async def test_an_answer_before_the_boundary_frees_the_next_window() -> None:
    """The same request answered before :00 gives the new minute back."""
    g = synced(Governor(Limits(papi_ip=100), latency=0.0, cold_start=False), E0 + 59.9)
    slow = g.renew(await g.acquire(PM_ASSET))
    assert slow is not None
    await sleep_until(g, E0 + 59.95)
    g.observe(slow, sent=slow[1], received=mono(g), status=200)
    await sleep_until(g, E0 + 60.01 + CLOCK_STEP)
    for _ in range(3):
        await g.acquire(PM_ASSET, max_wait=0)


@fake_time
async def test_a_request_without_answer_stays_charged_for_the_grace_period() -> None:
    """A timeout is not 'landed by now': the request may still arrive later."""
    g = synced(Governor(Limits(papi_ip=100), latency=0.0, grace=30.0, cold_start=False), E0 + 59.9)
    permit = await g.acquire(PM_ASSET)
    await sleep_until(g, E0 + 59.95)
    g.observe(permit, sent=permit[1], received=None)
    await sleep_until(g, E0 + 60.01)
    for _ in range(2):
        await g.acquire(PM_ASSET, max_wait=0)
    with pytest.raises(ThrottledError):
        await g.acquire(PM_ASSET, max_wait=0)


# -- defect 6: conflicting pool specs ---------------------------------------------


@fake_time
async def test_a_conflicting_cap_on_a_shared_governor_is_a_configuration_error() -> None:
    """A table with a tighter cap than the pool already in use is refused, not ignored."""
    g = synced(Governor(latency=0.0, cold_start=False), E0 + 1)
    await g.acquire(PRO_AUTO)
    tighter = ENDPOINTS.evolve("pmpro_auto_collect", caps=(RollingCap(10, 3600),))
    with pytest.raises(ConfigurationError, match="cap0 default pmpro_auto_collect"):
        await g.acquire(tighter["pmpro_auto_collect"])
    heavier = ENDPOINTS.evolve("pmpro_auto_collect", ip_weight=1000)  # weights may differ
    await g.acquire(heavier["pmpro_auto_collect"], account="other")


# -- defect 7: a pruned cap record ------------------------------------------------


@fake_time
async def test_refund_and_renew_of_a_pruned_cap_record_do_not_raise() -> None:
    """The record expired while its permit waited for a connection: no ValueError."""
    limits = Limits(caps={"pmpro_auto_collect": ((5, 10.0),)}, sapi_ip=100_000)
    g = synced(Governor(limits, latency=0.0, cold_start=False), E0 + 1)
    first = await g.acquire(PRO_AUTO)
    second = await g.acquire(PRO_AUTO)
    await anyio.sleep(11)
    g.snapshot()  # prunes what expired
    g.refund(first)
    renewed = g.renew(second)
    assert renewed is not None
    cap = next(p for p in g.snapshot() if p.key.startswith("cap0"))
    assert cap.used == 1  # the renewed call, counted once


# -- defect 8: max_wait bounds the clock sync, the forced one after -1021 too -------


@fake_time
async def test_max_wait_bounds_the_forced_resync_after_a_timestamp_rejection(
    fake: FakeBinance,
) -> None:
    """Binance answers -1021 (nothing executed); the forced resync then hangs for 29 s.
    A transfer with max_wait=0.5 ends at 0.5 s, typed and unsent a second time. (The
    first sync's bound is tests/test_transport.py::test_max_wait_bounds_the_clock_sync.)"""
    syncs = 0

    class HangingResync(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            nonlocal syncs
            if request.url.path == "/api/v3/time":
                syncs += 1
                if syncs > 1:
                    await anyio.sleep(29)
            return fake(request)

    rejected = error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
    fake.script("POST", "/sapi/v1/asset/transfer", rejected, ok({"tranId": 1}))
    async with Client(API_KEY, SECRET, transport=HangingResync()) as client:
        start = anyio.current_time()
        with pytest.raises(ThrottledError, match="clock could not be synced"):
            await client.transfer(type="MAIN_UMFUTURE", asset="USDT", amount="1", max_wait=0.5)
        assert anyio.current_time() - start == pytest.approx(0.5, abs=0.01)
    assert syncs == 2
    assert len(fake.transfers) == 1


# -- defect 11: idle per-account pools are evicted ---------------------------------


@fake_time
async def test_idle_account_pools_are_evicted() -> None:
    """3,000 accounts, one call each: once their minutes are over, their pools go."""
    g = synced(Governor(Limits(time_scale=60), latency=0.0, cold_start=False), E0 + 1)
    for i in range(3000):
        permit = g.renew(await g.acquire(SUB_UNIVERSAL, account=f"acct{i}"))
        assert permit is not None
        g.observe(permit, sent=permit[1], received=mono(g), status=200)
    await anyio.sleep(3)
    for i in range(50):
        await g.acquire(SUB_UNIVERSAL, account=f"late{i}")
    assert len(g._pools) < 200
    assert len(g._plans) < 200
    # An evicted account starts afresh, with its whole limit.
    for _ in range(500):
        await g.acquire(SUB_UNIVERSAL, account="acct0", max_wait=0)


# -- defect 12: hooks see immediate admissions and refusals -----------------------


@fake_time
async def test_hooks_see_immediate_admissions_and_refusals() -> None:
    """admitted(…, 0.0) on the fast path; refused() for an immediate ThrottledError."""
    events: list[tuple[str, str, float]] = []

    class Recorder(GovernorHooks):
        def admitted(self, endpoint: str, waited: float) -> None:
            events.append(("admitted", endpoint, waited))

        def refused(self, endpoint: str, reason: str, retry_after: float) -> None:
            events.append(("refused", endpoint, round(retry_after)))

    g = synced(
        Governor(Limits(papi_ip=30), latency=0.0, hooks=Recorder(), cold_start=False), E0 + 30
    )
    await g.acquire(PM_ASSET)
    with pytest.raises(ThrottledError):
        await g.acquire(PM_ASSET, max_wait=1)
    assert events == [("admitted", "pm_collect_asset", 0.0), ("refused", "pm_collect_asset", 30)]


# -- learning what others spend ------------------------------------------------------


@fake_time
async def test_a_window_opens_with_what_others_spent_in_the_last_one_reserved() -> None:
    """Another process spent 3000 of 6000 last minute: this one opens with 3000 for us."""
    g = synced(Governor(latency=0.0, cold_start=False), E0 + 10)
    permit = await g.acquire(PM_ASSET)
    g.observe(permit, sent=mono(g), received=mono(g), headers={"x-mbx-used-weight-1m": "3030"})
    await sleep_until(g, E0 + 60.1)
    # Over a few trips, not at once, and leaving room for two requests of others:
    # the pool is shared, and while sharing it holds back room for at least two
    # other processes (a newcomer's racer estimate lags; see test_governor_shared_ip.py).
    ours = await fill(g, PM_ASSET, E0 + 119)
    assert len(ours) == 98
    # It stopped (Binance counts only our 3000): the reservation halves.
    for n, permit in enumerate(ours, 1):
        headers = {"x-mbx-used-weight-1m": str(30 * n)}
        g.observe(permit, sent=mono(g), received=mono(g), headers=headers)
    await sleep_until(g, E0 + 120.1)
    await g.acquire(PM_ASSET, max_wait=0)
    assert next(p.used for p in g.snapshot() if p.key == "papi-ip") == 1500 + 30
    # Without news it stays (a quiet spell, or windows opened before any answer
    # came, says nothing of what they spend); news from a window's end halves it
    # again. News from its opening does not: it says nothing of what they spend
    # later in the window (a neighbour moving its spend to :15 was overrun).
    await sleep_until(g, E0 + 180.1)
    permit = await g.acquire(PM_ASSET, max_wait=0)
    assert next(p.used for p in g.snapshot() if p.key == "papi-ip") == 1500 + 30
    g.observe(permit, sent=mono(g), received=mono(g), headers={"x-mbx-used-weight-1m": "30"})
    await sleep_until(g, E0 + 240.1)
    permit = await g.acquire(PM_ASSET, max_wait=0)
    assert next(p.used for p in g.snapshot() if p.key == "papi-ip") == 1500 + 30
    g.observe(permit, sent=mono(g), received=mono(g), headers={"x-mbx-used-weight-1m": "30"})
    await sleep_until(g, E0 + 290.1)
    permit = await g.acquire(PM_ASSET, max_wait=0)
    g.observe(permit, sent=mono(g), received=mono(g), headers={"x-mbx-used-weight-1m": "60"})
    await sleep_until(g, E0 + 300.1)
    await g.acquire(PM_ASSET, max_wait=0)
    assert next(p.used for p in g.snapshot() if p.key == "papi-ip") == 750 + 30


@fake_time
async def test_news_of_another_process_outlives_a_quiet_spell() -> None:
    """Another process spent 3000 of 6000 when we last heard (minute 0); we then sent
    nothing for four minutes. The fifth opens with its 3000 reserved: a quiet spell says
    nothing of what others spend. (The news was dropped with the answers of three
    windows back, and the minute opened blind: 200 of ours beside their 3000. Found by
    the property test at 600x: five 0.1-s windows opened before any answer, the news
    aged out, 120 of ours beside 100 of theirs in a 200 window.) Nor does it say they
    are gone: the minute opens shared, not with a burst of all that is left
    (B8-2/B8-3: two processes each sized their opening to what the other left before a
    quiet spell or a ban, 6750-7500 of 6000)."""
    g = synced(Governor(latency=0.0, cold_start=False), E0 + 10)
    permit = await g.acquire(PM_ASSET)
    g.observe(permit, sent=mono(g), received=mono(g), headers={"x-mbx-used-weight-1m": "3030"})
    await sleep_until(g, E0 + 300.1)
    at_once = len(await fill(g, PM_ASSET, server_now(g)))
    assert 0 < at_once < 100  # shared: not all that is left at once
    # Their 3000 stay held; sharing keeps back one step of each other besides (60).
    assert 98 <= at_once + len(await fill(g, PM_ASSET, E0 + 359.9)) <= 100


@fake_time
async def test_the_snapshot_shows_the_room_held_for_other_processes() -> None:
    """``snapshot()``'s ``others``: what a usage header showed above our own count, then
    what the next minute opens with for them; 0 for a process alone. (A pool held back
    for a process that did not exist, PM Pro at 87.5 %, showed nowhere but in the
    governor's internals.)"""
    g = synced(Governor(latency=0.0, cold_start=False), E0 + 10)

    def others() -> int:
        return next(p.others for p in g.snapshot() if p.key == "papi-ip")

    permit = await g.acquire(PM_ASSET)
    g.observe(permit, sent=mono(g), received=mono(g), headers={"x-mbx-used-weight-1m": "30"})
    assert others() == 0
    permit = await g.acquire(PM_ASSET)
    g.observe(permit, sent=mono(g), received=mono(g), headers={"x-mbx-used-weight-1m": "3060"})
    assert others() == 3000
    await sleep_until(g, E0 + 60.1)
    assert others() == 3000  # held for them from the next minute's start


# -- margins by design ------------------------------------------------------------


@fake_time
async def test_the_clock_uncertainty_grows_with_the_time_since_the_sync() -> None:
    """At 50 ppm, 300 s after the sync a full window reopens 15 ms later than right after it."""
    g = synced(Governor(Limits(papi_ip=30), latency=0.0, cold_start=False), E0 + 59)
    await g.acquire(PM_ASSET)
    await g.acquire(PM_ASSET)
    early = server_now(g) - (E0 + 60)
    await sleep_until(g, E0 + 359.5)
    await g.acquire(PM_ASSET)
    await g.acquire(PM_ASSET)
    late = server_now(g) - (E0 + 360)
    assert late - early == pytest.approx(300 * 50e-6, abs=0.002)
    # The reported uncertainty is the eps in use, the 10 ms step included.
    assert g.stats().clock_uncertainty == pytest.approx(
        0.001 + 300.5 * 50e-6 + CLOCK_STEP, abs=0.001
    )


@fake_time
async def test_one_slow_answer_does_not_inflate_the_trip_bound_for_long() -> None:
    """A 1.5 s spike among 50 ms trips: the bound follows it at once, then forgets it."""
    g = synced(Governor(latency=0.05, cold_start=False), E0 + 1)

    async def answered_after(trip: float) -> None:
        permit = await g.acquire(SUB_MARGIN)
        await anyio.sleep(trip)
        g.observe(permit, sent=permit[1], received=mono(g), status=200)

    for _ in range(40):
        await answered_after(0.05)
    await answered_after(1.5)
    assert g.stats().trip_bound == pytest.approx(1.5)
    for _ in range(16):
        await answered_after(0.05)
    assert g.stats().trip_bound < 0.06


@fake_time
async def test_the_delay_between_permit_and_write_is_measured() -> None:
    """renew() at the write records how long the permit waited: p50, p99, max."""
    g = synced(Governor(latency=0.0, cold_start=False), E0 + 1)
    for delay in [0.001] * 98 + [0.2, 0.5]:
        permit = await g.acquire(SUB_MARGIN)
        await anyio.sleep(delay)
        written = g.renew(permit)
        assert written is not None
        g.observe(written, sent=written[1], received=mono(g), status=200)
    stats = g.stats()
    assert stats.writes == 100
    assert stats.write_delay_p50 == pytest.approx(0.001)
    assert stats.write_delay_p99 == pytest.approx(0.2)
    assert stats.write_delay_max == pytest.approx(0.5)


# -- loop affinity ----------------------------------------------------------------


def test_a_governor_used_from_another_event_loop_is_refused() -> None:
    """ConfigurationError before anything is charged, instead of a hang."""
    import asyncio
    import threading

    g = Governor(Limits(papi_ip=60), latency=0.0, cold_start=False)

    async def fill() -> None:
        await g.acquire(PM_ASSET)
        await g.acquire(PM_ASSET)

    asyncio.run(fill())  # full: any further call would have to wait
    used_before = next(p.used for p in g.snapshot() if p.key == "papi-ip")
    with pytest.raises(ConfigurationError, match="another event loop"):
        asyncio.run(g.acquire(PM_ASSET))
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            asyncio.run(g.acquire(PM_ASSET))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert [type(e) for e in errors] == [ConfigurationError]
    assert next(p.used for p in g.snapshot() if p.key == "papi-ip") == used_before


@fake_time
async def test_a_process_alone_reserves_nothing_when_answers_come_in_another_order() -> None:
    """Ten permits, written and counted by Binance in reverse order (the last admitted
    landed first: it waited less for its write): no weight was anybody else's, so the
    next minute opens empty. (Reading `report - our count at admission` took 270 for
    another process's and reserved it in every next window.)"""
    g = synced(Governor(latency=0.0, cold_start=False), E0 + 10)
    permits = [await g.acquire(PM_ASSET) for _ in range(10)]
    written = [g.renew(p) for p in reversed(permits)]
    for n, permit in enumerate(written, 1):
        assert permit is not None
        t = mono(g)
        g.observe(permit, sent=t, received=t, headers={"x-mbx-used-weight-1m": str(30 * n)})
    await sleep_until(g, E0 + 60.1)
    await g.acquire(PM_ASSET)
    assert next(p.used for p in g.snapshot() if p.key == "papi-ip") == 30


@fake_time
async def test_an_answer_across_a_boundary_does_not_fill_the_new_window() -> None:
    """Written 10 ms before the minute ends, answered 50 ms into the next, reporting 5970:
    that count may be the ending minute's. Read as the new minute's, it stopped the new
    minute for nobody."""
    g = synced(Governor(latency=0.0, cold_start=False), E0 + 10)
    full = [await g.acquire(PM_ASSET) for _ in range(198)]
    await sleep_until(g, E0 + 59.99 - CLOCK_STEP)
    last = g.renew(await g.acquire(PM_ASSET))
    assert last is not None
    sent = mono(g)
    for n, permit in enumerate(full, 1):
        g.observe(permit, sent=sent, received=sent, headers={"x-mbx-used-weight-1m": str(30 * n)})
    await sleep_until(g, E0 + 60.05)
    g.observe(last, sent=sent, received=mono(g), headers={"x-mbx-used-weight-1m": "5970"})
    for _ in range(150):
        await g.acquire(PM_ASSET, max_wait=0)  # the new minute is ours


@fake_time
async def test_an_answer_that_may_have_landed_in_either_window_never_lowers_what_others_spent() -> (
    None
):
    """60 of ours answered within the minute read 3000 spent by someone else. 30 more,
    written half a second before the boundary and answered after it, landed in the next
    minute (beside the other's 3000 there): their reports (3030..3900) do not say which
    minute. Credited to the first minute as ours, they took 900 off the other process's
    3000, and the minute after opened with room for 130 of ours beside its 3000.
    (Found by the property test at 10x scale: 180 of ours + 100 of theirs in a 200 window.)"""
    g = synced(Governor(latency=1.0, cold_start=False), E0 + 10)
    first = [await g.acquire(PM_ASSET) for _ in range(60)]
    later = [await g.acquire(PM_ASSET) for _ in range(30)]
    for n, permit in enumerate(first, 1):
        t = mono(g)
        g.observe(permit, sent=t, received=t, headers={"x-mbx-used-weight-1m": str(3000 + 30 * n)})
    await sleep_until(g, E0 + 59.5)
    late = [g.renew(permit) for permit in later]  # written now
    sent = mono(g)
    await sleep_until(g, E0 + 60.3)
    for n, renewed in enumerate(late, 1):
        assert renewed is not None
        headers = {"x-mbx-used-weight-1m": str(3000 + 30 * n)}
        g.observe(renewed, sent=sent, received=mono(g), headers=headers)
    await sleep_until(g, E0 + 121)  # past the guard band the 0.8 s trips widened
    # (6000 - 3000) / 30, less room for two requests of others (the pool is shared,
    # and sharing holds back room for at least two other processes).
    assert len(await fill(g, PM_ASSET, E0 + 179)) == 98


@fake_time
async def test_a_process_alone_keeps_every_call_of_a_window_after_a_boundary_answer() -> None:
    """PM Pro auto-collection holds 8 calls (1500 of 12000) a window. The 8th, written
    0.3 s before the minute ends (the trip bound is 0.5 s), is answered after it with
    12000: its own report, whichever minute it landed in. Read as 1500 spent by
    another process (it was not credited as ours, since it may have landed in the next
    minute), it reserved 1500 in the next windows, halving for ten windows: every one of
    them had room for 7 calls, not 8 (bench_stress A: 87.5 % for the rest of the run)."""
    g = synced(Governor(latency=0.5, cold_start=False), E0 + 10)
    header = "x-sapi-used-ip-weight-1m"

    async def window(until: float) -> int:
        """Fill a window with calls written and answered at once, each reporting the count."""
        permits = await fill(g, PRO_AUTO, until)
        for n, permit in enumerate(permits, 1):
            written = g.renew(permit)
            assert written is not None
            t = mono(g)
            g.observe(written, sent=t, received=t, headers={header: str(1500 * n)})
        return len(permits)

    # Seven at once; the eighth is admitted and written near the boundary.
    first = await fill(g, PRO_AUTO, E0 + 30)
    assert len(first) == 7 + 1
    for n, permit in enumerate(first[:7], 1):
        written = g.renew(permit)
        assert written is not None
        g.observe(written, sent=mono(g), received=mono(g), headers={header: str(1500 * n)})
    await sleep_until(g, E0 + 59.7)
    eighth = g.renew(first[7])
    assert eighth is not None
    sent = mono(g)
    await sleep_until(g, E0 + 60.15)
    g.observe(eighth, sent=sent, received=mono(g), headers={header: "12000"})
    assert [p.others for p in g.snapshot() if p.endpoint == "pmpro_auto_collect"] == [0, 0]
    # The next minute still counts the eighth (it may have landed there): 7 more.
    assert await window(E0 + 119) == 7
    # The one after is all ours again, and so are the ones after it.
    assert await window(E0 + 179) == 8
    assert await window(E0 + 239) == 8


@fake_time
async def test_an_answer_across_a_boundary_is_not_taken_for_another_process_by_later_ones() -> None:
    """A first PM Pro call written 0.2 s before a minute ends and answered after it
    reports 1500: it may have landed in either minute, so it is not credited as ours in
    either. The 7 more of the new minute, answered at once, report 3000..12000: read
    against our 7 alone, the 12000 left 1500 for another process, reserved in the next
    minutes for nobody (bench_stress C, clock stepped back 10 ms: PM Pro at 87.5 % after
    the cold probe for the rest of the run)."""
    g = synced(Governor(latency=0.5, cold_start=False), E0 + 10)
    header = "x-sapi-used-ip-weight-1m"
    await sleep_until(g, E0 + 59.8)
    probe = g.renew(await g.acquire(PRO_AUTO))
    assert probe is not None
    sent = mono(g)
    await sleep_until(g, E0 + 60.3)
    g.observe(probe, sent=sent, received=mono(g), headers={header: "1500"})
    for minute in (1, 2, 3):
        permits = await fill(g, PRO_AUTO, E0 + 60 * minute + 30)
        for n, permit in enumerate(permits, 2 if minute == 1 else 1):
            written = g.renew(permit)
            assert written is not None
            t = mono(g)
            g.observe(written, sent=t, received=t, headers={header: str(1500 * n)})
        # The first minute still counts the probe (it may have landed there): 7 more.
        assert len(permits) == (7 if minute == 1 else 8), minute
        await sleep_until(g, E0 + 60 * (minute + 1) + 1)


@fake_time
async def test_a_burst_slowed_across_a_boundary_is_not_taken_for_another_process() -> None:
    """All 8 PM Pro calls of a second-long window (x60) are written at its start and held
    1.5 s by the network: they land in the next window and report 1500..12000. Each may
    have landed in either window, so none is sure to be ours there; read as someone
    else's, the 12000 reserved 10500 of every next window for nobody, halving for ten
    windows (bench_stress C, the latency spike: PM Pro at 12 % for the rest of the run)."""
    g = synced(Governor(Limits(time_scale=60), latency=0.5, cold_start=False), E0 + 0.5)
    header = "x-sapi-used-ip-weight-1m"
    await sleep_until(g, E0 + 1.02)
    burst = [g.renew(permit) for permit in await fill(g, PRO_AUTO, E0 + 1.03)]
    assert len(burst) == 8
    sent = mono(g)
    await sleep_until(g, E0 + 2.55)  # the spike
    for n, permit in enumerate(burst, 1):
        assert permit is not None
        g.observe(permit, sent=sent, received=mono(g), headers={header: str(1500 * n)})
    for second in (3, 4, 5):
        await sleep_until(g, E0 + second + 0.1)
        permits = await fill(g, PRO_AUTO, E0 + second + 0.2)
        for n, permit in enumerate(permits, 1):
            written = g.renew(permit)
            assert written is not None
            t = mono(g)
            g.observe(written, sent=t, received=t, headers={header: str(1500 * n)})
        assert len(permits) == 8, second


@fake_time
async def test_an_answer_that_may_be_either_of_two_windows_is_ours_in_one_of_them_only() -> None:
    """Another process spends 3000 of /papi's 6000 every minute. 30 of ours written 50 ms
    before the minute ends and answered 3 ms after it may be either minute's: their
    reports (3060..3930) are read as the first minute's. They were counted as ours in the
    second minute too, where our reports (3000 + 30 n) then showed others spending 2100,
    not 3000: the third minute opened with room for 127 of ours beside their 3000
    (the "min21" example, found by the property test at 600x). Each counts where its report
    is read and where the middle of its flight was: the first minute."""
    g = synced(Governor(latency=0.1, cold_start=False), E0 + 10)
    header = "x-mbx-used-weight-1m"
    permit = await g.acquire(PM_ASSET)
    g.observe(permit, sent=mono(g), received=mono(g), headers={header: "3030"})
    late = [await g.acquire(PM_ASSET) for _ in range(30)]
    await sleep_until(g, E0 + 59.95)
    written = [g.renew(permit) for permit in late]
    sent = mono(g)
    await sleep_until(g, E0 + 60.003)
    for n, renewed in enumerate(written, 1):
        assert renewed is not None
        g.observe(renewed, sent=sent, received=mono(g), headers={header: str(3030 + 30 * n)})
    await sleep_until(g, E0 + 61)
    for n in range(1, 11):
        permit = await g.acquire(PM_ASSET)
        t = mono(g)
        g.observe(permit, sent=t, received=t, headers={header: str(3000 + 30 * n)})
    await sleep_until(g, E0 + 121)
    ours = await fill(g, PM_ASSET, E0 + 179)
    assert 30 * len(ours) + 3000 <= 6000, len(ours)


@fake_time
@pytest.mark.parametrize("seed", [1, 2])
async def test_a_process_alone_fills_its_windows_again_after_a_latency_spike(seed: int) -> None:
    """250 callers on /papi (1-s windows), trips of 1-11 ms, and a 1.5 s spike for every
    request reaching Binance within 0.25 s of second 3 (bench_stress C's spike). After
    it, every full window is used again at 99 %, none over. Before, windows 6 and 8 fell
    to 7-20 %: answers of a burst reordered by the link's jitter were read roughly (the
    report less our count at admission: 4980 - 1860) while the trip bound was above a
    window, and that much was reserved for nobody in every window opened ahead (the fix:
    the rough reading only once a report shows others at all)."""
    import random

    rng = random.Random(seed)
    g = Governor(Limits(time_scale=60), cold_start=False)
    clock = g.server_clock
    start = clock.clock.monotonic()
    clock.update(sent=start, received=start, server_ms=round((E0 + 0.5) * 1000))
    shift = E0 + 0.5 - start
    counts: dict[int, int] = {}
    stop = start + 10.5

    async def caller() -> None:
        while clock.clock.monotonic() < stop:
            written = g.renew(await g.acquire(PM_ASSET))
            if written is None:
                continue
            sent = clock.clock.monotonic()
            up = 0.001 + rng.uniform(0, 0.010)
            if abs(sent + up + shift - (E0 + 3)) <= 0.25:
                up += 1.5
            await anyio.sleep(up)
            window = math.floor(sent + up + shift)
            counts[window] = counts.get(window, 0) + PM_ASSET.ip_weight
            headers = {"x-mbx-used-weight-1m": str(counts[window])}
            await anyio.sleep(0.001)
            g.observe(written, sent=sent, received=clock.clock.monotonic(), headers=headers)

    async with anyio.create_task_group() as tasks:
        for _ in range(250):
            tasks.start_soon(caller)
    shares = {w - int(E0): counts.get(w, 0) / 6000 for w in range(int(E0), int(E0) + 11)}
    assert max(shares.values()) <= 1.0, shares
    assert all(shares[w] >= 0.95 for w in range(5, 11)), ("after the spike", shares)
