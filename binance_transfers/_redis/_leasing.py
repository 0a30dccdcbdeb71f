"""RedisStorage's window leases: one Lua call per batch of lease requests,
Redis lost (admit within the leases held) and probed until it answers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import TYPE_CHECKING, Any

from .._lazy import LazyModule
from ._windows import LeasedWindowCounter

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.commands import core as redis_core
else:
    # The redis extra: imported when a storage connects, or when
    # typing.get_type_hints resolves these annotations, not with this module.
    aioredis = LazyModule("redis.asyncio")
    redis_core = LazyModule("redis.commands.core")

__all__ = ["EXCESS", "Leasing"]

#: Prefix of a message on the freeze channel saying a window was leased past its
#: limit: ``excess <redis key>:<window> <total leased>``.
EXCESS = "excess "

log = logging.getLogger("binance_transfers.redis")

_Batch = dict[tuple[LeasedWindowCounter, int], int]
"""Lease requests: (counter, window) -> the weight a waiting request needs at least."""


class Leasing:
    """The lease half of :class:`RedisStorage` (a mixin: its state is set there)."""

    id: str
    processes: int
    seen: int
    lost: int | None
    round_trips: int
    _client: aioredis.Redis
    _where: str
    _tag: str
    _boot: str
    _ban_key: str
    _channel: str
    _script: redis_core.AsyncScript
    _pending: _Batch
    _counters: dict[str, list[LeasedWindowCounter]]
    _task: asyncio.Task[None] | None
    _timers: set[asyncio.TimerHandle]
    _sends: set[asyncio.Task[None]]
    _probe: asyncio.TimerHandle | None
    _suspect: bool
    _closed: bool

    def _froze(self, where: str, until: float, *, ban: bool) -> None:
        raise NotImplementedError  # see _freezes.Freezes

    def _spawn(self, coro: Any) -> None:
        """Run ``coro`` in the background, held until it is done."""
        task = asyncio.get_running_loop().create_task(coro)
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    def _key(self, name: str) -> str:
        return f"{self._tag}:{name}"

    def _ask(self, counter: LeasedWindowCounter, window: int, need: int) -> None:
        key = (counter, window)
        self._pending[key] = max(self._pending.get(key, 0), need)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        from redis.exceptions import RedisError

        try:
            while self._pending:
                batch, self._pending = self._pending, {}
                try:
                    reply = await self._call(batch)
                except RedisError as error:
                    self._on_lost(batch, error)
                else:
                    self._on_reply(batch, reply)
        finally:
            self._task = None

    async def _call(
        self,
        batch: dict[tuple[LeasedWindowCounter, int], int],
        probe: LeasedWindowCounter | None = None,
    ) -> list[Any]:
        keys = [self._key("boot"), self._key("live"), self._key("since"), self._ban_key]
        first = probe if probe is not None else next(iter(batch))[0]
        now = first._link.server_now()
        period = first.period
        span = max(int(3 * period * 1000), 1)
        # The furthest window anybody may have leased before now (see _scripts.LEASE):
        # where a request sent now may land, and the next one.
        horizon = max([first._link.landing(period)[1] + 1, *(window for _, window in batch)])
        held = -1  # no local shares any more (see _on_lost): nothing to stop
        args: list[Any] = [self.id, self._boot, secrets.token_hex(8), horizon, span, held]
        for (counter, window), need in batch.items():
            keys.append(f"{counter.redis_key}:{window}")
            chunk = max(1, counter.limit // (4 * max(self.seen, self.processes)))
            unit = counter._unit  # whole requests: half of one is of no use
            want = -(-max(need, chunk) // unit) * unit
            ttl = max(int(((window + 3) * counter.period - now) * 1000), 1)
            args += [
                window,
                want,
                counter.limit,
                counter.claim(window),
                counter._floor.get(window, 0),
                counter._debt.pop(window, 0),
                ttl,
                f"{counter.redis_key}:freeze",
                unit,
            ]
        self.round_trips += 1
        return list(await self._script(keys=keys, args=args))

    def _on_reply(self, batch: _Batch, reply: list[Any]) -> None:
        boot = str(reply[0])
        if self._boot and boot != self._boot:
            log.warning("%s lost its counts (restarted): rebuilding them", self._where)
        if self.lost is not None:
            log.warning("%s is back: leasing from it again", self._where)
            self.lost = None
        self._boot = boot
        self.seen = max(int(reply[1]), 1)
        for i, (counter, window) in enumerate(batch):
            granted = int(reply[2 + 3 * i])
            total = int(reply[3 + 3 * i])
            counter.granted(window, granted, total)
            if total > counter.limit and granted > 0:
                # Forced past the limit (our late request may land there):
                # the others must not spend that much of what they hold unused.
                self._spawn(self._tell_excess(counter.redis_key, window, total))
            frozen = int(reply[4 + 3 * i])
            if frozen:  # another process met a 429 or a ban: stop here too
                self._froze(counter.redis_key, frozen / 1000, ban=False)
            if granted <= 0:
                # Nothing left in this window: look again when the next one opens.
                counter._full.add(window)
                self._later(counter, window, retry=False)

    async def _tell_excess(self, redis_key: str, window: int, total: int) -> None:
        from redis.exceptions import RedisError

        with contextlib.suppress(RedisError):  # lost: the next lease reply tells them
            await self._client.publish(self._channel, f"{EXCESS}{redis_key}:{window} {total}")

    def _on_lost(self, batch: _Batch, error: Exception) -> None:
        counter = next(iter(batch))[0]
        current = int(counter._link.server_now() // counter.period)
        if self.lost is None:
            self.lost = current
            # No local share: when only this process lost its
            # route to Redis, the others still lease everything Redis has left,
            # and any share taken here would come on top of it. What is leased
            # here is already counted there: it is the only safe budget.
            log.warning(
                "%s lost (%s): admitting only within the leases held until it "
                "answers, and retrying",
                self._where,
                type(error).__name__,
            )
        for counter, window in batch:
            counter._asked.discard(window)
            self._later(counter, window, retry=True)
        self._suspect = True
        self._probe_later(counter)

    def _probe_later(self, counter: LeasedWindowCounter) -> None:
        """Redis is lost: try it again in a tenth of a window, needed or not.
        Back (and empty), it is told at once: the restart's stop of new leases
        then ends as early as it safely can (see _scripts.LEASE)."""
        if self._probe is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._probe = loop.call_later(counter.period / 10, self._probe_now, counter)

    def _probe_now(self, counter: LeasedWindowCounter) -> None:
        self._probe = None
        if not self._suspect:
            return
        if self._task is not None:  # a lease request is trying already
            self._probe_later(counter)
            return
        self._spawn(self._probing(counter))

    async def _probing(self, counter: LeasedWindowCounter) -> None:
        from redis.exceptions import RedisError

        try:
            reply = await self._call({}, probe=counter)
        except RedisError:
            self._probe_later(counter)
        else:
            self._on_reply({}, reply)
            self._suspect = False

    def _later(self, counter: LeasedWindowCounter, window: int, retry: bool) -> None:
        """Wake the pool when window ``window + 1`` opens (or, to retry a lost
        Redis, in a tenth of a window if sooner)."""
        now = counter._link.server_now()
        delay = (window + 1) * counter.period - now
        if retry:
            delay = min(delay, counter.period / 10)
        delay = max(delay, 0.001)

        def fire(handle: list[asyncio.TimerHandle]) -> None:
            self._timers.discard(handle[0])
            counter._link.wake(counter.key)

        box: list[asyncio.TimerHandle] = []
        handle = asyncio.get_running_loop().call_later(delay, fire, box)
        box.append(handle)
        self._timers.add(handle)

    async def _give_back(self, back: dict[tuple[LeasedWindowCounter, int], int]) -> None:
        keys = [self._key("boot"), self._key("live"), self._key("since"), self._ban_key]
        first = next(iter(back))[0]
        now = first._link.server_now()
        span = max(int(3 * first.period * 1000), 1)
        current = int(now // first.period)
        args: list[Any] = [self.id, self._boot, secrets.token_hex(8), current, span, -1]
        for (counter, window), unused in back.items():
            keys.append(f"{counter.redis_key}:{window}")
            ttl = max(int(((window + 3) * counter.period - now) * 1000), 1)
            freeze = f"{counter.redis_key}:freeze"
            args += [window, -unused, counter.limit, 0, 0, 0, ttl, freeze, 1]
        await self._script(keys=keys, args=args)
