"""The stress benchmark's stand-in for Binance counts and refuses as it claims to.

It is the instrument of ``benchmarks/bench_stress.py``: if it let a window
overflow or banned too early, every number that benchmark prints would be
wrong. Its clock is injected, so these run in microseconds.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks._standin import Config, StandIn

PAPI = ("POST", "/papi/v1/asset-collection")  # weight 30 of 6000
UNIVERSAL = ("POST", "/sapi/v1/asset/transfer")  # UID weight 900 of 180000
TIME = ("GET", "/api/v3/time")
T0 = 1_800_000_000.0  # a window boundary (windows are 1 s at time scale 60)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _standin(**config: Any) -> tuple[StandIn, FakeClock]:
    clock = FakeClock(T0 + 0.2)
    return StandIn(Config(**config), clock), clock


def _send(standin: StandIn, route: tuple[str, str], n: int = 1) -> list[int]:
    return [standin.answer(*route, "key")[0] for _ in range(n)]


def test_a_window_takes_exactly_its_limit_then_429_with_retry_after_to_its_end() -> None:
    standin, clock = _standin()
    assert _send(standin, PAPI, 200) == [200] * 200
    status, headers, body = standin.answer(*PAPI, "key")
    assert status == 429
    assert body["code"] == -1003
    assert headers["Retry-After"] == "0.800"  # to the end of the 1-s window
    assert headers["x-mbx-used-weight-1m"] == "6030"  # Binance counts what it receives
    clock.now = T0 + 1.0  # the next window
    status, headers, _ = standin.answer(*PAPI, "key")
    assert (status, headers["x-mbx-used-weight-1m"]) == (200, "30")
    window = standin.report()["pools"]["papi-ip"]["windows"][str(int(T0))]
    assert window == (6030, 6000, 30, 0)  # arrived, accepted, refused, foreign


def test_uid_pool_and_its_header() -> None:
    standin, _ = _standin()
    assert _send(standin, UNIVERSAL, 201) == [200] * 200 + [429]
    _, headers, _ = standin.answer(*UNIVERSAL, "other-account")
    assert headers["x-sapi-used-uid-weight-1m"] == "900"  # per account


def test_requests_in_flight_are_forgiven_then_ignoring_the_429_is_banned() -> None:
    standin, clock = _standin(ban_grace=0.1)
    _send(standin, PAPI, 201)
    clock.now += 0.05
    assert _send(standin, PAPI) == [429]  # already on its way when the 429 left
    clock.now += 0.1
    status, headers, body = standin.answer(*PAPI, "key")
    assert status == 418
    assert float(headers["Retry-After"]) == pytest.approx(2.0)  # 2 minutes, scaled
    assert "banned until" in body["msg"]
    clock.now += 1.0
    assert _send(standin, UNIVERSAL) == [418]  # every pool of the IP
    clock.now += 1.1
    assert _send(standin, PAPI) == [200]
    assert standin.report()["answers"] == {"429": 2, "418": 2}


def test_a_429_in_a_new_window_is_not_a_ban() -> None:
    standin, clock = _standin()
    _send(standin, PAPI, 201)
    clock.now = T0 + 1.5
    assert _send(standin, PAPI, 201)[-1] == 429


def test_another_process_spends_at_the_start_of_every_window() -> None:
    standin, clock = _standin(foreign=3000)
    assert _send(standin, PAPI, 101) == [200] * 100 + [429]
    clock.now = T0 + 1.0
    _, headers, _ = standin.answer(*PAPI, "key")
    assert headers["x-mbx-used-weight-1m"] == "3030"


def test_clock_offset_and_a_jump_after_the_first_sync() -> None:
    standin, clock = _standin(offset=2.5, step=-0.010)
    _, _, before = standin.answer(*TIME, "")
    assert before["serverTime"] == pytest.approx((clock.now + 2.5) * 1000, abs=1)
    _, _, after = standin.answer(*TIME, "")
    assert after["serverTime"] == pytest.approx((clock.now + 2.49) * 1000, abs=1)


def test_clock_drift_is_gradual() -> None:
    standin, clock = _standin(drift=-0.010, drift_span=2.0)
    standin.answer(*TIME, "")
    clock.now += 1.0
    assert standin.now() == pytest.approx(clock.now - 0.005)
    clock.now += 5.0
    assert standin.now() == pytest.approx(clock.now - 0.010)


def test_latency_spike_around_one_boundary_only() -> None:
    standin, _ = _standin(spike=1.5, spike_window=3, spike_span=0.5, jitter=0.0)
    _send(standin, PAPI)  # the first window is T0's
    assert standin.delay(T0 + 3 - 0.2) == 1.5
    assert standin.delay(T0 + 3 + 0.2) == 1.5
    assert standin.delay(T0 + 3 - 0.3) == 0.0
    assert standin.delay(T0 + 2) == 0.0
