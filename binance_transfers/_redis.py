"""One budget for many processes: the governor's counts leased from Redis.

Binance counts UID weight and rolling caps per account across every IP, and IP
weight per IP across every process behind it. :class:`RedisStorage` lets the
governors of many processes (and hosts) share those budgets without a round
trip per request, the way Doorman (YouTube's distributed client-side rate
limiter) does it: each process *leases* blocks of a window's capacity from
Redis and admits requests locally, within its lease, at the in-process speed.

* **Windows.** A pool's window ``w`` (its index on Binance's clock, as in the
  governor) is one Redis hash: the total leased (``t``) and each process's
  lease. One Lua script grants leases for any number of pools at once, never
  more than ``limit - total``; the sum of the leases of a window is therefore
  never above the limit, and a process only admits what its lease covers: the
  governor's all-or-nothing admission over several pools stays local and exact.
* **Lease size.** A process asks for a block sized by the number of live
  processes (``limit / (4 n)``, at least what a waiting request needs) and
  asks for the next one before the current one runs out, so the hot path
  never waits on Redis except at the first request of a window.
* **Scopes.** IP pools are named by ``egress`` (every process leaving through
  the same IP must use the same label); account pools (UID weight) carry the
  account in their key and are shared by every process of that account.
* **Faults.** Unreachable at :meth:`RedisStorage.connect`: :class:`ConfigurationError`.
  Lost mid-run: the process admits only within the leases it holds (the
  current and the next window at most) until Redis answers again, and retries
  every tenth of a window. There is no local share: a process cannot tell
  Redis down from its own route to Redis down (a partition), and in a
  partition the others go on leasing everything Redis has left, so any share
  taken here would come on top of the limit (breaker3 R-1). A process
  SIGKILLed loses its leases with the windows they belong to (their keys
  expire). Redis restarted empty: the first process to reach it creates a
  new boot token, which stops all new leases up to the last window a request
  sent then may land in, and the next (every lease still held was taken
  before, so for no later window); every process re-registers what it holds,
  and counts are raised to what Binance's usage headers report. Every process
  that lost Redis (a failed call, or its pub/sub connection broken) probes it
  every tenth of a window, needed or not, so the token is created, and the
  stop set, as soon as Redis is back: a stop set by a first call a window
  later would cost a window more. A process that finds no boot token at all
  (a fresh Redis, or one restarted empty) cannot tell the two apart: it stops
  new leases the same way, which costs a fresh Redis its first window or two.
* **Freezes.** A 429 or 418 one process meets is published (a key per pool,
  one per egress for a ban, and a pub/sub message): every process stops its
  pools until the freeze's end, within a Redis round trip, and the lease
  script grants nothing in a frozen pool.

* **Rolling caps** (500 auto-collections an hour, per account) are one sorted
  set per cap, shared by every process of the account: each call holds a
  member scored by when it stops counting on Binance's clock (``+inf`` while
  held or in flight, ``answer + period`` once answered, as the in-process cap
  counts it). One Lua script drops what stopped counting and grants members
  while the count stays within the limit; a process leases as many as callers
  wait for and admits locally on them. A process that loses Redis admits
  nothing new on a cap (no local share); one silent for a liveness span
  (``max(period / 20, 3 socket timeouts)``) is dead: its held calls count
  until a period and two spans after its last contact (it may have sent them
  until half a span after it). A fresh Redis, or one restarted empty, grants
  nothing on a cap until it has been up for a period and a span: the calls of
  processes that exited before it started are not known (live processes
  re-register theirs within a span). ``connect(fresh=True)`` vouches for a
  Redis just started for the budget. See :class:`SharedCallCounter`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ._exceptions import ConfigurationError
from ._storage import CallCounter, StorageLink, WindowCounter

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ._limits import PoolSpec

__all__ = ["LeasedWindowCounter", "RedisStorage", "SharedCallCounter"]

log = logging.getLogger("binance_transfers.redis")

# KEYS: boot hash, live-process zset, restart marker, the IP's ban key, then one
#       hash per (pool, window).
# ARGV: id, known boot token, proposed token, horizon (the last window the caller
#       may hold leases in), span (ms), held (the last window the caller admitted
#       in without Redis, or -1: always -1, there are no local shares any more),
#       then per hash: window, want (< 0: give back),
#       limit, claim, floor, force, ttl (ms), the pool's freeze key.
# Returns: boot token, live processes, then per hash: granted (may be < 0), total,
#       the end (ms on Binance's clock, as published) of a freeze or ban, or 0.
_LEASE = """
local id, known, proposal = ARGV[1], ARGV[2], ARGV[3]
local horizon, span, held = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local created = redis.call('HSETNX', KEYS[1], 'token', proposal) == 1
local boot = redis.call('HGET', KEYS[1], 'token')
local since = tonumber(redis.call('GET', KEYS[3]) or '-1')
local stop = held
if created then
  -- No boot token: this Redis is new, or restarted empty. Nobody can tell
  -- which: processes may hold leases that it does not count. Every such lease
  -- was taken before now, so for no window beyond the caller's horizon (the
  -- last window a request sent now may land in, and the next): nobody gets
  -- new leases up to there. (Whoever sees the new token later needs no more:
  -- what it holds was leased before this.)
  stop = math.max(stop, horizon)
