-- lock/cancel_wait.lua: remove the marks of a caller that stops waiting.
--
-- KEYS[1] pending  zset: waiting writer token -> mark expiry (server ms)
-- KEYS[2] waiters  zset: waiting caller token -> mark expiry (server ms)
-- ARGV[1] owner token of the acquisition that stops waiting
-- ARGV[2] publish command: "PUBLISH" (single node) or "SPUBLISH" (cluster)
-- ARGV[3] release channel (same hash tag as KEYS[1])
--
-- Returns 1 when a pending-writer mark was removed, 0 when there was none.
-- The caller's waiter mark is removed too. When the last pending-writer
-- mark goes, a message is published so that waiting readers retry at once
-- instead of at their next poll.
--
-- The message is best effort (redis.pcall), as in release_write.lua.
--
-- Complexity: O(log n + e) with n marks and e expired pending marks.
-- Invariant: a caller that stops waiting (gave up, timed out, cancelled)
-- leaves no mark behind and blocks no reader any longer.

redis.call('ZREM', KEYS[2], ARGV[1])
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
if removed == 1 then
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
  if redis.call('ZCARD', KEYS[1]) == 0 then
    redis.pcall(ARGV[2], ARGV[3], 'c')
  end
end
return removed
