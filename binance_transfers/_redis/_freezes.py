"""429s and 418s shared: a freeze one process meets stops every process.

The governor that meets a 429 (a pool) or a 418 (the IP) tells the storage
(``frozen``); it publishes a key (which stops new leases: see the lease
script) and a pub/sub message (which stops the pools of every process at once,
leases held or not). A listener applies what the others publish; when its
connection breaks, Redis may have restarted: it has it probed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ._leasing import EXCESS, Leasing

__all__ = ["Freezes"]

log = logging.getLogger("binance_transfers.redis")


class Freezes(Leasing):
    """The freeze half of :class:`RedisStorage` (a mixin: its state is set there)."""

    _channel: str
    _freezes: dict[str, float]
    _applying: bool
    """True while another process's freeze is being applied (see :meth:`_froze`)."""
    _listener: asyncio.Task[None] | None

    def frozen(self, key: str, until: float) -> None:
        """The governor stopped pool ``key`` (``"*"``: the IP, a 418 ban) until
        Binance epoch ``until``: publish it, for every process to stop too."""
        counters = [c for cs in self._counters.values() for c in cs]
        if not counters:
            return
        if key == "*":
            where = self._ban_key
        elif key in self._counters:
            where = self._counters[key][0].redis_key
        else:
            return
        if self._applying:
            # The echo of a freeze another process published (see _froze): the
            # governor re-reports it widened by its clock margin. Published, it
            # would come back widened again, and so on for as long as both run.
            return
        if until <= self._freezes.get(where, 0.0):
            return  # known: ours already, or published by another process
        self._freezes[where] = until
        if self._listener is None:
            return  # never connected (from_url, not used in a loop yet)
        ttl = until - counters[0]._link.server_now()
        self._spawn(self._publish(where, until, ttl))

    async def _publish(self, where: str, until: float, ttl: float) -> None:
        from redis.exceptions import RedisError

        ms = int(until * 1000)
        # The key stops new leases (see _scripts.LEASE); the message stops the leases held.
        with contextlib.suppress(RedisError):  # lost: each process honours what it sees
            async with self._client.pipeline(transaction=True) as pipe:
                key = where if where == self._ban_key else f"{where}:freeze"
                pipe.set(key, ms, px=max(int(ttl * 1000), 1))
                pipe.publish(self._channel, f"{where} {ms}")
                await pipe.execute()

    def _listen(self) -> None:
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listening())

    async def _listening(self) -> None:
        """Apply the freezes other processes publish, for as long as the storage lives."""
        from redis.exceptions import RedisError

        retry = asyncio.Event()  # never set: waits out a lost Redis without polling it hot
        while True:
            try:
                async with self._client.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            where, value = str(message["data"]).rsplit(" ", 1)
                            if where.startswith(EXCESS):
                                self._excess(where.removeprefix(EXCESS), int(value))
                            else:
                                self._froze(where, int(value) / 1000, ban=where == self._ban_key)
            except RedisError:
                # The connection broke (Redis killed, restarted?): probe it
                # until it answers, whether or not leases are needed.
                counter = next((c for cs in self._counters.values() for c in cs), None)
                if counter is not None:
                    self._suspect = True
                    self._probe_later(counter)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(retry.wait(), 0.5)

    def _excess(self, where: str, total: int) -> None:
        """Another process was granted a window past its limit (a late
        request of its own, forced: it may land there): hold that much back of
        what we lease there (see ``LeasedWindowCounter._recap``)."""
        redis_key, _, window = where.rpartition(":")
        for counters in self._counters.values():
            for counter in counters:
                if counter.redis_key == redis_key:
                    counter.exceeded(int(window), total)

    def _froze(self, where: str, until: float, *, ban: bool) -> None:
        """Another process met a 429 (``where``: a pool's Redis key) or a 418
        (the IP's ban key) until Binance epoch ``until``: stop our pools too."""
        if until <= self._freezes.get(where, 0.0):
            return
        self._freezes[where] = until
        counters = [c for cs in self._counters.values() for c in cs]
        # Each governor told re-reports the freeze through frozen() at once
        # (synchronously): not a freeze of its own, not to be published.
        self._applying = True
        try:
            if ban:
                for link in {c._link for c in counters}:  # each governor on this storage
                    link.freeze("*", until)
            else:
                for counter in counters:
                    if counter.redis_key == where:
                        counter._link.freeze(counter.key, until)
        finally:
            self._applying = False
