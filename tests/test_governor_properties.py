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

import attrs
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from binance_transfers import ENDPOINTS, Endpoint, Governor, Limits, ThrottledError, pools_for
from binance_transfers._governor._geometry import CLOCK_STEP

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

Call = tuple[int, str, float, float, float | None, float | None, float]

calls = st.tuples(
    st.sampled_from(range(len(ENDPOINT_CHOICES))),
    st.sampled_from(["a", "b"]),  # account
    st.floats(0, 3),  # when the caller shows up (scaled seconds)
    st.floats(0, 1),  # its one-way latency, as a fraction of the bound
    st.one_of(st.none(), st.floats(0, 3)),  # cancelled after this long, if at all
    st.one_of(st.none(), st.floats(0, 2)),  # max_wait
    st.one_of(st.just(1.0), st.just(1.0), st.floats(1, 6)),  # a latency spike beyond the bound
)


@attrs.frozen
class World:
    """What the governor cannot see: Binance's true clock, the network, other processes."""

    latency: float = 0.2
    """The trip bound the governor is given (one-way times are fractions of it, or spikes)."""
    clock_error: float = 0.0
    """Our estimate of Binance's clock at the sync, off by this (within the claimed eps)."""
    drift: float = 0.0
    """Binance's clock runs this much faster after the sync (within the 50 ppm claimed)."""
    step: float = 0.0
    """...and jumps by this right after the sync (within the 2 ms guard band)."""
    after_sync: float = 0.0
    """Seconds between the sync and the first caller (drift accumulates)."""
    foreign: int = 0
    """/papi weight another process spends at the start of every window."""
    time_scale: float = 60.0


worlds = st.builds(
    World,
    latency=st.floats(0, 0.3),
    clock_error=st.floats(-0.3, 0.3),
    drift=st.floats(-50e-6, 50e-6),
    step=st.floats(-0.002, 0.002),
    after_sync=st.sampled_from([0.0, 30.0, 300.0]),
    foreign=st.sampled_from([0, 0, 60, 100]),
    time_scale=st.sampled_from([60.0, 600.0]),
)


@contextlib.contextmanager
def _trio_schedule(seed: int | None) -> Iterator[None]:
    """Seed trio's task shuffle (private: ``trio._core._run._r``), restored after."""
    if seed is None:
        yield
        return
    import trio._core._run

    shuffle = trio._core._run._r
    state = shuffle.getstate()
    shuffle.seed(seed)
    try:
        yield
    finally:
        shuffle.setstate(state)


@contextlib.contextmanager
def _maybe_cancel(after: float | None) -> Iterator[None]:
    if after is None:
        yield
    else:
        with trio.move_on_after(after):
            yield


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(crowd=st.lists(calls, min_size=30, max_size=200), world=worlds)
def test_no_window_ever_exceeds_its_limit(crowd: list[Call], world: World) -> None:
    """Fixed and rolling windows on Binance's true clock stay within limits, whatever the
    clock drift after the sync, latency spikes beyond the bound, foreign usage or the
    window length; no caller hangs; no permit is lost. With another process on the IP,
    ours and theirs together stay within /papi's limit once it has been seen.

    Each example replays: trio registers its task shuffle with hypothesis, which seeds
    it for every example (the replays below try other schedules)."""
    check_limits(run_crowd(crowd, world), world, combined=True)


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
            1.0,
        )
        for _ in range(2000)
    ]
    world = World(latency=0.2, clock_error=-0.25)
    fixed = check_limits(run_crowd(crowd, world), world)
    # Not to the last unit: with the clock 0.25 s off in 1-s windows, about half
    # the answers cannot tell which window they landed in, and such an answer is
    # never taken as ours there (it may be the next window's: see
    # test_an_answer_that_may_have_landed_in_either_window_never_lowers_what_others_spent),
    # so up to a request's weight stays reserved for a neighbour that may exist.
    assert fixed["papi-ip"] >= 0.9 * LIMITS.papi_ip


