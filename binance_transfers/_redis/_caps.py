"""Rolling caps shared through Redis: each call a member of a sorted set."""

from __future__ import annotations

import asyncio
import logging
import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ._counter import RedisCounter

if TYPE_CHECKING:
    from .._limits import PoolSpec
    from .._storage import StorageLink
    from ._storage import RedisStorage

__all__ = ["SharedCallCounter"]

log = logging.getLogger("binance_transfers.redis")


class SharedCallCounter(RedisCounter):
    """A :class:`CallCounter` whose slots are members of a Redis sorted set.

    Each call holds a member of the cap's sorted set, scored on Binance's clock
    by when it stops counting: ``+inf`` while this process holds it (leased,
    admitted, in flight), then, once answered, ``answer + period`` as the
    in-process cap counts it. A process leases members for the callers waiting
    on the pool (one Lua script: drop what stopped counting, grant while the
    count stays within the limit) and admits locally on the members it holds.
    To the governor, the cap's other slots look like calls of others: ``len``
    is ``limit`` minus the members held free here.

    Fail safe: members are only used while this process reached Redis within
    half a liveness span (a heartbeat renews it while it holds any); a process
    that loses Redis admits nothing new on the cap (no local share). One that
    stays silent for a span is not live: when the cap is short, the others
    bound its held members (leased or in flight: Redis cannot tell which) to a
    period and two spans after its last contact, and a process the cap is
    short for asks again when a silent owner would turn dead.
    """

    __slots__ = (
        "_asked",
        "_asking",
        "_boot",
        "_calls",
        "_closed",
        "_final",
        "_free",
        "_heartbeat",
        "_idle",
        "_members",
        "_now",
        "_ok",
        "_release",
        "_resync",
        "_retry",
        "_seq",
        "_settling",
        "_shift",
        "_task",
        "_updates",
        "span",
    )

    def __init__(
        self, storage: RedisStorage, spec: PoolSpec, link: StorageLink, redis_key: str
    ) -> None:
        super().__init__(storage, spec, link, redis_key)
        # Liveness: a heartbeat every quarter span; silent for a span is dead.
        self.span = max(spec.period / 20, 3 * storage.socket_timeout)
        self._calls: list[float] = []  # our calls: when each stops counting (monotonic)
        self._members: dict[float, list[str]] = {}  # ... and the members they hold
        self._final: set[str] = set()  # members scored finite in Redis (answered calls)
        self._free: list[str] = []  # members held for calls to come
        self._idle: set[str] = set()  # free since the last heartbeat
        self._updates: dict[str, float] = {}  # member -> score to send (Binance epoch s)
        self._release: set[str] = set()
        self._settling = False  # the last removal was of a call in flight
        self._asking = 0  # members to ask for in the next call
        self._asked = 0  # members asked for in the call on its way
        self._retry = -math.inf  # monotonic: Redis had none to grant until then
        self._ok = -math.inf  # monotonic: when the last answer was asked for
        self._now = 0.0
        self._shift = 0.0  # Binance epoch - monotonic
        self._seq = 0
        self._boot = ""
        self._resync = True
        self._task: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.TimerHandle | None = None
        self._closed = False

    # -- the CallCounter protocol ----------------------------------------------

    def _usable(self) -> int:
        # Held members count only while Redis was reached recently: silent for
        # a span, the others may bound them (see _scripts.CAP).
        return len(self._free) if self._now < self._ok + self.span / 2 else 0

    def prune(self, now: float) -> None:
        self._now = now
        self._shift = self._link.server_now() - now
        calls = self._calls
        if calls and calls[0] <= now:
            cut = bisect_right(calls, now)
            for until in calls[:cut]:
                member = self._members[until].pop()
                if not self._members[until]:
                    del self._members[until]
                if member in self._final:
                    self._final.discard(member)  # Redis drops it by its score
                else:
                    self._free.append(member)  # admitted, never sent: held still
            del calls[:cut]
        if not (self._asking or self._asked) and now >= self._retry:
            need = self._link.demand(self.key) - self._usable()
            if need > 0:
                share = max(1, self.limit // (4 * max(self._storage.seen, 1)))
                self._ask(min(need, share))

    def __len__(self) -> int:
        return max(self.limit - self._usable(), len(self._calls))

    def _hidden(self) -> int:
        """Slots not ours: others' calls, or not leased to us yet."""
        return max(len(self) - len(self._calls), 0)

    def __getitem__(self, index: int) -> float:
        # The slots not ours come first: ``calls[excess - 1]`` is when the
        # governor may look again; Redis's answer wakes the pool sooner.
        hidden = self._hidden()
        if index < hidden:
            return math.inf if self._asking or self._asked else max(self._retry, self._now)
        return self._calls[index - hidden]

    def __iter__(self) -> Iterator[float]:
        # For estimates (a lower bound): a slot not ours may be granted at once.
        yield from [max(self._retry, self._now)] * self._hidden()
        yield from self._calls

    def add(self, until: float) -> None:
        settling, self._settling = self._settling, False
        if self._free:
            member = self._free.pop()
            self._idle.discard(member)
            if until != math.inf and settling:
                # Answered: it counts until ``until``, no longer forever.
                self._final.add(member)
                self._send(member, until)
        else:  # beyond what we hold (seeded history): counted in Redis as it is
            self._seq += 1
            member = f"{self._storage.id}:c{self._seq}"
            if until != math.inf:
                self._final.add(member)
            self._send(member, until)
        insort(self._calls, until)
        self._members.setdefault(until, []).append(member)

    def remove(self, until: float) -> bool:
        calls = self._calls
        i = bisect_left(calls, until)
        if i < len(calls) and calls[i] == until:
            del calls[i]
            members = self._members[until]
            member = members.pop()
            if not members:
                del self._members[until]
            if member in self._final:  # not a path the governor takes: drop it
                self._final.discard(member)
                self._release.add(member)
            else:
                self._free.append(member)  # held: the next add uses it
            self._settling = until == math.inf
            return True
        self._settling = False
        return False

    # -- Redis -----------------------------------------------------------------

    def _send(self, member: str, until: float) -> None:
        self._updates[member] = until if until == math.inf else until + self._shift
        self._flush()

    def _ask(self, want: int) -> None:
        self._asking = want
        self._flush()

    def _flush(self, beat: bool = False) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run(beat))

    async def _run(self, beat: bool) -> None:
        """Call Redis until nothing is left to tell or ask (at least once for a beat)."""
        from redis.exceptions import RedisError

        storage = self._storage
        try:
            while beat or self._asking or self._updates or self._release or self._resync:
                beat = False
                started = self._link.server_now() - self._shift  # monotonic
                want, updates, release = self._asking, self._updates, self._release
                self._asking, self._asked = 0, want
                if self._resync:
                    updates = {**self._everything(), **updates}
                self._updates, self._release = {}, set()
                first = self._seq + 1
                self._seq += want
                try:
                    reply = await storage._cap_call(self, want, first, updates, release)
                except RedisError as error:
                    # Lost. What was asked for may have been granted: give it
                    # back with the next call. Nothing new is admitted meanwhile,
                    # and the members held go stale (see _usable).
                    self._release |= release | {f"{storage.id}:{first + i}" for i in range(want)}
                    self._updates = {**updates, **self._updates}
                    self._asking = self._asked = 0
                    self._resync = True
                    self._retry = self._now + self.span / 4
                    storage._cap_lost(self, error)
                    self._link.wake(self.key)
                    return
                boot, granted, soonest, revived, live = (
                    str(reply[0]),
                    int(reply[1]),
                    int(reply[3]),
                    int(reply[4]),
                    int(reply[5]),
                )
                storage.seen = max(storage.seen, live)
                if boot != self._boot or revived:
                    # The cap lost its calls (its token changed: Redis restarted
                    # empty, flushed, the set evicted), or we were silent for a span (our
                    # members may have been bounded): give back the free ones,
                    # re-register the rest, then ask again.
                    if self._boot:
                        log.warning("%s: cap %r re-registers its calls", storage._where, self.key)
                    self._release |= release | set(self._free)
                    self._free.clear()
                    self._idle.clear()
                    self._boot = boot
                    self._resync = True
                    self._updates = {**updates, **self._updates}
                    self._asking = max(self._asking, want)
                    self._asked = 0
                    continue
                self._resync = False
                self._ok = started
                storage._cap_back()
                self._free += [f"{storage.id}:{first + i}" for i in range(granted)]
                self._asked = 0
                if granted < want:
                    # Full (or stopped): the governor looks again when the
                    # soonest call stops counting.
                    self._retry = (
                        soonest / 1000 - self._shift if soonest else self._now + self.span / 4
                    )
                if granted or want:
                    self._link.wake(self.key)
        finally:
            self._task = None
            self._beat()

    def _everything(self) -> dict[str, float]:
        """Every member we hold, as Redis should score it (a resync)."""
        out: dict[str, float] = {m: math.inf for m in self._free}
        for until, members in self._members.items():
            for member in members:
                out[member] = until + self._shift if member in self._final else math.inf
        return out

    def _beat(self) -> None:
        """While we hold members (or calls that count), tell Redis we are live
        every quarter span, and give back members left free since the last beat."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if self._closed:
            return
        if self._free or self._calls or self._release or self._updates:
            loop = asyncio.get_running_loop()
            self._heartbeat = loop.call_later(self.span / 4, self._beat_now)

    def _beat_now(self) -> None:
        self._heartbeat = None
        idle = self._idle.intersection(self._free)
        if idle:  # unused for a whole beat: the others may need them
            self._free = [m for m in self._free if m not in idle]
            self._release |= idle
        self._idle = set(self._free)
        self._flush(beat=True)

    def close(self) -> dict[str, float]:
        """Stop the heartbeat; the free members, to give back."""
        self._closed = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if self._task is not None:
            self._task.cancel()
            self._task = None
        free, self._free = self._free, []
        return dict.fromkeys([*free, *self._release], 0.0)

    def __repr__(self) -> str:
        return f"<SharedCallCounter {self.key!r} calls={self._calls} free={len(self._free)}>"
