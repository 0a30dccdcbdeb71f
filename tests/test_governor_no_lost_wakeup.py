"""no waiter is left asleep when capacity comes back (the skipped pumps of 7ee18b5).

Commit 7ee18b5 skips ``_pump`` in ``observe`` and ``refund`` when no freed
pool has a queue and no wake-up is due. A wrong skip is a lost wake-up: a
waiter asleep while its pools have room, until its ``max_wait`` (or forever
without one). Here 60 callers on multi-pool plans (UID + /sapi IP, a rolling
cap, /papi), small limits so that most wait, refund, get cancelled while
waiting, or are answered at random moments on a fake clock, without a
``max_wait``: every caller must finish, and right after each refund or observe
no pool it charged keeps a waiter at its head that the pool could admit now.
(A check: it held on main e1df29e. Sensitivity: with refund's pump removed it
fails, 64 heads left asleep; observe's freed capacity here mostly comes back
by the leader's timers, so removing observe's pump is not caught.)
"""

from __future__ import annotations

import random

import anyio
import looptime
import pytest

from binance_transfers import ENDPOINTS, Governor, Limits
from binance_transfers._governor._geometry import INF
from binance_transfers._governor._queue import Permit

E0 = 1_767_225_600.0
NAMES = ("universal_transfer", "pmpro_collect_asset", "pm_bnb_transfer", "pm_collect_asset")


@looptime.enabled(strict=True)
@pytest.mark.parametrize("seed", range(6))
async def test_every_waiter_is_woken_when_its_pools_have_room(seed: int) -> None:
    rng = random.Random(seed)
    limits = Limits(sapi_ip=3000, sapi_uid=2700, papi_ip=1500, time_scale=60)
    governor = Governor(limits, latency=0.0, cold_start=False)
    sc = governor.server_clock
    mono = sc.clock.monotonic
    now = mono()
    sc.update(sent=now, received=now, server_ms=round((E0 + 0.3) * 1000))
    endpoints = [ENDPOINTS[name] for name in NAMES]
    finished = 0
    calls = 0
    lost: list[str] = []

    def woken(permit: Permit) -> None:
        """After a refund or an observe: no pool it charged keeps an admissible head asleep."""
        now = mono()
        g = governor._geometry(now)
        for pool, _, _ in permit[2]:
            head = next((w for w in pool.queue if not w.done), None)
            if head is None or governor._wake.get(pool, INF) <= now:
                continue  # nobody waits, or its timer is due this instant anyway
            weight = head.plan[head.stage][1]
            if pool.ready_at(now, weight + pool.passed, g) <= now:
                lost.append(f"{pool.key} at {now:.4f}: head admissible, left asleep")

    def refund(permit: Permit) -> None:
        governor.refund(permit)
        woken(permit)

    def observe(permit: Permit, sent: float, received: float | None) -> None:
        status = None if received is None else 200
        governor.observe(permit, sent=sent, received=received, status=status)
        woken(permit)

    async def caller() -> None:
        nonlocal finished, calls
        for _ in range(8):
            endpoint = rng.choice(endpoints)
            fate = rng.random()
            if fate < 0.15:
                with anyio.move_on_after(rng.random() * 0.5):
                    permit = await governor.acquire(endpoint)
                    refund(permit)
                continue
            permit = await governor.acquire(endpoint)
            calls += 1
            if fate < 0.35:
                await anyio.sleep(rng.random() * 0.01)
                refund(permit)  # never sent
                continue
            written = governor.renew(permit)
            if written is None:
                continue
            sent = mono()
            await anyio.sleep(0.002 + rng.random() * 0.02)
            # No answer (a timeout, observed unanswered), or an answer.
            observe(written, sent, None if fate < 0.45 else mono())
        finished += 1

    # The work: ~120 pm_bnb_transfer calls at 10 per 10-s period (the cap, scaled), ~120 s;
    # /papi 1500 a window, 750 a bnb call. Far more: a stalled waiter.
    with anyio.fail_after(600):
        async with anyio.create_task_group() as tg:
            for _ in range(60):
                tg.start_soon(caller)
    assert finished == 60
    assert lost == []
    snap = [p for p in governor.snapshot() if p.in_flight or p.waiters]
    assert snap == []
