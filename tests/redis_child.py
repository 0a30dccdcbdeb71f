"""A process of the multi-process tests of RedisStorage: ``python -m tests.redis_child MODE ...``.

* ``hold REDIS_URL``: lease some of the /api window (10 permits taken, never
  sent), print ``held <id> <window>`` and wait to be killed.
* ``run REDIS_URL SIM_URL SECONDS CALLERS``: a client of the simulated
  exchange over TCP, ``CALLERS`` coroutines calling ``pm_collect_asset``
  for ``SECONDS`` from its first answer; print ``ready`` once connected, start on a
  ``go`` line on stdin (the test starts every child at once, however slowly
  each one started), then print ``done <answered> <first window> <last window>``
  (the windows of its first answer and of its end).
"""

from __future__ import annotations

import sys
import time

import anyio
import anyio.to_thread

from binance_transfers import ENDPOINTS, Client, Governor, Limits, RateLimitError, RedisStorage
from binance_transfers.sim import DEMO_API_KEY, DEMO_API_SECRET

#: The limits every test process shares: 1-s windows.
LIMITS = Limits(api_ip=60, papi_ip=600, time_scale=60)


def synced_to_wall(governor: Governor) -> Governor:
    """The simulated exchange's clock is the wall clock: read it as a sync would."""
    clock = governor.server_clock
    mono = clock.clock.monotonic()
    clock.update(sent=mono - 0.001, received=mono + 0.001, server_ms=round(time.time() * 1000))
    return governor


async def hold(url: str) -> None:
    async with await RedisStorage.connect(url) as storage:
        governor = synced_to_wall(Governor(LIMITS, storage=storage, latency=0.02, cold_start=False))
        for _ in range(10):
            await governor.acquire(ENDPOINTS["server_time"])
        window = int(governor.server_clock.now() // LIMITS.window)
        print("held", storage.id, window, flush=True)
        await anyio.sleep_forever()


async def run(url: str, sim_url: str, seconds: float, callers: int) -> None:
    done = 0
    first = None
    answered = anyio.Event()

    async def caller(client: Client) -> None:
        nonlocal done, first
        while True:
            try:
                await client.pm_collect_asset(asset="USDT")
            except RateLimitError:
                return
            done += 1
            if first is None:
                first = int(time.time() // LIMITS.window)
                answered.set()

    async with await RedisStorage.connect(url) as storage:
        governor = Governor(LIMITS, storage=storage, latency=0.02)
        print("ready", flush=True)
        # A common start: wait for the test's "go" (a blocking read, in a thread).
        if (await anyio.to_thread.run_sync(sys.stdin.readline)).strip() != "go":
            raise SystemExit("no go")
        async with (
            Client(
                DEMO_API_KEY, DEMO_API_SECRET, api_url=sim_url, papi_url=sim_url, governor=governor
            ) as client,
            anyio.create_task_group() as tg,
        ):
            for _ in range(callers):
                tg.start_soon(caller, client)
            # SECONDS of running from the first answer: a fresh Redis stops leases
            # for a while (see RedisStorage, R-6), however long that takes here.
            with anyio.move_on_after(30):
                await answered.wait()
            await anyio.sleep(seconds)
            tg.cancel_scope.cancel()
        last = int(time.time() // LIMITS.window)
        print("done", done, first, last, flush=True)


def main(argv: list[str]) -> None:
    mode, *args = argv
    if mode == "hold":
        anyio.run(hold, args[0])
    elif mode == "run":
        anyio.run(run, args[0], args[1], float(args[2]), int(args[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
