-- counter/flush: apply one LaxCounter flush batch exactly once.
-- requires: lib/int64.lua
--
-- KEYS[1]  the values hash of the prefix (distkit:counter:{<prefix>}:values)
-- KEYS[2]  the flush record of the flushing instance
--          (distkit:counter:{<prefix>}:flush:<instance id>), a string holding
--          the last applied batch sequence
-- ARGV[1]  batch sequence number (decimal, starts at 1, strictly increasing
--          per instance; a retry resends the same number and deltas)
-- ARGV[2]  time to live of the flush record, in milliseconds
-- ARGV[3..] pairs: field, delta (decimal string, possibly beyond the i64
--          range since only the stored result must fit; "0" only refreshes)
-- Returns  { applied, value1, refused1, value2, refused2, ... }: applied is 1
--          when this call applied the batch and 0 when the sequence had
--          already been applied (a retry whose first reply was lost); value
--          is the stored value of each field after the call (decimal
--          string); refused is 1 when that field's delta was not applied
--          because the result would leave the i64 range or the stored value
--          is not a decimal i64 (0 otherwise).
-- Complexity: O(number of pairs).
-- Invariants: a sequence number is applied at most once per instance (as
--          long as its record lives); deltas never pass through Lua numbers
--          (the sequence number does, and stays far below 2^53).

local last = redis.call('GET', KEYS[2])
local sequence = tonumber(ARGV[1])
local apply = last == false or tonumber(last) < sequence
local refused = {}
local n = (#ARGV - 2) / 2
if apply then
  for i = 1, n do
    local field = ARGV[1 + 2 * i]
    local delta = ARGV[2 + 2 * i]
    if delta ~= "0" then
      if distkit_is_int(delta) then
        -- The common case: HINCRBY is exact and refuses overflow.
        local result = redis.pcall('HINCRBY', KEYS[1], field, delta)
        if type(result) == "table" and result.err then
          refused[i] = 1
        end
      else
        -- A delta beyond the i64 range: exact decimal arithmetic.
        local old = distkit_or_zero(redis.call('HGET', KEYS[1], field))
        local new = nil
        if distkit_is_int(old) then
          new = distkit_checked_add(old, delta)
        end
        if new == nil then
          refused[i] = 1
        else
          redis.call('HSET', KEYS[1], field, new)
        end
      end
    end
  end
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
end
local reply = { 0 }
if apply then reply[1] = 1 end
for i = 1, n do
  local field = ARGV[1 + 2 * i]
  reply[#reply + 1] = distkit_or_zero(redis.call('HGET', KEYS[1], field))
  reply[#reply + 1] = refused[i] or 0
end
return reply
