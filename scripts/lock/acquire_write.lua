-- lock/acquire_write.lua: take the exclusive (writer / mutex) lease.
--
-- KEYS[1] owner    string: the writer's owner token, expires with PX = ttl
-- KEYS[2] readers  zset: reader owner token -> lease expiry (server ms)
-- KEYS[3] pending  zset: waiting writer token -> mark expiry (server ms)
-- KEYS[4] fence    string: the last fencing token handed out (decimal)
-- KEYS[5] waiters  zset: waiting caller token -> mark expiry (server ms)
-- ARGV[1] owner token of this acquisition (unique per acquisition)
-- ARGV[2] lease ttl in ms (positive integer)
-- ARGV[3] pending-writer mark ttl in ms; "0" leaves no mark when busy
-- ARGV[4] fence key ttl in ms
-- ARGV[5] waiter-mark ttl in ms; "0" leaves no mark when busy
-- ARGV[6] "1" when an earlier attempt of this acquisition left a waiter
--         mark (it is removed on success), "0" otherwise
--
-- Returns {1, fencing_token} when acquired (fencing_token a decimal string),
-- {0, "writer"} when another writer holds the lease, {0, "readers"} when live
-- readers hold it, {0, "waiters"} when the lease is free but the caller's
-- first attempt finds other callers waiting (see below). When busy and
-- ARGV[3] > 0 the caller is (re)marked as a pending writer, which makes new
-- readers wait (writer preference). When busy and ARGV[5] > 0 the caller is
-- (re)marked as a waiter, which makes write releases publish.
--
-- No barging: the first attempt of a caller that will wait (ARGV[5] > 0,
-- ARGV[6] = "0") does not take a free lease while live waiter marks of
-- other callers exist; it is marked as a waiter (not as a pending writer)
-- and retries at once (its next attempt, marked, may take it). So a holder
-- that releases and locks again does not overtake the waiters its release
-- just woke. A single try (ARGV[5] = "0") takes a free lease as before.
--
-- Complexity: O(log n + e) with n readers/pending writers/waiters and e
-- expired entries pruned.
-- Invariants: at most one live owner token; no owner while a live reader
-- exists; every fencing token is greater than every token handed out before
-- for this lock (see acquire_fence below).

local t = redis.call('TIME')
local now_us = t[1] .. string.format('%06d', tonumber(t[2]))
local token = ARGV[1]
local pending_ttl_ms = tonumber(ARGV[3])

local function now_ms()
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- (Re)marks the caller in the zset `key` until now + ttl_ms: expired marks
-- are pruned, and the key lives as long as its longest mark.
local function mark(key, ttl_ms)
  if ttl_ms > 0 then
    local now = now_ms()
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    redis.call('ZADD', key, now + ttl_ms, token)
    if redis.call('PTTL', key) < ttl_ms then
      redis.call('PEXPIRE', key, ttl_ms)
    end
  end
end

-- Busy: the caller waits as a waiter (release_write publishes while any
-- waiter mark exists) and, for an RwLock writer, as a pending writer.
local function mark_pending()
  mark(KEYS[5], tonumber(ARGV[5]))
  mark(KEYS[3], pending_ttl_ms)
end

if redis.call('EXISTS', KEYS[2], KEYS[3], KEYS[5]) == 0 then
  -- No reader, no pending writer and nobody waiting (always so for an
  -- uncontended Mutex): one SET NX both checks for a holder and takes the
  -- lease.
  if not redis.call('SET', KEYS[1], token, 'NX', 'PX', ARGV[2]) then
    mark_pending()
    return {0, 'writer'}
  end
else
  if redis.call('EXISTS', KEYS[1]) == 1 then
    mark_pending()
    return {0, 'writer'}
  end
  local now = now_ms()
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) > 0 then
    mark_pending()
    return {0, 'readers'}
  end
  if ARGV[6] ~= '1' and tonumber(ARGV[5]) > 0
      and redis.call('ZCOUNT', KEYS[5], '(' .. now, '+inf') > 0 then
    -- No barging: this first attempt queues behind the live waiters. Only
    -- a waiter mark: a pending-writer mark would hold back the readers
    -- among them, whom this caller is yielding to.
    mark(KEYS[5], tonumber(ARGV[5]))
    return {0, 'waiters'}
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  redis.call('ZREM', KEYS[3], token)
  redis.call('SET', KEYS[1], token, 'PX', ARGV[2])
end
if ARGV[6] == '1' then
  redis.call('ZREM', KEYS[5], token)
end

-- Fencing token: max(last + 1, server time in microseconds), exact and
-- without Lua numbers. The clock value is written first (SET ... GET, one
-- call, also returns the last token); only when the last token is not
-- below the clock (same microsecond, or a clock behind the fence) is the
-- last token put back and incremented by Redis (INCR). The comparison is on
-- canonical positive decimal strings: longer is larger, equal lengths
-- compare lexicographically.
local last = redis.call('SET', KEYS[4], now_us, 'PX', ARGV[4], 'GET')
local fence = now_us
if last and (#last > #now_us or (#last == #now_us and last >= now_us)) then
  redis.call('SET', KEYS[4], last, 'PX', ARGV[4])
  redis.call('INCR', KEYS[4])
  fence = redis.call('GET', KEYS[4])
end
return {1, fence}
