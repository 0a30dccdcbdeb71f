"""The Lua scripts RedisStorage runs: one round trip each, atomic in Redis.

``LEASE`` grants a process leases of pools' windows (any number at once);
``CAP`` drops a rolling cap's calls that stopped counting and grants members.
Both run on keys of one hash slot (the prefix is a hash tag).
"""

__all__ = ["CAP", "LEASE"]

# KEYS: boot hash, live-process zset, restart marker, the IP's ban key, then one
#       hash per (pool, window).
# ARGV: id, known boot token, proposed token, horizon (the last window the caller
#       may hold leases in), span (ms), held (the last window the caller admitted
#       in without Redis, or -1: always -1, there are no local shares any more),
#       then per hash: window, want (< 0: give back),
#       limit, claim, floor, force, ttl (ms), the pool's freeze key, unit (a
#       grant short of ``want`` is a multiple of it: the heaviest request).
# Returns: boot token, live processes, then per hash: granted (may be < 0), total,
#       the end (ms on Binance's clock, as published) of a freeze or ban, or 0.
LEASE = """
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
  local b = 6 + (i - 5) * 9
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
    -- Short of what was asked: whole requests only (a remainder smaller than
    -- the heaviest one stays here, for a process with lighter requests).
    if grant < want then grant = grant - grant % tonumber(ARGV[b + 9]) end
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

# Rolling caps. KEYS: the caps' fresh marks (a hash: field "*" once
#       connect(fresh=True) vouched for a Redis it found unused, then one field
#       per cap first met since), the cap's live processes (a zset, score: the
#       last contact, Redis ms), the cap's zset (member "<process id>:<n>",
#       score: the Binance epoch ms it stops counting at, +inf while held or in
#       flight; and the cap's token, "~<token>:<stop end, Redis ms>", at -inf).
# ARGV: id, known token, proposed token, now (Binance ms), span (ms),
#       period (ms), want, limit, first new member number, the number of
#       updates, then (member, score | "inf") per update, then members to release.
# Returns: the cap's token (the caller resyncs when it differs, nothing else is
#       done), granted, members counted, when the next one stops counting (ms,
#       0 if unknown), 1 if the caller was not live before this call, live processes.
CAP = """
local id, known, proposal = ARGV[1], ARGV[2], ARGV[3]
local now, span, period = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local want, limit = tonumber(ARGV[7]), tonumber(ARGV[8])
local first, n = tonumber(ARGV[9]), tonumber(ARGV[10])
local t = redis.call('TIME')
local clock = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local zset = KEYS[3]
local boot, ends
local mark = redis.call('ZRANGEBYSCORE', zset, '-inf', '-inf', 'LIMIT', 0, 1)[1]
if mark then
  boot, ends = string.match(mark, '^~(%w+):(%d+)$')
  ends = tonumber(ends)
else
  -- No token in the cap's set: the cap is new here, or its calls were lost
  -- (Redis restarted empty, B4-5; flushed, or the set alone
  -- evicted, B5-2). The token lives inside the set: whatever loses
  -- the calls loses it too. Live processes re-register their calls within a
  -- span (they resync on the new token), but those of processes that are
  -- gone (exited, as a cron job does; killed) nobody knows, and nothing here
  -- tells a new cap from a lost one (not Redis's uptime: FLUSHALL keeps it).
  -- They were all sent before now: the cap grants nothing for a period (and a
  -- span: trips, silent owners). Unless connect(fresh=True) vouched for this
  -- Redis and the cap was never met since (its mark is in the same hash).
  boot, ends = proposal, clock + period + span
  if redis.call('HEXISTS', KEYS[1], '*') == 1 and redis.call('HSETNX', KEYS[1], zset, 1) == 1 then
    ends = 0
  end
  redis.call('ZADD', zset, '-inf', '~' .. boot .. ':' .. ends)
end
local stopped = ends - clock  -- > 0: this cap grants nothing for that many ms more
local live_key = KEYS[2]
local was = redis.call('ZSCORE', live_key, id)
local revived = (not was or tonumber(was) < clock - span) and 1 or 0
redis.call('ZADD', live_key, clock, id)
-- Silent for a span is dead; its last contact is kept for as long as its
-- held calls may count (see the bound below).
redis.call('ZREMRANGEBYSCORE', live_key, '-inf', clock - period - 2 * span)
redis.call('PEXPIRE', live_key, period + 2 * span)
local live = redis.call('ZCOUNT', live_key, clock - span, '+inf')
if known ~= boot or revived == 1 then
  -- Redis restarted empty, or the caller was silent for a span (its members
  -- may have been bounded): it re-registers what it holds first.
  return {boot, 0, 0, 0, revived, live}
end
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
redis.call('ZREMRANGEBYSCORE', zset, '(-inf', now)  -- not the token
local count = redis.call('ZCARD', zset) - 1
local grant = 0
-- When the caller may retry: the soonest call to stop counting, or (short)
-- when a silent owner of held calls turns dead and they can be bounded.
local soonest = math.huge
if want > 0 and stopped <= 0 then
  if count + want > limit then
    -- Short: a call held (+inf) by a process that is no longer live (killed,
    -- cut off) counts until a period after it could last have been sent, not
    -- forever (B4-6). A process admits on what it holds only while it
    -- reached Redis within half a span: its calls were sent by then, and land
    -- within a span of that. Leased and never sent looks the same from here.
    for _, member in ipairs(redis.call('ZRANGEBYSCORE', zset, '+inf', '+inf')) do
      local owner = string.match(member, '^(.-):')
      local last = tonumber(redis.call('ZSCORE', live_key, owner))
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
local head = redis.call('ZRANGEBYSCORE', zset, '(-inf', '(+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if head[2] then soonest = math.min(soonest, tonumber(head[2])) end
if stopped > 0 then soonest = now + stopped + 1 end  -- nothing is granted before
if soonest == math.huge then soonest = 0 end
-- No TTL (B5-2): a volatile-* maxmemory policy would evict the set
-- (and its token: the cap would stop for a period). What stopped counting is
-- dropped above; the token stays for good (one small key per cap).
redis.call('PERSIST', zset)
return {boot, grant, count, soonest, revived, live}
"""
