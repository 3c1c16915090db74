-- lock/release_write.lua: release the exclusive lease if the caller owns it.
--
-- KEYS[1] owner    string: the writer's owner token
-- KEYS[2] waiting  string: until when (server ms) some waiter waits
-- ARGV[1] owner token of the caller
-- ARGV[2] publish command: "PUBLISH" (single node) or "SPUBLISH" (cluster)
-- ARGV[3] release channel (same hash tag as KEYS[1])
--
-- Returns 1 when the caller's lease was released, 0 when the caller no
-- longer owned it (expired or taken by another owner): nothing is changed
-- then. A release message is published on ARGV[3] only when the lock is
-- marked as waited on: every failed acquisition attempt of a waiter marks it
-- for longer than the waiter waits before its next attempt, so a release
-- that a waiter has not seen yet always publishes (see README.md). One MGET
-- reads the owner and the mark together.
--
-- The release message is best effort (redis.pcall): a server without
-- SPUBLISH (Redis < 7) still releases, and waiters fall back to polling.
--
-- Complexity: O(1).
-- Invariant: only the owner token that holds the lease can delete it.

local current = redis.call('MGET', KEYS[1], KEYS[2])
if current[1] ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
if current[2] then
  redis.pcall(ARGV[2], ARGV[3], 'w')
end
return 1
