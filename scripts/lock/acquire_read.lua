-- lock/acquire_read.lua: add a shared (reader) lease.
--
-- KEYS[1] owner    string: the writer's owner token (PX = ttl)
-- KEYS[2] readers  zset: reader owner token -> lease expiry (server ms)
-- KEYS[3] pending  zset: waiting writer token -> mark expiry (server ms)
-- KEYS[4] fence    string: the last fencing token handed out (decimal)
-- KEYS[5] waiters  zset: waiting caller token -> mark expiry (server ms)
-- ARGV[1] owner token of this acquisition (unique per acquisition)
-- ARGV[2] lease ttl in ms (positive integer)
-- ARGV[3] fence key ttl in ms
-- ARGV[4] waiter-mark ttl in ms; "0" leaves no mark when busy
-- ARGV[5] "1" when an earlier attempt of this acquisition left a waiter
--         mark (it is removed on success), "0" otherwise
--
-- Returns {1, fencing_token} when acquired, {0, "writer"} when a writer holds
-- the lease, {0, "pending"} when a writer waits (writer preference: new
-- readers wait behind it until it acquires, gives up, or its mark expires).
-- When busy and ARGV[4] > 0 the caller is (re)marked as a waiter, as in
-- acquire_write.lua.
--
-- Complexity: O(log n + e) with n readers/pending writers and e expired
-- entries pruned.
-- Invariants: no reader entry is added while a writer holds the lease or a
-- live pending-writer mark exists; the readers key lives as long as its
-- longest lease.

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_us = t[1] .. string.format('%06d', tonumber(t[2]))
local token = ARGV[1]
local ttl_ms = tonumber(ARGV[2])

-- (Re)marks the caller as a waiter until now + ARGV[4] ms, so that
-- release_write publishes; the key lives as long as its longest mark.
local function mark_waiting()
  local wait_ttl_ms = tonumber(ARGV[4])
  if wait_ttl_ms > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now_ms)
    redis.call('ZADD', KEYS[5], now_ms + wait_ttl_ms, token)
    if redis.call('PTTL', KEYS[5]) < wait_ttl_ms then
      redis.call('PEXPIRE', KEYS[5], wait_ttl_ms)
    end
  end
end

-- One call when neither a writer nor a pending writer exists.
if redis.call('EXISTS', KEYS[1], KEYS[3]) > 0 then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    mark_waiting()
    return {0, 'writer'}
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now_ms)
  if redis.call('ZCARD', KEYS[3]) > 0 then
    mark_waiting()
    return {0, 'pending'}
  end
end

-- An absent readers key (PTTL -2) has nothing to prune. Pruning every
-- entry deletes the key, so its ttl is read again then.
local pttl = redis.call('PTTL', KEYS[2])
if pttl ~= -2 and redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms) > 0 then
  pttl = redis.call('PTTL', KEYS[2])
end
redis.call('ZADD', KEYS[2], now_ms + ttl_ms, token)
if pttl < ttl_ms then
  redis.call('PEXPIRE', KEYS[2], ttl_ms)
end
if ARGV[5] == '1' then
  redis.call('ZREM', KEYS[5], token)
end

-- Fencing token: as in acquire_write.lua.
local last = redis.call('SET', KEYS[4], now_us, 'PX', ARGV[3], 'GET')
local fence = now_us
if last and (#last > #now_us or (#last == #now_us and last >= now_us)) then
  redis.call('SET', KEYS[4], last, 'PX', ARGV[3])
  redis.call('INCR', KEYS[4])
  fence = redis.call('GET', KEYS[4])
end
return {1, fence}
