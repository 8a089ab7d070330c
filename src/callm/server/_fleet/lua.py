"""The Redis scripts that make each admission decision one atomic round trip.

Every script works on one virtual key's four Redis keys, which share a hash tag so that a
Redis Cluster keeps them in one slot::

    KEYS[1] s  HASH  ps (budget period start, ms; -1: no period), spent, reserved (nano-USD),
                     calls, itok, otok, tsum (tokens in the window), revoked
    KEYS[2] w  ZSET  reservation id -> start (ms): the last minute's requests (rpm, tpm)
    KEYS[3] l  ZSET  reservation id -> lease expiry (ms): the requests in flight
    KEYS[4] r  HASH  "t:<id>" -> tokens counted in the window, "c:<id>" -> cost held

Time is the Redis server's (``TIME``), so instances with different clocks agree. A lease
that is not renewed before it expires (its gateway died) is reaped by the next script that
looks at the key: its slot and held cost come back. Integers leave Lua through
``string.format('%d')``: Lua's own number-to-string conversion would round them.
"""

from __future__ import annotations

_PRELUDE = """
if redis.replicate_commands then redis.replicate_commands() end
local s, w, l, r = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local WINDOW = 60000

local function int(x) return string.format('%d', x) end
local function num(x) return tonumber(x or '0') or 0 end

-- Leases their gateway stopped renewing: give back the slot and the cost they held.
local function reap()
  local dead = redis.call('ZRANGEBYSCORE', l, '-inf', now)
  if #dead == 0 then return end
  local held = 0
  for _, id in ipairs(dead) do
    held = held + num(redis.call('HGET', r, 'c:' .. id))
    redis.call('HDEL', r, 'c:' .. id)
  end
  redis.call('ZREMRANGEBYSCORE', l, '-inf', now)
  redis.call('HINCRBY', s, 'reserved', int(-held))
end

-- The rpm/tpm window keeps the requests of the last minute.
local function trim()
  local old = redis.call('ZRANGEBYSCORE', w, '-inf', now - WINDOW)
  if #old == 0 then return end
  local freed = 0
  for _, id in ipairs(old) do
    freed = freed + num(redis.call('HGET', r, 't:' .. id))
    redis.call('HDEL', r, 't:' .. id)
  end
  redis.call('ZREMRANGEBYSCORE', w, '-inf', now - WINDOW)
  redis.call('HINCRBY', s, 'tsum', int(-freed))
end

-- A new budget period once the current one has run out (period in ms; <= 0: none).
local function roll(period)
  if period <= 0 then return end
  local ps = num(redis.call('HGET', s, 'ps'))
  if ps < 0 then
    redis.call('HSET', s, 'ps', int(now))
  elseif now >= ps + period then
    ps = ps + math.floor((now - ps) / period) * period
    redis.call('HSET', s, 'ps', int(ps), 'spent', '0', 'calls', '0', 'itok', '0', 'otok', '0')
  end
end

-- Stop holding a reservation's slot and cost (0 when a reaper already did).
local function unlease(id)
  if redis.call('ZREM', l, id) == 0 then return end
  local held = num(redis.call('HGET', r, 'c:' .. id))
  redis.call('HDEL', r, 'c:' .. id)
  redis.call('HINCRBY', s, 'reserved', int(-held))
end

-- A reservation's tokens, while it is in the window, become what it really used.
local function recount(id, used)
  local before = redis.call('HGET', r, 't:' .. id)
  if not before then return end
  redis.call('HSET', r, 't:' .. id, int(used))
  redis.call('HINCRBY', s, 'tsum', int(used - num(before)))
end
"""

RESERVE = (
    _PRELUDE
    + """
-- ARGV: id, tokens, cost, rpm, tpm, max_parallel, budget, period, lease (ms); -1: no limit
-- -> {'ok', now} | {'revoked'} | {'unloaded'} | {'parallel'} | {'rpm', wait} | {'tpm', wait}
--    | {'tpm_never'} | {'budget', wait (-1: none), spent, reserved}
if redis.call('HEXISTS', s, 'revoked') == 1 then return {'revoked'} end
if redis.call('HEXISTS', s, 'ps') == 0 then return {'unloaded'} end
local id, tokens, cost = ARGV[1], num(ARGV[2]), num(ARGV[3])
-- A retry of a reservation already made (its reply was lost): admitted once, not twice.
if redis.call('ZSCORE', l, id) then return {'ok', int(now)} end
local rpm, tpm, parallel = num(ARGV[4]), num(ARGV[5]), num(ARGV[6])
local budget, period, lease = num(ARGV[7]), num(ARGV[8]), num(ARGV[9])
reap()
trim()
roll(period)
if parallel >= 0 and redis.call('ZCARD', l) >= parallel then return {'parallel'} end
if rpm >= 0 and redis.call('ZCARD', w) >= rpm then
  local first = redis.call('ZRANGE', w, 0, 0, 'WITHSCORES')
  local wait = WINDOW
  if first[2] then wait = num(first[2]) + WINDOW - now end
  return {'rpm', int(wait)}
end
if tpm >= 0 then
  local sum = num(redis.call('HGET', s, 'tsum'))
  if sum + tokens > tpm then
    if tokens > tpm then return {'tpm_never'} end
    -- How long until enough of the window's tokens have aged out.
    local need, wait = sum + tokens - tpm, WINDOW
    local entries = redis.call('ZRANGE', w, 0, -1, 'WITHSCORES')
    for i = 1, #entries, 2 do
      need = need - num(redis.call('HGET', r, 't:' .. entries[i]))
      if need <= 0 then
        wait = num(entries[i + 1]) + WINDOW - now
        break
      end
    end
    return {'tpm', int(wait)}
  end
end
if budget >= 0 then
  local spent = num(redis.call('HGET', s, 'spent'))
  local reserved = num(redis.call('HGET', s, 'reserved'))
  if spent + reserved + cost > budget then
    local wait = -1
    if period > 0 then wait = num(redis.call('HGET', s, 'ps')) + period - now end
    return {'budget', int(wait), int(spent), int(reserved)}
  end
end
-- Every check passed: hold the slot, the tokens and the cost, all at once.
redis.call('ZADD', l, int(now + lease), id)
redis.call('ZADD', w, int(now), id)
redis.call('HSET', r, 'c:' .. id, int(cost), 't:' .. id, int(tokens))
redis.call('HINCRBY', s, 'reserved', int(cost))
redis.call('HINCRBY', s, 'tsum', int(tokens))
return {'ok', int(now)}
"""
)

