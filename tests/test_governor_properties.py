"""Property: whatever the traffic, no Binance window ever receives more than its limit.

Each example runs a random crowd of callers under trio's MockClock (so minutes
pass in microseconds): random endpoints and weights, arrival times, network
latencies, max_waits and cancellations, with our estimate of Binance's clock
off by a random amount within the uncertainty we claim. A simulated Binance
records when each request really lands; every fixed window and every rolling
window is then checked against its limit, and every caller must have finished.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator, Sequence

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from binance_transfers import ENDPOINTS, Endpoint, Governor, Limits, ThrottledError, pools_for

TABLE = (
    ENDPOINTS.evolve("pm_collect_asset", ip_weight=30)
    .evolve("pm_bnb_transfer", ip_weight=90)
    .evolve("pm_auto_collect", ip_weight=50)
)
# Scaled 60x: a Binance minute lasts one second, the caps' periods shrink alike.
LIMITS = Limits(
    papi_ip=200,
    sapi_ip=40,
    sapi_uid=1000,
    time_scale=60,
    caps={"pm_auto_collect": ((3, 600.0),), "pm_bnb_transfer": ((4, 300.0),)},
)
ENDPOINT_CHOICES: list[Endpoint] = [
    TABLE["pm_collect_asset"],
    TABLE["pm_bnb_transfer"],
    TABLE["pm_auto_collect"],
    TABLE["sub_account_transfer"],  # sapi IP 1 + UID 360
    TABLE["server_time"],
]
SERVER_SHIFT = 1_767_225_600.25  # true Binance clock = trio clock + this

calls = st.tuples(
    st.sampled_from(range(len(ENDPOINT_CHOICES))),
    st.sampled_from(["a", "b"]),  # account
    st.floats(0, 3),  # when the caller shows up (scaled seconds)
    st.floats(0, 1),  # its one-way latency, as a fraction of the bound
    st.one_of(st.none(), st.floats(0, 3)),  # cancelled after this long, if at all
    st.one_of(st.none(), st.floats(0, 2)),  # max_wait
)


@contextlib.contextmanager
def _maybe_cancel(after: float | None) -> Iterator[None]:
    if after is None:
        yield
    else:
        with trio.move_on_after(after):
            yield


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    crowd=st.lists(calls, min_size=30, max_size=200),
    latency=st.floats(0, 0.3),
    clock_error=st.floats(-0.3, 0.3),
)
def test_no_window_ever_exceeds_its_limit(
    crowd: list[tuple[int, str, float, float, float | None, float | None]],
    latency: float,
    clock_error: float,
) -> None:
    """Fixed and rolling windows stay within limits; no caller hangs; no permit is lost."""
    check_limits(run_crowd(crowd, latency, clock_error))


def test_a_large_crowd_fills_windows_without_exceeding_them() -> None:
    """2000 random callers: the busiest windows are full (the check has teeth), none overfull."""
    import random

    rng = random.Random(1)
    crowd = [
        (
            rng.randrange(len(ENDPOINT_CHOICES)),
            rng.choice("ab"),
            rng.uniform(0, 5),
            rng.random(),
            None,
            None,
        )
        for _ in range(2000)
    ]
    fixed = check_limits(run_crowd(crowd, latency=0.2, clock_error=-0.25))
    assert fixed["papi-ip"] == LIMITS.papi_ip  # some minute was used to the last unit


def run_crowd(
    crowd: Sequence[tuple[int, str, float, float, float | None, float | None]],
    latency: float,
    clock_error: float,
) -> list[tuple[Endpoint, str, float]]:
    """Run the callers; return where (on Binance's true clock) each request landed."""
    landed: list[tuple[Endpoint, str, float]] = []
    finished = 0

    async def scenario() -> None:
        nonlocal finished
        g = Governor(LIMITS, latency=latency)
        clock = g.server_clock
        mono = clock.clock.monotonic()
        eps = abs(clock_error) + 0.002
        half = eps - 0.001
        clock.update(
            sent=mono - half,
            received=mono + half,
            server_ms=round((mono + SERVER_SHIFT + clock_error) * 1000),
        )

        async def caller(spec: tuple[int, str, float, float, float | None, float | None]) -> None:
            nonlocal finished
            index, account, start, trip, cancel_after, max_wait = spec
            endpoint = ENDPOINT_CHOICES[index]
            await trio.sleep(start)
            with _maybe_cancel(cancel_after):
                try:
                    permit = await g.acquire(endpoint, account=account, max_wait=max_wait)
                except ThrottledError:
                    finished += 1
                    return
                with trio.CancelScope(shield=True):  # once sent, it lands whatever happens
                    sent = trio.current_time()
                    await trio.sleep(trip * latency)
                    landed.append((endpoint, account, trio.current_time() + SERVER_SHIFT))
                    await trio.sleep(trip * latency)
                    g.observe(permit, sent=sent, received=trio.current_time(), status=200)
            finished += 1

        with trio.fail_after(3600):
            async with trio.open_nursery() as nursery:
                for spec in crowd:
                    nursery.start_soon(caller, spec)
        assert g._waiters == {}
        for pool in g._pools.values():
            assert (pool.live, pool.queued) == (0, 0)

    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
    assert finished == len(crowd)
    return landed


def check_limits(landed: list[tuple[Endpoint, str, float]]) -> dict[str, int]:
    """Assert every window's limit; return each fixed pool's busiest window."""
    fixed: dict[tuple[str, int], int] = defaultdict(int)
    rolling: dict[str, list[float]] = defaultdict(list)
    limits: dict[str, int] = {}
    periods: dict[str, float] = {}
    for endpoint, account, at in landed:
        for spec in pools_for(endpoint, LIMITS, account):
            limits[spec.key], periods[spec.key] = spec.limit, spec.period
            if spec.period == LIMITS.window and spec.kind.value != "cap":
                fixed[(spec.key, int(at // spec.period))] += spec.weight
            else:
                rolling[spec.key].append(at)
    busiest: dict[str, int] = defaultdict(int)
    for (key, _), total in fixed.items():
        assert total <= limits[key], (key, total)
        busiest[key] = max(busiest[key], total)
    for key, times in rolling.items():
        times.sort()
        for i, t in enumerate(times):
            in_window = sum(1 for u in times[: i + 1] if u > t - periods[key])
            assert in_window <= limits[key], (key, t)
    return busiest


def test_trio_is_supported() -> None:
    """The governor runs unchanged under trio: waiting, admission at the next window, cancels."""

    async def main() -> list[float]:
        g = Governor(Limits(papi_ip=60, time_scale=60), latency=0.0)
        mono = g.server_clock.clock.monotonic()
        g.server_clock.update(sent=mono, received=mono, server_ms=1_767_225_600_500)
        admitted: list[float] = []
        endpoint = TABLE["pm_collect_asset"]

        async def one() -> None:
            await g.acquire(endpoint)
            admitted.append(round(trio.current_time() - mono, 3))

        async with trio.open_nursery() as nursery:
            for _ in range(6):
                nursery.start_soon(one)
            await trio.sleep(0.01)
            with trio.move_on_after(0.1):
                await g.acquire(endpoint)  # cancelled while waiting: leaves no trace
        return admitted

    admitted = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    # Each window opens 2 ms (the guard band) + 1 ms (clock uncertainty) after its start.
    assert admitted == [0.0, 0.0, 0.503, 0.503, 1.503, 1.503]