def test_a_large_crowd_beside_another_process_leaves_it_its_share() -> None:
    """Another process spends 100 of /papi's 200 at every window's start: after the
    first two windows, ours and theirs together never exceed the limit, and we still
    use most of the rest."""
    import random

    rng = random.Random(2)
    crowd = [
        (rng.choice([0, 1, 2]), rng.choice("ab"), rng.uniform(0, 5), rng.random(), None, None, 1.0)
        for _ in range(1500)
    ]
    world = World(latency=0.05, foreign=100, drift=50e-6, step=0.002, after_sync=300.0)
    fixed = check_limits(run_crowd(crowd, world), world, combined=True)
    assert fixed["papi-ip"] >= 0.8 * (LIMITS.papi_ip - 100)


# B5-5, found by the property above (ours 150 + theirs 60 > 200): the other
# process spends 60 of /papi's 200 at every window's start, windows of 0.1 s, trips of
# 2.5-5 windows. One request still in flight was read as ours in a report of window
# w (what others spent there: 30, not 60), and counted as ours in w + 1 too.
B5_5_WORLD = World(latency=0.25, foreign=60, time_scale=600.0)
_NOW: Call = (0, "a", 0.0, 0.0, None, None, 1.0)  # pm_collect_asset (/papi 30), at 0 s
_LATER: Call = (0, "a", 1.0, 0.0, None, None, 1.0)  # the same, at 1 s
B5_5_CROWD: list[Call] = [
    *[_NOW] * 8,
    *[_LATER] * 8,
    (1, "a", 0.0, 0.0, None, None, 1.0),
    *[_NOW] * 3,
    (0, "a", 0.0, 1.0, None, None, 1.0),  # one-way latency: the whole bound
    *[_LATER] * 19,
]


def test_ours_in_flight_read_into_one_windows_report_is_no_room_in_the_next() -> None:
    """B5-5, replayed under 40 of trio's schedules (on the old code, schedule
    2 put 150 of ours beside their 60)."""
    over = {}
    for schedule in range(40):
        try:
            check_limits(
                run_crowd(B5_5_CROWD, B5_5_WORLD, schedule=schedule), B5_5_WORLD, combined=True
            )
        except AssertionError as error:
            over[schedule] = error.args
    assert over == {}


def test_a_slow_request_answered_as_another_windows_leaves_what_others_spent_reserved() -> None:
    """The other process spends 100 of 200 per window. A request of window w, slow,
    was counted as ours in the reports of w + 1 while it flew (others seen: 50), then
    answered, read as w's: it was not in w + 1, so others spent 100 there, not 50. The
    old code opened w + 2 with 50 reserved: 140 of ours beside their 100 (every schedule).
    Found by the property (shrunk from a crowd of 150). Checked from the first answer
    landed in a window where the other process spent: no report proved it was there
    before w + 1's (130 may be w's, 180 of ours), but the governor avoids it all the same."""
    world = World(latency=0.123, clock_error=0.031, step=-0.0018, foreign=100)
    crowd: list[Call] = [
        (0, "a", 0.0, 0.2, 2.77, 0.93, 1.0),
        (2, "a", 0.0, 0.86, None, None, 4.87),
        (2, "a", 0.0, 0.58, None, 1.65, 1.5),
        (2, "a", 0.0, 0.2, None, 1.76, 1.0),
        (0, "a", 0.7, 0.65, None, None, 1.0),
        (1, "a", 1.4, 0.54, 1.19, None, 1.0),
        (2, "b", 1.77, 0.33, 1.5, 1.54, 1.0),
    ]
    for schedule in range(4):
        landed = run_crowd(crowd, world, schedule=schedule, proof=False)
        check_limits(landed, world, combined=True)


