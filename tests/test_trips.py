"""The round-trip bound (``Trips``) against a plain re-sort of its samples."""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from binance_transfers._governor._geometry import Trips


class _Resorted:
    """The bound as first written: a deque of the last 1024 trips, sorted every 16
    answers (or 5 s)."""

    def __init__(self, floor: float, span: float) -> None:
        self.floor, self.span = floor, span
        self.bound, self.jitter, self.p99 = floor, 0.0, 0.0
        self.samples: deque[tuple[float, float]] = deque(maxlen=1024)
        self.count = 0
        self.next = -float("inf")

    def note(self, trip: float, now: float) -> bool:
        self.samples.append((now, trip))
        self.count += 1
        longer = trip > 1.25 * self.p99 + 0.001
        self.p99 = max(self.p99, trip)
        if trip > self.bound:
            self.bound = trip
            return True
        if self.count % 16 and now < self.next:
            return longer
        self.next = now + 5.0
        while self.samples and self.samples[0][0] < now - self.span:
            self.samples.popleft()
        trips = sorted(t for _, t in self.samples)
        n = len(trips)
        p50, p99 = trips[(n - 1) // 2], trips[int(0.99 * (n - 1))]
        jitter = p99 - p50
        bound = max(self.floor, p99 + max(min(jitter, p99 / 4), 0.001))
        changed = bound != self.bound or jitter != self.jitter or longer
        changed |= abs(p99 - self.p99) > 0.25 * self.p99 + 0.001
        self.bound, self.jitter, self.p99 = bound, jitter, p99
        return changed


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0.0005, 0.5),  # the trip
            st.floats(0.0, 0.05),  # seconds since the previous answer
        ),
        min_size=1,
        max_size=3000,
    ),
    st.sampled_from([0.05, 1.0, 600.0]),
)
def test_the_bound_is_the_same_as_sorting_every_time(
    answers: list[tuple[float, float]], span: float
) -> None:
    """Same bound, jitter, p99 and "changed" answer after every trip, old samples
    dropped by age (``span``) and by count (1024) alike."""
    trips, reference = Trips(0.01, span), _Resorted(0.01, span)
    now = 100.0
    for trip, gap in answers:
        now += gap
        assert trips.note(trip, now) == reference.note(trip, now)
        assert (trips.bound, trips.jitter, trips.p99) == (
            reference.bound,
            reference.jitter,
            reference.p99,
        )
        assert [t for _, t in trips.samples] == [t for _, t in reference.samples]


def test_a_thousand_repeated_trips_keep_the_sorted_copy_in_step() -> None:
    """Equal trips (a quiet loopback) are dropped one for one: the sorted copy
    never holds more than the samples, nor other values."""
    trips = Trips(0.0, 1e9)
    for i in range(5000):
        trips.note(0.001 if i % 3 else 0.002, float(i))
    assert len(trips.samples) == Trips.CAPACITY
    assert trips._sorted == sorted(t for _, t in trips.samples)


def test_a_spike_at_pm_pro_rates_is_forgotten_within_a_minute() -> None:
    """B5-6: at 8 answers a minute, a 5-s spike that came on a recompute's
    turn (which it skips: it raises the bound at once) kept the bound at 5 s for
    16 answers, 120 s. The next answer 5 s later recomputes."""
    trips = Trips(floor=0.01, span=600.0)
    now = 0.0
    for _ in range(47):  # the spike is the 48th answer: a recompute's turn, skipped
        now += 7.5
        trips.note(0.05, now)
    steady = trips.bound
    now += 7.5
    trips.note(5.0, now)
    assert trips.bound == 5.0  # at once
    spike = now
    while trips.bound != steady:
        now += 7.5
        trips.note(0.05, now)
    assert now - spike <= 60.0, f"the 5-s spike inflated the bound for {now - spike:.0f} s"
