"""A GovernorHooks method that raises (a metrics backend down) changes nothing:
no plain exception reaches the caller, no answer is misread, no weight leaks.
The failure is logged, and the governor carries on."""

from __future__ import annotations

import logging

import anyio
import httpx
import looptime
import pytest

from binance_transfers import (
    ENDPOINTS,
    Client,
    Governor,
    GovernorHooks,
    Limits,
    ThrottledError,
    TransferType,
)

from .conftest import API_KEY, SECRET, FakeBinance, ok
from .test_governor import synced

E0 = 1_767_225_600.0
PM_ASSET = ENDPOINTS["pm_collect_asset"]  # /papi, weight 30
SUB = ENDPOINTS["sub_account_transfer"]  # /sapi bucket: IP 1 + UID 360

fake_time = looptime.enabled(strict=True)


class Down(GovernorHooks):
    """Every hook raises, as a metrics client does when its backend is unreachable."""

    def throttled(self, endpoint: str, wait: float) -> None:
        raise RuntimeError("metrics backend unreachable")

    def admitted(self, endpoint: str, waited: float) -> None:
        raise RuntimeError("metrics backend unreachable")

    def refused(self, endpoint: str, reason: str, retry_after: float) -> None:
        raise RuntimeError("metrics backend unreachable")

    def frozen(self, pool: str, until: float, reason: str) -> None:
        raise RuntimeError("metrics backend unreachable")

    def usage(self, pool: str, used: int, limit: int) -> None:
        raise RuntimeError("metrics backend unreachable")


def used(governor: Governor, key: str) -> int:
    return next(p.used for p in governor.snapshot() if p.key == key)


def now(governor: Governor) -> float:
    return governor.server_clock.clock.monotonic()


@fake_time
async def test_a_raising_admitted_hook_neither_escapes_nor_leaks_weight(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Immediate admissions (one pool and several): the permit comes back, charged once."""
    g = synced(Governor(Limits(papi_ip=90), latency=0.0, hooks=Down(), cold_start=False), E0 + 1)
    permits = [await g.acquire(PM_ASSET) for _ in range(3)]
    assert len(permits) == 3
    assert used(g, "papi-ip") == 90  # exactly the three permits held
    for permit in permits:
        g.refund(permit)
    assert used(g, "papi-ip") == 0
    two = await g.acquire(SUB)  # IP + UID: the multi-pool path
    uid = next(p.key for p in g.snapshot() if p.key.startswith("sapi-uid"))
    assert used(g, uid) == 360
    g.refund(two)
    assert used(g, uid) == 0
    assert "governor hook admitted() failed" in caplog.text


@fake_time
async def test_a_raising_throttled_or_admitted_hook_does_not_break_a_waiting_call() -> None:
    """The fourth 30-weight call into a 90 pool waits for the next minute and gets its permit."""
    g = synced(Governor(Limits(papi_ip=90), latency=0.0, hooks=Down(), cold_start=False), E0 + 1)
    for _ in range(3):
        await g.acquire(PM_ASSET)
    permit = await g.acquire(PM_ASSET)  # throttled(), then admitted() after the wait
    assert permit[0] is PM_ASSET
    assert g.server_clock.now() > E0 + 60
    assert used(g, "papi-ip") == 30


@fake_time
async def test_a_raising_refused_hook_still_gives_the_typed_error() -> None:
    g = synced(Governor(Limits(papi_ip=30), latency=0.0, hooks=Down(), cold_start=False), E0 + 1)
    await g.acquire(PM_ASSET)
    with pytest.raises(ThrottledError):
        await g.acquire(PM_ASSET, max_wait=0)


@fake_time
async def test_a_raising_usage_or_frozen_hook_does_not_stop_an_observation_half_way() -> None:
    """usage() raises on a header showing others' weight, frozen() on a 429: every pool
    of the permit is still settled, the count raised and the pool stopped."""
    g = synced(Governor(latency=0.0, hooks=Down(), cold_start=False), E0 + 1)
    permit = await g.acquire(SUB)
    t = now(g)
    g.observe(
        permit,
        sent=t,
        received=t,
        status=200,
        headers={"x-sapi-used-uid-weight-1m": "90000", "x-sapi-used-ip-weight-1m": "500"},
    )
    uid = next(p.key for p in g.snapshot() if p.key.startswith("sapi-uid"))
    assert used(g, uid) == 90000
    ip = next(p.key for p in g.snapshot() if p.key.startswith("sapi-ip"))
    assert used(g, ip) == 500  # the second pool too
    permit = await g.acquire(PM_ASSET)
    t = now(g)
    g.observe(permit, sent=t, received=t, status=429, headers={}, retry_after=5.0)
    frozen = {p.key: p.frozen_until for p in g.snapshot()}
    assert frozen["papi-ip"] == pytest.approx(g.server_clock.now() + 5.0, abs=0.01)


@fake_time
async def test_a_raising_frozen_hook_during_a_ban_still_fails_the_waiters() -> None:
    g = synced(Governor(Limits(papi_ip=30), latency=0.0, hooks=Down(), cold_start=False), E0 + 1)
    permit = await g.acquire(PM_ASSET)
    failed: list[BaseException] = []

    async def waiter() -> None:
        try:
            await g.acquire(PM_ASSET)
        except Exception as exc:
            failed.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.sleep(1)
        t = now(g)
        g.observe(permit, sent=t, received=t, status=418, headers={}, banned_until=E0 + 300)
    assert [type(e).__name__ for e in failed] == ["IPBannedError"]


async def test_a_confirmed_transfer_stays_confirmed_when_the_usage_hook_raises(
    fake: FakeBinance, caplog: pytest.LogCaptureFixture
) -> None:
    """Binance confirms tranId 42 and reports others' weight: the caller gets tranId 42."""
    fake.script(
        "POST",
        "/sapi/v1/asset/transfer",
        ok({"tranId": 42}, **{"X-SAPI-USED-UID-WEIGHT-1M": "90000"}),
    )
    async with Client(
        API_KEY,
        SECRET,
        transport=httpx.MockTransport(fake),
        governor=Governor(hooks=Down()),
    ) as client:
        with caplog.at_level(logging.ERROR, logger="binance_transfers.governor"):
            done = await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
    assert done.tran_id == 42
    assert "governor hook usage() failed" in caplog.text