def test_answers_that_may_be_any_of_five_windows_do_not_hide_what_others_spent() -> None:
    """Our clock estimate 0.23 s uncertain in 0.1-s windows: every answer may be any of
    five windows or more. Ours answered meanwhile, counted as ours in each of them,
    hid what the other process spent (10 of its 100): 120 of ours beside its 100.
    Found by the property on this branch (a flake in 1 of 9 runs), shrunk; the old
    code fails 2 of these 8 schedules, main none."""
    world = World(
        latency=0.0373, clock_error=-0.2305, foreign=100, time_scale=600.0, after_sync=300.0
    )
    crowd: list[Call] = [
        (0, "a", 0.0, 0.0, None, None, 1.0),
        (0, "a", 0.0, 0.0, 0.122, None, 1.0),
        (0, "a", 0.0, 0.0, None, None, 1.0),
        (0, "a", 0.0, 0.002, None, None, 1.0),
        (0, "a", 0.28, 0.995, 2.572, None, 1.0),
        (0, "b", 0.73, 0.918, None, 1.0, 1.0),
        (3, "a", 0.0, 0.011, None, None, 3.974),
        (1, "a", 2.523, 0.146, None, None, 1.0),
        (1, "a", 2.498, 0.795, None, 1.73, 1.0),
        (4, "a", 2.182, 0.001, 2.525, 1.89, 5.413),
        (1, "a", 2.561, 0.571, 1.891, None, 1.0),
        (1, "b", 0.0, 0.738, None, 0.0, 1.823),
        (1, "b", 0.0, 0.387, 0.926, 1.886, 5.984),
        (3, "a", 0.0, 0.072, 2.85, None, 4.44),
        (4, "b", 2.736, 0.186, None, 0.0, 1.0),
        (4, "a", 2.593, 0.349, 0.0, None, 1.0),
        (2, "b", 0.986, 0.343, None, None, 1.0),
        (2, "b", 2.782, 0.298, None, None, 4.297),
        (0, "a", 0.638, 0.351, None, None, 1.0),
        (1, "b", 2.546, 0.0, None, 1.043, 1.0),
        (4, "b", 2.912, 0.748, 0.0, None, 1.0),
        (0, "a", 1.152, 0.956, 0.0, 1.546, 1.0),
        (3, "b", 2.981, 0.96, 1.085, 0.126, 1.0),
        (4, "b", 0.0, 0.195, None, 1.141, 3.057),
        (3, "b", 0.0, 0.203, None, 0.787, 1.0),
    ]
    for schedule in range(8):
        check_limits(run_crowd(crowd, world, schedule=schedule), world, combined=True)


#: (endpoint, account, when it landed on Binance's true clock, blind): the other
#: process's weight has endpoint None; ``blind``: written before any answer of ours
#: had shown the other process's weight (nothing could tell the governor of it yet).
Landed = list[tuple[Endpoint | None, str, float, bool]]