SETTLE = (
    _PRELUDE
    + """
-- ARGV: id, used tokens, cost, input tokens, output tokens, period (ms)
-- -> the start of the budget period the cost was counted in (-1: none; -2: state not loaded)
local id, used, period = ARGV[1], num(ARGV[2]), num(ARGV[6])
unlease(id)
recount(id, used)
if redis.call('HEXISTS', s, 'ps') == 0 then return -2 end
roll(period)
redis.call('HINCRBY', s, 'spent', ARGV[3])
redis.call('HINCRBY', s, 'calls', 1)
redis.call('HINCRBY', s, 'itok', ARGV[4])
redis.call('HINCRBY', s, 'otok', ARGV[5])
return num(redis.call('HGET', s, 'ps'))
"""
)

RELEASE = (
    _PRELUDE
    + """
-- ARGV: id. A call that used nothing: its slot, cost and tokens come back at once.
unlease(ARGV[1])
recount(ARGV[1], 0)
return 1
"""
)

RENEW = (
    _PRELUDE
    + """
-- ARGV: lease (ms), ids... Extend the leases still held (a reaped one stays gone).
local args = {'ZADD', l, 'XX', 'CH'}
local expiry = int(now + num(ARGV[1]))
for i = 2, #ARGV do
  args[#args + 1] = expiry
  args[#args + 1] = ARGV[i]
end
if #args == 4 then return 0 end
return redis.call(unpack(args))
"""
)

LOAD = (
    _PRELUDE
    + """
-- ARGV: period start (ms, -1: none), spent, calls, itok, otok: the key's state as stored,
-- set only when Redis has none (a fresh or emptied Redis). -> 1 set, 0 already there
if redis.call('HEXISTS', s, 'ps') == 1 then return 0 end
redis.call('HSET', s, 'ps', ARGV[1], 'spent', ARGV[2], 'calls', ARGV[3], 'itok', ARGV[4],
           'otok', ARGV[5])
redis.call('HSETNX', s, 'reserved', '0')
redis.call('HSETNX', s, 'tsum', '0')
return 1
"""
)

TOTALS = (
    _PRELUDE
    + """
-- ARGV: period (ms). -> {ps, spent, reserved, calls, itok, otok, in flight} | {'unloaded'}
if redis.call('HEXISTS', s, 'ps') == 0 then return {'unloaded'} end
reap()
trim()
roll(num(ARGV[1]))
local v = redis.call('HMGET', s, 'ps', 'spent', 'reserved', 'calls', 'itok', 'otok')
return {v[1], v[2], v[3], v[4], v[5], v[6], redis.call('ZCARD', l)}
"""
)

SET_PERIOD = (
    _PRELUDE
    + """
-- ARGV: period (ms; <= 0: none). A key's limits gained or lost a budget period.
if redis.call('HEXISTS', s, 'ps') == 0 then return 0 end
if num(ARGV[1]) <= 0 then
  redis.call('HSET', s, 'ps', '-1')
elseif num(redis.call('HGET', s, 'ps')) < 0 then
  redis.call('HSET', s, 'ps', int(now))
end
return 1
"""
)

ADD_SPEND = (
    _PRELUDE
    + """
-- ARGV: cost, calls, itok, otok, period (ms): spend settled while Redis was unreachable.
if redis.call('HEXISTS', s, 'ps') == 0 then return 0 end
roll(num(ARGV[5]))
redis.call('HINCRBY', s, 'spent', ARGV[1])
redis.call('HINCRBY', s, 'calls', ARGV[2])
redis.call('HINCRBY', s, 'itok', ARGV[3])
redis.call('HINCRBY', s, 'otok', ARGV[4])
return 1
"""
)
