-- lock/renew_read.lua: extend the caller's reader lease.
--
-- KEYS[1] readers  zset: reader owner token -> lease expiry (server ms)
-- ARGV[1] owner token of the caller
-- ARGV[2] lease ttl in ms
--
-- Returns 1 when the lease was live and now expires ARGV[2] ms from now, 0
-- when it had expired or was gone (a stale entry is removed).
--
-- Complexity: O(log n) with n readers.
-- Invariant: an expired reader lease is never revived, so a writer that
-- acquired after it expired is never overlapped.

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expiry then
  return 0
end
if tonumber(expiry) <= now_ms then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
local ttl_ms = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', now_ms + ttl_ms, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl_ms then
  redis.call('PEXPIRE', KEYS[1], ttl_ms)
end
return 1