end
if stop > since then
  -- Nobody gets new leases up to `stop`: leases or local shares that Redis
  -- does not know of may be spent there. (Local shares: Redis was lost.)
  since = stop
  redis.call('SET', KEYS[3], since, 'PX', span)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now, id)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - span)
redis.call('PEXPIRE', KEYS[2], span)
local out = {boot, redis.call('ZCARD', KEYS[2])}
local ban = tonumber(redis.call('GET', KEYS[4]) or '0')
for i = 5, #KEYS do
  local b = 6 + (i - 5) * 8
  local key = KEYS[i]
  local window, want, limit = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local claim, floor, force = tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5]), tonumber(ARGV[b + 6])
  local total = tonumber(redis.call('HGET', key, 't') or '0')
  local mine = tonumber(redis.call('HGET', key, id) or '0')
  if claim > mine then  -- held here but not counted there: Redis lost it
    total = total + claim - mine
    mine = claim
  end
  if floor > total then total = floor end  -- Binance reports more used than leased
  local grant = 0
  -- A freeze or ban another process met: nothing new until it ends (its end
  -- is on Binance's clock and the keys expire with it: present means frozen).
  local frozen = math.max(ban, tonumber(redis.call('GET', ARGV[b + 8]) or '0'))
  if want < 0 then
    grant = -math.min(-want, mine)
  elseif window > since and frozen == 0 then
    grant = math.max(math.min(want, limit - total), 0)
  end
  if want >= 0 and force > grant then grant = force end  -- in flight: it may land there
  total = total + grant
  mine = mine + grant
  redis.call('HSET', key, 't', total, id, mine)
  redis.call('PEXPIRE', key, tonumber(ARGV[b + 7]))
  out[#out + 1] = grant
  out[#out + 1] = total
  out[#out + 1] = frozen
end
return out
"""


class LeasedWindowCounter:
    """A :class:`WindowCounter` that admits only within the leases this process holds.

    To the governor, capacity leased to other processes (or not leased yet)
    looks like weight spent by others: ``used = own + max(limit - leased,
    foreign)``, where ``foreign`` is what the usage headers show others spent.
    """

    __slots__ = (
        "_asked",
        "_cap",
        "_debt",
        "_floor",
        "_foreign",
        "_full",
        "_grant",
        "_link",
        "_low",
        "_own",
        "_short",
        "_storage",
        "_total",
        "key",
        "limit",
        "period",
        "redis_key",
    )

    def __init__(
        self, storage: RedisStorage, spec: PoolSpec, link: StorageLink, redis_key: str
    ) -> None:
        self._storage = storage
        self._link = link
        self.key = spec.key
        self.redis_key = redis_key
        self.limit = spec.limit
        self.period = spec.period
        self._own: dict[int, int] = {}
        self._grant: dict[int, int] = {}
        self._foreign: dict[int, int] = {}
        self._cap: dict[int, int] = {}  # own may reach this: min(leased, limit - foreign)
        self._floor: dict[int, int] = {}  # the most Binance reported used (sent on the next lease)
        self._total: dict[int, int] = {}  # leased by everybody, as of the last answer
        self._debt: dict[int, int] = {}  # counted here beyond the lease (in flight, late)
        self._asked: set[int] = set()  # windows with a lease request on its way
        self._full: set[int] = set()  # windows Redis had nothing left in
        self._low = 0  # ask for more when own passes this in the latest leased window
        # Lease more when less than this is left: the heaviest request seen, at
        # least a quarter of the limit (the heaviest Binance endpoint is 1/8).
        self._short = max(spec.limit >> 2, spec.weight)

    # -- the WindowCounter protocol -------------------------------------------

    def used(self, window: int) -> int:
        # Read when a request waits (ready_at), or for a snapshot: lease more
        # if what is left here may not fit the heaviest request.
        cap = self._cap.get(window, 0)
        own = self._own.get(window, 0)
        if cap - own < self._short:
            self._refill()
        return own + self.limit - min(cap, self.limit)

    def add(self, window: int, weight: int) -> int:
        total = self._own.get(window, 0) + weight
        self._own[window] = total
        over = total - self._cap.get(window, 0)
        if over > 0:  # the governor counts in-flight or late weight: claim it
            self._debt[window] = max(self._debt.get(window, 0), over)
            self._asked.add(window)  # even a full window: the debt must be counted
            self._storage._ask(self, window, 0)
        return total

    def try_add(self, window: int, weight: int, limit: int) -> int | None:
        own = self._own
        total = own.get(window, 0) + weight
        if total > self._cap.get(window, 0):
            if weight > self._short:
                self._short = weight
            self._refill()
            return None
        own[window] = total
        if total > self._low and window not in self._asked:
            self._ask(window, 0)  # running low: ask for the next block in advance
        return total

    def remove(self, window: int, weight: int) -> None:
        own = self._own
        if window in own:
            own[window] = max(own[window] - weight, 0)

    def report(self, window: int, reported: int, own_at_send: int) -> int:
        if window not in self._own:
            return 0  # forgotten: too old to matter
        # Sent with the next lease request: after a restart, Redis counts from it.
        self._floor[window] = max(self._floor.get(window, 0), reported)
        # Weight reported beyond everything leased (by anybody) was spent by
        # somebody outside Redis: it comes out of what we may still use. (Our
        # own requests overtaking each other explain nothing more than our
        # leases: ``own_at_send`` is not needed.)
        total = self._total.get(window)
        if total is None or reported <= total:
            return 0
        return self._raise_foreign(window, reported - self._grant.get(window, 0))

    def foreign(self, window: int) -> int:
        # Everything not ours: leased to others (or to nobody yet), or seen spent.
        return self.limit - min(self._cap.get(window, 0), self.limit)

    def reserve(self, window: int, weight: int) -> None:
        # The governor's expectation of others' spending, from past windows:
        # Redis knows what the others hold, so it is not needed here.
        pass

    def forget(self, before: int) -> None:
        tables = (self._own, self._grant, self._foreign, self._cap, self._floor, self._debt)
        for table in (*tables, self._total):
            if table and min(table) < before:
                for old in [w for w in table if w < before]:
                    del table[old]
        for marks in (self._asked, self._full):
            if marks and min(marks) < before:
                marks.difference_update([w for w in marks if w < before])

    def newest(self) -> int | None:
        windows = self._own.keys() | self._grant.keys()
        return max(windows) if windows else None

    # -- leases ----------------------------------------------------------------

    def _raise_foreign(self, window: int, seen: int) -> int:
        known = self._foreign.get(window, 0)
        if seen <= known:
            return 0
        before = self.used(window)
        self._foreign[window] = seen
        self._recap(window)
        return self.used(window) - before

    def _recap(self, window: int) -> None:
        self._cap[window] = min(
            self._grant.get(window, 0), self.limit - self._foreign.get(window, 0)
        )

    def _refill(self) -> None:
        """Lease more of every window a request sent now may land in, and of the
        next one (where requests go once these are full), where short."""
        lo, hi = self._link.landing(self.period)
        cap, own, short = self._cap, self._own, self._short
        for window in range(lo, hi + 2):
            if cap.get(window, 0) - own.get(window, 0) < short:
                self._ask(window, 0)

    def _ask(self, window: int, need: int) -> None:
        if window not in self._asked and window not in self._full:
            self._asked.add(window)
            self._storage._ask(self, window, need)

    def granted(self, window: int, amount: int, total: int | None = None) -> None:
        """A lease of ``amount`` more arrived (``total``: leased by everybody)."""
        self._asked.discard(window)
        if total is not None:
            self._total[window] = total
        if amount:
            self._grant[window] = self._grant.get(window, 0) + amount
            self._recap(window)
            if window >= max(self._grant):
                # Ask for the next block when a quarter of this one is left.
                self._low = self._cap[window] - max(amount // 4, 1)
            self._link.wake(self.key)

    def claim(self, window: int) -> int:
        return self._grant.get(window, 0)

    def __repr__(self) -> str:
        return f"<LeasedWindowCounter {self.key!r} own={self._own} leased={self._grant}>"


# Rolling caps. KEYS: the caps' boot token, the caps' boot marks (a hash: when
#       the token was created and when Redis started, Redis ms; absent: no
#       stop), the cap's live processes (a zset, score: the last contact, Redis
#       ms), the cap's zset (member "<process id>:<n>", score: the Binance
#       epoch ms it stops counting at, +inf while held or in flight).
# ARGV: id, known boot token, proposed token, now (Binance ms), span (ms),
#       period (ms), want, limit, first new member number, the number of
#       updates, then (member, score | "inf") per update, then members to release.
# Returns: boot token (the caller resyncs when it differs, nothing else is done),
#       granted, members counted, when the next one stops counting (ms, 0 if
#       unknown), 1 if the caller was not live before this call, live processes.
_CAP = """
local id, known, proposal = ARGV[1], ARGV[2], ARGV[3]
local now, span, period = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local want, limit = tonumber(ARGV[7]), tonumber(ARGV[8])
local first, n = tonumber(ARGV[9]), tonumber(ARGV[10])
local t = redis.call('TIME')
local clock = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('SET', KEYS[1], proposal, 'NX') then
  -- A fresh Redis, or one restarted empty (breaker4 B4-5): calls that still
  -- count may be missing here. Live processes re-register theirs within a
  -- span (they resync on the new token), but those of processes that are
  -- gone (exited, as a cron job does; killed) nobody knows. They were all
  -- sent before Redis started, so every cap grants nothing until a period
  -- (and a span: trips, silent owners) after that. A Redis that was up for a
  -- period already holds everything that still counts.
  local ok, info = pcall(redis.call, 'INFO', 'server')
  local up = ok and tonumber(string.match(info, 'uptime_in_seconds:(%d+)')) or 0
  redis.call('HSET', KEYS[2], 'created', clock, 'started', clock - up * 1000)
end
local boot = redis.call('GET', KEYS[1])
local marks = redis.call('HMGET', KEYS[2], 'created', 'started')
local stopped = 0  -- > 0: this cap grants nothing for that many ms more
if marks[1] then
  stopped = math.max(tonumber(marks[1]) + span, tonumber(marks[2]) + period + span) - clock
end
local was = redis.call('ZSCORE', KEYS[3], id)
local revived = (not was or tonumber(was) < clock - span) and 1 or 0
redis.call('ZADD', KEYS[3], clock, id)
-- Silent for a span is dead; its last contact is kept for as long as its
-- held calls may count (see the bound below).
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', clock - period - 2 * span)
redis.call('PEXPIRE', KEYS[3], period + 2 * span)
local live = redis.call('ZCOUNT', KEYS[3], clock - span, '+inf')
if known ~= boot or revived == 1 then
  -- Redis restarted empty, or the caller was silent for a span (its members
  -- may have been bounded): it re-registers what it holds first.
  return {boot, 0, 0, 0, revived, live}
end
local zset = KEYS[4]
for i = 0, n - 1 do
  local member, score = ARGV[11 + 2 * i], ARGV[12 + 2 * i]
  local value = score == 'inf' and math.huge or tonumber(score)
  local current = redis.call('ZSCORE', zset, member)
  -- Held (+inf) or unknown here (a restart): as the owner says. Otherwise a
  -- count only rises (another process may have bounded a dead owner's call).
  if value > now and (not current or current == 'inf' or value > tonumber(current)) then
    redis.call('ZADD', zset, score == 'inf' and '+inf' or score, member)
  end
end
for i = 11 + 2 * n, #ARGV do
  redis.call('ZREM', zset, ARGV[i])
end
redis.call('ZREMRANGEBYSCORE', zset, '-inf', now)
local count = redis.call('ZCARD', zset)
local grant = 0
-- When the caller may retry: the soonest call to stop counting, or (short)
-- when a silent owner of held calls turns dead and they can be bounded.
local soonest = math.huge
if want > 0 and stopped <= 0 then
  if count + want > limit then
    -- Short: a call held (+inf) by a process that is no longer live (killed,
    -- cut off) counts until a period after it could last have been sent, not
    -- forever (breaker4 B4-6). A process admits on what it holds only while it
    -- reached Redis within half a span: its calls were sent by then, and land
    -- within a span of that. Leased and never sent looks the same from here.
    for _, member in ipairs(redis.call('ZRANGEBYSCORE', zset, '+inf', '+inf')) do
      local owner = string.match(member, '^(.-):')
      local last = tonumber(redis.call('ZSCORE', KEYS[3], owner))
      if not last then  -- silent for longer than we remember
        redis.call('ZADD', zset, now + period + span, member)
      elseif last < clock - span then
        redis.call('ZADD', zset, now - (clock - last) + period + 2 * span, member)
      elseif owner ~= id then
        soonest = math.min(soonest, now + last + span - clock + 1)
      end
    end
  end
  grant = math.max(math.min(want, limit - count), 0)
  for i = 0, grant - 1 do
    redis.call('ZADD', zset, '+inf', id .. ':' .. (first + i))
  end
  count = count + grant
end
local head = redis.call('ZRANGEBYSCORE', zset, '-inf', '(+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if head[2] then soonest = math.min(soonest, tonumber(head[2])) end
if stopped > 0 then soonest = now + stopped + 1 end  -- nothing is granted before
if soonest == math.huge then soonest = 0 end
redis.call('PEXPIRE', zset, 2 * (period + span))
return {boot, grant, count, soonest, revived, live}
"""


class SharedCallCounter:
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
        "_link",
        "_members",
        "_now",
        "_ok",
        "_release",
        "_resync",
        "_retry",
        "_seq",
        "_settling",
        "_shift",
        "_storage",
        "_task",
        "_updates",
        "key",
        "limit",
        "period",
        "redis_key",
        "span",
    )

    def __init__(
        self, storage: RedisStorage, spec: PoolSpec, link: StorageLink, redis_key: str
    ) -> None:
        self._storage = storage
        self._link = link
        self.key = spec.key
        self.redis_key = redis_key
        self.limit = spec.limit
        self.period = spec.period
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
        # a span, the others may bound them (see _CAP).
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
                    # Redis restarted empty, or we were silent for a span (our
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


_Batch = dict[tuple[LeasedWindowCounter, int], int]
"""Lease requests: (counter, window) -> the weight a waiting request needs at least."""


class RedisStorage:
    """Counts shared by every process through one Redis: see the module's docs.

    Create it with :meth:`connect` inside the event loop, pass it to every
    governor of the process, and close it at the end (it gives back what it
    leased and did not use)::

        async with await RedisStorage.connect("redis://10.0.0.5:6379/0", egress="nat-a") as s:
            governor = Governor(storage=s)
            ...

    ``egress`` names the IP the process leaves through: processes with the
    same label share the IP pools. ``processes`` is how many processes are
    expected: leases are sized ``limit / (4 max(processes, live processes))``
    from the first one. With Redis lost, a process admits only within the
    leases it holds until Redis answers. asyncio only.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        egress: str = "default",
        prefix: str = "binance_transfers",
        processes: int = 1,
        where: str = "redis",
        socket_timeout: float = 0.5,
    ) -> None:
        if processes < 1:
            raise ValueError("processes must be >= 1")
        self._client = client
        self.socket_timeout = socket_timeout
        self.egress = egress
        self.prefix = prefix
        self.processes = processes
        self._where = where  # host:port only: a URL may carry a password
        self.id = secrets.token_hex(6)
        self._boot = ""
        self._tag = "{" + prefix + "}"  # one hash slot: a Lua script may touch every key
        self._script = client.register_script(_LEASE)
        self._cap_script = client.register_script(_CAP)
        self._caps: dict[str, list[SharedCallCounter]] = {}
        self._cap_down = False  # a cap's last call to Redis failed (logged once)
        self._pending: dict[tuple[LeasedWindowCounter, int], int] = {}
        self._counters: dict[str, list[LeasedWindowCounter]] = {}
        self._task: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self.seen = 1  # the most live processes Redis reported
        self.lost: int | None = None  # the window Redis was lost in, while it is
        self.round_trips = 0
        # Freezes (429) and bans (418) shared with the other processes: the
        # latest end known per Redis key (published by us or by others).
        self._ban_key = self._key(f"ip:{egress}:ban")
        self._channel = self._key("freeze")
        self._freezes: dict[str, float] = {}
        self._listener: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._probe: asyncio.TimerHandle | None = None  # Redis lost: the next try
        self._suspect = False  # Redis failed us (a call, or the listener): probe it
        self._closed = False

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        egress: str = "default",
        prefix: str = "binance_transfers",
        processes: int = 1,
        socket_timeout: float = 0.5,
        fresh: bool = False,
    ) -> RedisStorage:
        """Connect to Redis at ``url``; :class:`ConfigurationError` if it does not answer.

        ``socket_timeout`` bounds each round trip: a slower answer counts as Redis lost.

        ``fresh=True`` vouches that this Redis knows of everything spent of the
        budget (``prefix``) that still counts: say it only for a Redis you have
        just started for the processes about to use it. Otherwise, a Redis met
        with no counts at all may be one restarted empty: new leases stop for a
        window or two, and rolling caps grant nothing until Redis has been up
        for a whole period (an hour for the auto-collections' cap), since the
        calls of processes that exited before the restart are not known. With
        ``fresh=True`` on a Redis restarted empty under a budget in use, a
        limit may be exceeded. It changes nothing on a Redis already in use.
        """
        from redis.exceptions import RedisError

        client, where = _client(url, socket_timeout)
        storage = cls(
            client,
            egress=egress,
            prefix=prefix,
            processes=processes,
            where=where,
            socket_timeout=socket_timeout,
        )
        try:
            if fresh:  # boot tokens without the stops of a restart (see _LEASE, _CAP)
                token = secrets.token_hex(8)
                await client.hsetnx(storage._key("boot"), "token", token)
                await client.set(storage._key("capboot"), token, nx=True)
            # Read, never create: only the lease script may create the boot token,
            # because creating it means the stop of a restart (see _LEASE).
            storage._boot = str(await client.hget(storage._key("boot"), "token") or "")
        except RedisError as error:
            await client.aclose()
            raise ConfigurationError(f"{where} is unreachable: {type(error).__name__}") from None
        with contextlib.suppress(RedisError):  # a managed Redis may refuse CONFIG: no warning
            aof = (await client.config_get("appendonly")).get("appendonly")
            save = (await client.config_get("save")).get("save")
            if aof == "no" and not save:
                # breaker4 B-4-5: restarted empty, Redis forgets the rolling caps'
                # calls of processes that are gone (exited or killed): the next
                # process may be granted a cap already used in its period.
                log.warning(
                    "%s keeps nothing on disk (appendonly no, no save): if it restarts, "
                    "rolling caps forget the calls of processes that are gone; "
                    "enable appendonly for shared caps",
                    where,
                )
        storage._listen()
        return storage

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        egress: str = "default",
        prefix: str = "binance_transfers",
        processes: int = 1,
        socket_timeout: float = 0.5,
    ) -> RedisStorage:
        """A storage that connects on first use, for callers without an event loop
        yet (a command line): Redis unreachable then counts as Redis lost, not as
        a :class:`ConfigurationError`. Prefer :meth:`connect`."""
        client, where = _client(url, socket_timeout)
        return cls(
            client,
            egress=egress,
            prefix=prefix,
            processes=processes,
            where=where,
            socket_timeout=socket_timeout,
        )

    # -- the Storage protocol --------------------------------------------------

    def window_counter(self, spec: PoolSpec, link: StorageLink) -> WindowCounter:
        scope = f"ip:{self.egress}" if spec.per_ip else "account"
        counter = LeasedWindowCounter(self, spec, link, self._key(f"{scope}:{spec.key}"))
        self._counters.setdefault(spec.key, []).append(counter)
        return counter

    def call_counter(self, spec: PoolSpec, link: StorageLink) -> CallCounter:
        """A rolling cap shared by every process of the account: see :class:`SharedCallCounter`."""
        counter = SharedCallCounter(self, spec, link, self._key(f"cap:{spec.key}"))
        self._caps.setdefault(spec.key, []).append(counter)
        return counter

    def discard(self, key: str) -> None:
        self._counters.pop(key, None)
        for counter in self._caps.pop(key, []):
            free = counter.close()
            if free and self._listener is not None:  # give back what it held
                task = asyncio.get_running_loop().create_task(self._cap_release(counter, free))
                self._sends.add(task)
                task.add_done_callback(self._sends.discard)

    async def _cap_call(
        self,
        counter: SharedCallCounter,
        want: int,
        first: int,
        updates: dict[str, float],
        release: set[str] | dict[str, float],
    ) -> list[Any]:
        """One run of the cap script for ``counter`` (see _CAP)."""
        now = counter._link.server_now()
        keys = [
            self._key("capboot"),
            self._key("capstop"),
            f"{counter.redis_key}:live",
            counter.redis_key,
        ]
        args: list[Any] = [
            self.id,
            counter._boot,
            secrets.token_hex(8),
            int(now * 1000),
            max(int(counter.span * 1000), 1),
            max(int(counter.period * 1000), 1),
            want,
            counter.limit,
            first,
            len(updates),
        ]
        for member, until in updates.items():
            args += [member, "inf" if until == math.inf else math.ceil(until * 1000)]
        args += list(release)
        self.round_trips += 1
        return list(await self._cap_script(keys=keys, args=args))

    async def _cap_release(self, counter: SharedCallCounter, free: dict[str, float]) -> None:
        from redis.exceptions import RedisError

        with contextlib.suppress(RedisError):  # else they are bounded as a dead process's
            await self._cap_call(counter, 0, 0, {}, free)

    def _cap_lost(self, counter: SharedCallCounter, error: Exception) -> None:
        if not self._cap_down:
            self._cap_down = True
            log.warning(
                "%s lost (%s): rolling cap %r admits nothing new until it answers",
                self._where,
                type(error).__name__,
                counter.key,
            )

    def _cap_back(self) -> None:
        if self._cap_down:
            self._cap_down = False
            log.warning("%s is back: rolling caps lease from it again", self._where)

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
        if until <= self._freezes.get(where, 0.0):
            return  # known: ours already, or published by another process
        self._freezes[where] = until
        if self._listener is None:
            return  # never connected (from_url, not used in a loop yet)
        ttl = until - counters[0]._link.server_now()
        task = asyncio.get_running_loop().create_task(self._publish(where, until, ttl))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _publish(self, where: str, until: float, ttl: float) -> None:
        from redis.exceptions import RedisError

        ms = int(until * 1000)
        # The key stops new leases (see _LEASE); the message stops the leases held.
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
                            where, ms = str(message["data"]).rsplit(" ", 1)
                            self._froze(where, int(ms) / 1000, ban=where == self._ban_key)
            except RedisError:
                # The connection broke (Redis killed, restarted?): probe it
                # until it answers, whether or not leases are needed.
                counter = next((c for cs in self._counters.values() for c in cs), None)
                if counter is not None:
                    self._suspect = True
                    self._probe_later(counter)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(retry.wait(), 0.5)

    def _froze(self, where: str, until: float, *, ban: bool) -> None:
        """Another process met a 429 (``where``: a pool's Redis key) or a 418
        (the IP's ban key) until Binance epoch ``until``: stop our pools too."""
        if until <= self._freezes.get(where, 0.0):
            return
        self._freezes[where] = until
        counters = [c for cs in self._counters.values() for c in cs]
        if ban:
            for link in {c._link for c in counters}:  # each governor on this storage
                link.freeze("*", until)
        else:
            for counter in counters:
                if counter.redis_key == where:
                    counter._link.freeze(counter.key, until)

    # -- read API (for the `limits` command) -------------------------------------

    async def usage(self, spec: PoolSpec, window: int) -> dict[str, int]:
        """What Redis holds for ``spec``'s pool in ``window``: ``{"total": n, id: lease}``."""
        scope = f"ip:{self.egress}" if spec.per_ip else "account"
        raw = await self._client.hgetall(self._key(f"{scope}:{spec.key}:{window}"))
        return {("total" if k == "t" else str(k)): int(v) for k, v in raw.items()}

    # -- leasing -------------------------------------------------------------------

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
        # The furthest window anybody may have leased before now (see _LEASE):
        # where a request sent now may land, and the next one.
        horizon = max([first._link.landing(period)[1] + 1, *(window for _, window in batch)])
        held = -1  # no local shares any more (see _on_lost): nothing to stop
        args: list[Any] = [self.id, self._boot, secrets.token_hex(8), horizon, span, held]
        for (counter, window), need in batch.items():
            keys.append(f"{counter.redis_key}:{window}")
            chunk = max(1, counter.limit // (4 * max(self.seen, self.processes)))
            want = max(need, chunk)
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
            counter.granted(window, granted, int(reply[3 + 3 * i]))
            frozen = int(reply[4 + 3 * i])
            if frozen:  # another process met a 429 or a ban: stop here too
                self._froze(counter.redis_key, frozen / 1000, ban=False)
            if granted <= 0:
                # Nothing left in this window: look again when the next one opens.
                counter._full.add(window)
                self._later(counter, window, retry=False)

    def _on_lost(self, batch: _Batch, error: Exception) -> None:
        counter = next(iter(batch))[0]
        current = int(counter._link.server_now() // counter.period)
        if self.lost is None:
            self.lost = current
            # No local share (breaker3 R-1): when only this process lost its
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
        then ends as early as it safely can (see _LEASE)."""
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
        task = asyncio.get_running_loop().create_task(self._probing(counter))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

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

    # -- lifetime --------------------------------------------------------------

    async def aclose(self) -> None:
        """Give back what was leased and not used, and close the connection."""
        self._closed = True  # no more probes (one on its way would schedule the next)
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        if self._task is not None:
            self._task.cancel()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        from redis.exceptions import RedisError

        for caps in self._caps.values():
            for cap in caps:
                free = cap.close()
                if free and cap._boot:
                    await self._cap_release(cap, free)

        back: dict[tuple[LeasedWindowCounter, int], int] = {}
        for counters in self._counters.values():
            for counter in counters:
                for window, grant in counter._grant.items():
                    unused = grant - max(counter._own.get(window, 0), counter._debt.get(window, 0))
                    if unused > 0:
                        back[(counter, window)] = unused
        if back and self.lost is None:
            with contextlib.suppress(RedisError):  # else they expire with their windows
                await self._give_back(back)
        await self._client.aclose()

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
            args += [window, -unused, counter.limit, 0, 0, 0, ttl, f"{counter.redis_key}:freeze"]
        await self._script(keys=keys, args=args)

    async def __aenter__(self) -> RedisStorage:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"RedisStorage({self._where}, egress={self.egress!r}, id={self.id})"


def _client(url: str, socket_timeout: float) -> tuple[aioredis.Redis, str]:
    """redis-py's asyncio client for ``url`` (no I/O yet), and where it points
    without the password a URL may carry."""
    try:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
    except ImportError:  # pragma: no cover - the extra is not installed
        raise ConfigurationError(
            "RedisStorage needs redis-py: pip install 'binance-transfers[redis]'"
        ) from None
    client = aioredis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        # One retry at once: a connection broken by a restart of Redis fails
        # once and reconnects. Beyond that, Redis is lost (see _on_lost).
        retry=Retry(NoBackoff(), 1),
        decode_responses=True,
    )
    kwargs = client.connection_pool.connection_kwargs
    where = f"redis at {kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', '')}"
    return client, where


def storage_from_url(url: str) -> RedisStorage:
    """The command line's hook (``binance-transfers limits --redis URL``): checked
    at once (a blocking PING, no event loop yet), :class:`ConfigurationError`
    if Redis does not answer."""
    import redis
    from redis.exceptions import RedisError

    storage = RedisStorage.from_url(url)
    with redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5) as probe:
        try:
            probe.ping()
        except RedisError as error:
            raise ConfigurationError(
                f"{storage._where} is unreachable: {type(error).__name__}"
            ) from None
    return storage
