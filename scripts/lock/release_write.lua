-- lock/release_write.lua: release the exclusive lease if the caller owns it.
--
-- KEYS[1] owner    string: the writer's owner token
-- ARGV[1] owner token of the caller
-- ARGV[2] publish command: "PUBLISH" (single node) or "SPUBLISH" (cluster)
-- ARGV[3] release channel (same hash tag as KEYS[1])
--
-- Returns 1 when the caller's lease was released (and a release message
-- published on ARGV[3]), 0 when the caller no longer owned it (expired or
-- taken by another owner): nothing is changed then.
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
redis.pcall(ARGV[2], ARGV[3], 'w')
return 1
