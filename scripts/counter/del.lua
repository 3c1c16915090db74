-- counter/del: delete one counter and return the value it held.
--
-- KEYS[1]  the values hash of the prefix (distkit:counter:{<prefix>}:values)
-- ARGV[1]  the counter key (hash field)
-- Returns  the removed value as a decimal string ("0" when absent).
-- Complexity: O(1).
-- Invariant: read and delete happen in one step, so no write can slip between.

local old = redis.call('HGET', KEYS[1], ARGV[1])
if old == false then
  return "0"
end
redis.call('HDEL', KEYS[1], ARGV[1])
return old
