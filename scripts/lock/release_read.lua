-- lock/release_read.lua: release the caller's reader lease.
--
-- KEYS[1] readers  zset: reader owner token -> lease expiry (server ms)
-- ARGV[1] owner token of the caller
-- ARGV[2] publish command: "PUBLISH" (single node) or "SPUBLISH" (cluster)
-- ARGV[3] release channel (same hash tag as KEYS[1])
--
-- Returns 1 when the caller's lease was live and is now removed, 0 when it
-- had expired or was gone (the entry, if any, is removed either way). A
-- release message is published when the last live reader leaves, which is
-- when a waiting writer can proceed.
--
-- The message is best effort (redis.pcall), as in release_write.lua.
--
-- Complexity: O(log n) with n readers.
-- Invariant: a reader only ever removes its own entry.

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expiry then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(expiry) <= now_ms then
  return 0
end
if redis.call('ZCOUNT', KEYS[1], '(' .. now_ms, '+inf') == 0 then
  redis.pcall(ARGV[2], ARGV[3], 'r')
end
return 1
