-- lock/renew_write.lua: extend the caller's exclusive lease.
--
-- KEYS[1] owner    string: the writer's owner token
-- ARGV[1] owner token of the caller
-- ARGV[2] lease ttl in ms
--
-- Returns 1 when the lease was extended to ARGV[2] ms from now, 0 when the
-- caller no longer owns it (nothing is changed then).
--
-- Complexity: O(1).
-- Invariant: only the owner can extend its lease; an expired lease is never
-- revived (the key is gone, so the comparison fails).

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
