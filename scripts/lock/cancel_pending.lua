-- lock/cancel_pending.lua: remove a waiting writer's pending mark.
--
-- KEYS[1] pending  zset: waiting writer token -> mark expiry (server ms)
-- ARGV[1] owner token of the writer that stops waiting
-- ARGV[2] publish command: "PUBLISH" (single node) or "SPUBLISH" (cluster)
-- ARGV[3] release channel (same hash tag as KEYS[1])
--
-- Returns 1 when a mark was removed, 0 when there was none. When the last
-- pending mark goes, a message is published so that waiting readers retry
-- at once instead of at their next poll.
--
-- The message is best effort (redis.pcall), as in release_write.lua.
--
-- Complexity: O(log n + e) with n pending writers and e expired marks.
-- Invariant: a writer that stops waiting (gave up, timed out, cancelled)
-- blocks no reader any longer.

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if removed == 1 and redis.call('ZCARD', KEYS[1]) == 0 then
  redis.pcall(ARGV[2], ARGV[3], 'c')
end
return removed
