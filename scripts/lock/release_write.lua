-- lock/release_write.lua: release the exclusive lease if the caller owns it.
--
-- KEYS[1] owner    string: the writer's owner token
-- KEYS[2] waiters  zset: waiting caller token -> mark expiry (server ms)
-- ARGV[1] owner token of the caller
-- ARGV[2] publish command: "PUBLISH" (single node) or "SPUBLISH" (cluster)
-- ARGV[3] release channel (same hash tag as KEYS[1])
--
-- Returns 1 when the caller's lease was released, 0 when the caller no
-- longer owned it (expired or taken by another owner): nothing is changed
-- then. A release message is published on ARGV[3] only while a waiter mark
-- exists: every failed attempt of a waiter marks it for longer than the
-- waiter waits before its next attempt, and a waiter removes its mark only
-- when it stops waiting, so a release that a waiter has not seen yet always
-- publishes (see README.md).
--
-- The release message is best effort (redis.pcall): a server without
-- SPUBLISH (Redis < 7) still releases, and waiters fall back to polling.
--
-- Complexity: O(1).
-- Invariant: only the owner token that holds the lease can delete it.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.pcall(ARGV[2], ARGV[3], 'w')
end
return 1