def run_crowd(
    crowd: Sequence[Call], world: World, *, schedule: int | None = None, proof: bool = True
) -> Landed:
    """Run the callers; return where (on Binance's true clock) each request landed.

    A request is written at ``renew`` (acquiring again when refused), lands
    after its one-way time and is answered after as long again, with /papi's
    usage header as Binance would count it (the foreign process included).
    ``schedule`` seeds trio's shuffle of the tasks ready at one instant (its own
    ``random.Random``, otherwise seeded afresh per process): the same seed runs
    the same schedule. ``proof``: ours are blind until an answer proves the other
    process (see below); else until one lands in a window where it spent (a replay
    of a defect the governor could avoid all the same).
    """
    limits = LIMITS.scaled(world.time_scale)
    window = limits.window
    latency = world.latency
    landed: Landed = []
    papi_used: dict[int, int] = defaultdict(int)
    theirs: set[int] = set()  # /papi windows the other process has spent in so far
    finished = 0
    revealed = False  # an answer of ours has shown the other process's weight
    # Our /papi weight answered, in each window the governor's bound on where it
    # landed holds (a report there may count it): what ours can make up there.
    ours_in: dict[int, int] = defaultdict(int)
    unanswered = 0  # our /papi weight written and not answered yet (landed or not)

    async def scenario() -> None:
        nonlocal finished, revealed
        g = Governor(limits, latency=latency, cold_start=False)
        clock = g.server_clock
        synced_at = clock.clock.monotonic()
        eps = abs(world.clock_error) + 0.002
        half = eps - 0.001
        clock.update(
            sent=synced_at - half,
            received=synced_at + half,
            server_ms=round((synced_at + SERVER_SHIFT + world.clock_error) * 1000),
        )

        def true_now() -> float:
            t = trio.current_time()
            return t + SERVER_SHIFT + world.step + world.drift * (t - synced_at)

        async def other_process() -> None:
            # Once per window, by its number: near 1.7e9 a double's step (2.4e-7 s)
            # is coarser than any nudge, so "sleep until the next start, then look
            # which window it is" could wake a hair early, see the old window, and
            # spend again and again in it (hundreds of times per window).
            w = int(true_now() // window) + 1
            while True:
                start = w * window - SERVER_SHIFT - world.step
                await trio.sleep_until((start + world.drift * synced_at) / (1 + world.drift))
                papi_used[w] += world.foreign
                theirs.add(w)
                landed.append((None, "", w * window, False))
                w += 1

        async def caller(spec: Call) -> None:
            nonlocal finished, revealed, unanswered
            index, account, start, trip, cancel_after, max_wait, spike = spec
            endpoint = ENDPOINT_CHOICES[index]
            await trio.sleep(world.after_sync + start)
            with _maybe_cancel(cancel_after):
                while True:
                    try:
                        permit = await g.acquire(endpoint, account=account, max_wait=max_wait)
                    except ThrottledError:
                        finished += 1
                        return
                    written = g.renew(permit)  # at the write
                    if written is not None:
                        break
                with trio.CancelScope(shield=True):  # once written, it lands whatever happens
                    sent = trio.current_time()
                    if endpoint.prefix == "papi":
                        unanswered += endpoint.ip_weight
                    blind = not revealed
                    await trio.sleep(trip * spike * latency)
                    at = true_now()
                    landed.append((endpoint, account, at, blind))
                    headers = {}
                    shows = False
                    if endpoint.prefix == "papi":
                        landing = int(at // window)
                        papi_used[landing] += endpoint.ip_weight
                        headers["x-mbx-used-weight-1m"] = str(papi_used[int(at // window)])
                        shows = int(at // window) in theirs
                    await trio.sleep(trip * spike * latency)
                    received = trio.current_time()
                    g.observe(written, sent=sent, received=received, status=200, headers=headers)
                    if endpoint.prefix == "papi":
                        geo = g._geometry(received)
                        first = int((sent + geo.lo) // window)
                        last = int((received + geo.shift + geo.eps) // window)
                        for w in range(first, last + 1):
                            ours_in[w] += endpoint.ip_weight
                        unanswered -= endpoint.ip_weight
                    if shows and proof:
                        # A report shows the other process only if no window the
                        # governor must take it for (its own bound on where the
                        # request landed) explains it without them: one where ours
                        # can make up the count, i.e. ours answered whose bound
                        # holds that window, plus all of ours not answered yet
                        # (example f7: a report of 90 that may be window w's,
                        # 180 of ours and nothing of theirs, or w + 1's, 30 of ours
                        # and their 60). The window it landed in too, though they
                        # spent there: a report cannot tell theirs from ours it
                        # does not exceed. Seed 1055733691 (0.1-s windows, their
                        # 60 at each start): six of ours, 180, written at one
                        # instant in window w; reports 150, 90, 180, 120 of w, then
                        # 90 and 120 of w or w + 1: each within the 180 ours can
                        # make up in w, so the 150 of ours written into w + 2 before
                        # any report exceeded that were written blind. Seed
                        # 59484167647324182258151624899573124104 (their 100): four
                        # of ours, 200, at one instant; reports 150 of w, then 200,
                        # 150, 200 of w or w + 1: within 200. Only the uniqueness of
                        # counts (two answers of one window never report the same
                        # count) would place the repeated ones in w + 1, where ours
                        # were 100 at most; the governor does not assume it, and
                        # Binance does not document it.
                        value = int(headers["x-mbx-used-weight-1m"])  # as reported
                        shows = all(value > ours_in[w] + unanswered for w in range(first, last + 1))
                    revealed = revealed or shows
            finished += 1

        with trio.fail_after(3600):
            async with trio.open_nursery() as outer:
                if world.foreign:
                    outer.start_soon(other_process)
                async with trio.open_nursery() as nursery:
                    for spec in crowd:
                        nursery.start_soon(caller, spec)
                outer.cancel_scope.cancel()
        assert g._waiters == {}
        for pool in g._pools.values():
            assert (pool.live, pool.queued) == (0, 0)

    with _trio_schedule(schedule):
        trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
    assert finished == len(crowd)
    return landed


def check_limits(landed: Landed, world: World, *, combined: bool = False) -> dict[str, int]:
    """Assert every window's limit; return each fixed pool's busiest window (ours).

    ``combined``: also ours plus the other process's, once learnt (best effort:
    the reservation follows answers that come a trip late, so the random
    property checks our own weight only, the steady scenario both)."""
    limits_ = LIMITS.scaled(world.time_scale)
    fixed: dict[tuple[str, int], int] = defaultdict(int)
    rolling: dict[str, list[float]] = defaultdict(list)
    limits: dict[str, int] = {}
    periods: dict[str, float] = {}
    papi_windows: list[int] = []
    informed: dict[int, int] = defaultdict(int)  # /papi weight ours written knowingly
    for endpoint, account, at, unseen in landed:
        if endpoint is None:
            continue
        for spec in pools_for(endpoint, limits_, account):
            limits[spec.key], periods[spec.key] = spec.limit, spec.period
            if spec.kind.value != "cap":
                fixed[(spec.key, int(at // spec.period))] += spec.weight
                if spec.key == "papi-ip":
                    papi_windows.append(int(at // spec.period))
                    if not unseen:
                        informed[int(at // spec.period)] += spec.weight
            else:
                rolling[spec.key].append(at)
    busiest: dict[str, int] = defaultdict(int)
    for (key, _), total in fixed.items():
        assert total <= limits[key], (key, total)
        busiest[key] = max(busiest[key], total)
    if combined and world.foreign and papi_windows:
        # Blind at first: the other process shows up in our answers' headers,
        # and what was learnt fades while we send nothing there. Not before the
        # third window; and ours written before any answer showed the other
        # process (with trips of several windows, they may land in many) only
        # count against what was added to them knowingly: a window they fill
        # with theirs must get nothing more.
        learnt = min(papi_windows) + 2
        seen = set(papi_windows)
        for (key, w), total in fixed.items():
            if key == "papi-ip" and w >= learnt and w - 1 in seen and informed[w]:
                assert total + world.foreign <= limits[key], (w, total)
    for key, times in rolling.items():
        times.sort()
        for i, t in enumerate(times):
            in_window = sum(1 for u in times[: i + 1] if u > t - periods[key])
            assert in_window <= limits[key], (key, t)
    return busiest


# B7-5 (the review's reproducer)
B7_5_WORLD = World(
    latency=0.02,
    clock_error=0.16069665226401136,
    drift=2.0322974024510264e-05,
    step=-0.0009648097413603445,
    after_sync=30.0,
    foreign=60,
    time_scale=60.0,
)
B7_5_CROWD: list[Call] = [
    (0, "a", 0.899087250836902, 0.6813356007212419, None, None, 2.1159217784283215),
    (0, "a", 0.06367483478390501, 0.9724616270121633, None, None, 1.0),
    (2, "b", 0.7622108514104352, 0.20829276095573013, None, None, 2.3855858641290384),
    (2, "b", 0.6892710551952157, 0.4177065778429465, None, None, 3.1010945079518795),
    (0, "b", 0.958093201282214, 0.25922707965690817, None, None, 1.0),
    (1, "a", 0.10341571723716769, 0.2925937763919032, None, 0.3178048678862273, 1.0),
    (0, "b", 1.9911792808336086, 0.9599242582732912, None, None, 5.575374352025767),
    (2, "a", 0.9568325776067022, 0.6451874473706464, None, None, 1.3588933170061899),
    (0, "a", 0.41392903941557824, 0.9117046868209914, None, None, 1.0),
    (0, "b", 2.437102326256353, 0.26045377343839815, None, None, 1.0),
    (0, "b", 2.02019798234961, 0.3379172951157762, None, None, 1.0),
    (0, "b", 1.5429319098599104, 0.7409666215777352, None, None, 1.0),
    (0, "b", 0.616702467229607, 0.30483698480943966, None, None, 1.7679848363811226),
    (2, "b", 0.3902087024100003, 0.021795126161533118, None, 1.9409858154973432, 4.731475227695412),
]


# The same world shrunk on a04373f merged with c95e92a (the latter's rule that an
# ambiguous answer is "maybe" ours only where its report is read and where the middle of
# its flight was does not cure it: 4 of 300 random worlds still fail there, seeds 3, 55,
# 89 and 259, all steady state): ours 160 + 60 of 200.
B7_5_CROWD_MERGED: list[Call] = [
    (2, "b", 2.180807382255113, 0.7378911657384307, None, None, 1.0),
    (0, "a", 1.50674525834049, 0.8222035737912414, None, None, 1.0),
    (0, "a", 1.0272829049761318, 0.3511313477250777, None, None, 1.0),
    (0, "b", 0.1367802181811223, 0.3327854897110284, None, None, 1.0),
    (0, "b", 1.033594633102925, 0.6867153477784179, None, None, 1.0),
    (0, "b", 1.2441386037369915, 0.12603677695075022, None, None, 1.0),
    (0, "b", 0.958093201282214, 0.25922707965690817, None, None, 1.0),
    (0, "a", 0.611229085598, 0.5277532667559283, None, None, 1.0),
    (2, "b", 1.9816105113772076, 0.6713220694146177, None, None, 1.0),
    (2, "b", 2.254299091961825, 0.21225025529764663, None, None, 1.0),
    (0, "a", 2.1978082926342704, 0.9396220764099585, None, None, 1.0),
    (0, "a", 2.9652852748580156, 0.27219125817111145, None, None, 4.556153702118287),
    (0, "b", 2.0765643941037712, 0.1632166292037145, None, None, 1.0),
    (2, "a", 0.5109557822588388, 0.8754459043451707, None, None, 1.0),
    (1, "a", 1.1976970504481799, 0.5791973274820826, None, None, 1.0),
]


@pytest.mark.parametrize("schedule", [0, 1, 2, 3])
@pytest.mark.parametrize("crowd", [B7_5_CROWD, B7_5_CROWD_MERGED], ids=["trips7", "trips7+gov7d"])
def test_reports_treated_as_absent_do_not_let_the_other_process_fade(
    crowd: list[Call], schedule: int
) -> None:
    """B7-5: a report ignored as either window's (the fix of B7-1) still
    counted its request as maybe ours in both: the next report was read against too much
    of ours, the steady 60 faded 60 -> 30 -> 15 and 150-180 of ours went beside it."""
    check_limits(run_crowd(crowd, B7_5_WORLD, schedule=schedule), B7_5_WORLD, combined=True)


# F-1 (the review's reproducer)
F_1_WORLD = World(
    latency=0.06299635726864125,
    clock_error=7.191924724403712e-120,
    drift=2.8697050172736693e-06,
    step=-0.0013557079227430346,
    after_sync=0.0,
    foreign=100,
    time_scale=600.0,
)
F_1_CROWD: list[Call] = [
    (0, "a", 3.0, 0.45094862557533577, None, None, 1.0),
    (1, "a", 0.05322834709436998, 0.4890143628252125, None, None, 1.0),
    (0, "a", 0.0, 0.0, None, None, 1.0),
    (0, "a", 0.0, 0.0, None, None, 1.0),
    (0, "a", 0.0, 0.0, None, None, 1.0),
    (0, "a", 0.0, 0.0, None, None, 1.0),
    (0, "a", 0.0, 1.0, None, None, 1.0),
    (0, "a", 0.0, 0.8333838009382102, None, None, 1.0),
    (0, "a", 0.0, 0.0, None, None, 1.0),
    (0, "a", 0.0, 0.0, None, None, 1.0),
    (0, "a", 0.462344464377901, 0.0, 0.538044687496929, None, 1.0),
    (0, "a", 0.3877857343357781, 0.38045376817560295, None, None, 1.0),
    (0, "a", 0.0, 0.0, None, None, 1.0),
    (0, "a", 0.0, 0.0, None, None, 1.0),
    (0, "a", 1.0, 0.0, None, None, 1.0),
    (0, "a", 0.0, 0.0, None, None, 1.0),
    (0, "a", 0.0, 0.0, None, None, 1.0),
    (1, "a", 0.0, 0.0, None, None, 1.0),
    (0, "a", 0.0, 0.0, None, None, 1.0),
    (0, "a", 0.0, 0.0, None, None, 1.0),
    (0, "a", 0.6309229896108005, 0.0, None, None, 1.0),
    (0, "a", 0.0, 0.0, None, None, 1.0),
    (0, "a", 2.9058260279072132, 0.0, None, None, 1.0),
    (0, "a", 0.8438129169215758, 0.0, None, None, 1.0),
    (0, "a", 2.782866121460584, 0.0, None, None, 1.0),
    (0, "a", 2.1283448794339535, 0.44260295920790516, None, None, 1.0),
    (0, "a", 2.894313134423066, 0.12017585053068006, None, None, 1.0),
    (0, "a", 2.756537286738218, 0.2872959124566488, None, None, 1.0),
    (0, "a", 3.0, 7.196674768722447e-218, None, None, 1.0),
    (0, "a", 1.09382459663129, 0.8831488715451774, None, None, 1.0),
    (0, "a", 1.075864095691496, 0.568899345845623, None, None, 1.0),
    (0, "a", 1.6876511396805487, 0.5356894295986784, None, None, 1.0),
    (0, "a", 1.9, 0.5519128473723754, None, None, 1.0),
    (0, "a", 2.225073858507e-311, 0.5343824799052163, None, None, 1.0),
    (0, "a", 2.1954656863409343, 0.0004997210721096047, None, None, 1.0),
    (0, "a", 1.1278377201051493, 0.9306599453163078, 0.5, None, 1.0),
    (0, "a", 2.5219579019183866, 0.4248625964250691, None, None, 1.0),
    (0, "a", 1.7792568738311356, 0.1536819442553943, None, None, 1.0),
    (0, "a", 1.0216489827268143, 0.4387269459037203, None, None, 1.0),
    (0, "a", 2.180609324093856, 0.7278547076052518, None, None, 1.0),
    (0, "a", 1.878171837218909, 0.05711427855654684, None, None, 1.0),
    (0, "a", 0.4575343003453024, 0.3067142475894085, None, None, 1.0),
    (4, "b", 6.103515625e-05, 0.11535202134487135, None, None, 1.0),
    (3, "a", 2.3525573812413625, 0.0, None, None, 4.10338390700967),
    (3, "a", 0.8328108398359959, 9.565258483314244e-223, None, None, 1.0),
    (2, "b", 0.3112856820099775, 0.7698960840979758, None, None, 1.0),
    (1, "b", 2.0605148919395386, 0.9829740007539303, None, None, 4.085178757813815),
]


# A second example, from run 5 of 6 of my loop (a clean world: no clock error,
# drift or step): ours 150 + theirs 100 in the same first checked window.
F_1_WORLD_2 = World(
    latency=0.07368573765233714,
    clock_error=0.0,
    drift=0.0,
    step=0.0,
    after_sync=0.0,
    foreign=100,
    time_scale=600.0,
)
F_1_CROWD_2: list[Call] = [
    (0, "a", 0.19472437606504772, 0.8899320102710564, None, None, 1.0),
    (0, "a", 3.711719848917486e-05, 1.021229751268794e-191, None, None, 1.0),
    (0, "a", 2.554311590304414, 0.7730889180844995, None, None, 1.0),
    (0, "a", 8.946063650816386e-259, 0.7863508804384787, None, None, 1.0),
    (0, "a", 8.971492062142642e-271, 0.5739259686355217, None, None, 1.0),
    (0, "a", 2.3883137858855252, 0.8050863672482138, 1.3835367136638803, None, 1.0),
    (0, "a", 0.2902142611474051, 0.5911324946764135, None, None, 1.0),
    (0, "a", 3.711719848917486e-05, 0.912192993844305, None, None, 1.0),
    (0, "a", 1.3312524383887268, 0.5833338678141929, None, None, 1.0),
    (0, "a", 2.5514443256292, 6.217884635521914e-164, None, None, 1.0),
    (0, "a", 1.4250657073881206, 0.043578844703668025, None, 1.752780297417229, 1.0),
    (0, "a", 2.0300933752779025, 0.7382627393058993, None, None, 1.0),
    (3, "a", 0.05070872488868795, 0.27237156816107705, None, None, 1.0),
    (0, "a", 0.99, 0.6372149170648554, None, None, 1.0),
    (0, "a", 1.0783336023198447, 0.7422791350436732, None, None, 1.0),
    (0, "a", 2.465486168493442, 0.9677878521055698, None, None, 1.0),
    (0, "a", 0.29060049624988593, 0.938824665652628, None, None, 1.0),
    (0, "a", 2.209494158095322, 0.9800217656376466, None, None, 1.0),
    (0, "a", 0.0, 0.4526307255951777, None, None, 1.0),
    (0, "a", 0.0, 0.0, None, None, 1.0),
    (0, "a", 0.0, 0.7988814373302475, None, None, 1.0),
    (0, "a", 0.0, 0.0, None, None, 1.0),
    (0, "a", 0.0, 0.0, None, None, 1.0),
    (0, "a", 0.6859884279403001, 0.0, None, None, 1.0),
    (0, "a", 0.5833338678141929, 0.0, None, None, 1.0),
    (0, "a", 0.0, 2.226349025973254e-115, None, None, 1.0),
    (0, "a", 1.0309408094839867, 0.5, None, None, 1.0),
    (0, "a", 0.6529298763132796, 0.1433110941592657, None, None, 1.0),
    (0, "a", 2.732995941741965, 1.0, None, None, 1.0),
    (0, "a", 0.41731282730790864, 0.9101996836123469, None, None, 1.0),
    (0, "a", 1.4250657073881206, 0.043578844703668025, None, None, 1.0),
    (0, "a", 1.3113171327723827, 0.24390130166545992, None, None, 1.0),
    (0, "a", 2.1646233316725865, 1.175494351e-38, None, None, 1.0),
    (0, "a", 0.25916554839054623, 1.4905683980440147e-255, None, None, 1.0),
    (0, "a", 1.6183376013236255, 0.8697377032388547, None, None, 1.0),
    (0, "a", 0.1828923577042823, 0.0, None, None, 1.0),
    (0, "a", 0.3333333333333333, 0.0, None, None, 1.0),
    (0, "a", 2.8794661841116924, 0.0, None, None, 1.0),
    (0, "a", 0.99, 0.0, None, None, 1.0),
    (0, "a", 0.0, 0.0, None, None, 1.0),
]


@pytest.mark.parametrize(
    ("crowd", "world"), [(F_1_CROWD, F_1_WORLD), (F_1_CROWD_2, F_1_WORLD_2)], ids=["run1", "run5"]
)
def test_the_propertys_examples_keep_ours_and_theirs_within_the_limit(
    crowd: list[Call], world: World
) -> None:
    """F-1: two examples of main's own flake (180 / 150 of ours + 100 in the third
    0.1-s window). Blind: the first report that landed where the other process spent
    (130) may be window 2's, where 120-150 of ours make up the count; every request of
    the failing window was written before a report proved the other process."""
    check_limits(run_crowd(crowd, world, schedule=0), world, combined=True)


def test_trio_is_supported() -> None:
    """The governor runs unchanged under trio: waiting, admission at the next window, cancels."""

    async def main() -> list[float]:
        g = Governor(Limits(papi_ip=60, time_scale=60), latency=0.0, cold_start=False)
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
    # Each window opens 2 ms (the guard band) + 1 ms (clock uncertainty) + a clock step
    # (10 ms, 1 % of these 1 s windows) after its start.
    opens = round(0.003 + CLOCK_STEP, 3)
    assert admitted == [0.0, 0.0, 0.5 + opens, 0.5 + opens, 1.5 + opens, 1.5 + opens]
