-- counter/set_if: conditional absolute writes of one or many counters.
-- requires: lib/int64.lua
--
-- KEYS[1]  the values hash of the prefix (distkit:counter:{<prefix>}:values)
-- ARGV     groups of four, one per update, applied in order:
--          field, comparator code (eq ne lt gt le ge nil), operand, value
--          (operand and value as decimal strings)
-- Returns  a flat array new1, old1, new2, old2, ... of decimal strings. When a
--          comparison fails, new == old and the value is unchanged. An update
--          sees the effect of earlier updates of the same field in the call.
-- Errors   "distkit:not_integer <n>" when the stored value of update n is not
--          a decimal i64; nothing is written then.
-- Complexity: O(number of updates).
-- Invariants: all comparisons are decided before anything is written; values
--          never pass through Lua numbers.

local current = {}
local touched = {}
local order = {}
local reply = {}
local n = #ARGV / 4
for i = 1, n do
  local base = (i - 1) * 4
  local field = ARGV[base + 1]
  local op = ARGV[base + 2]
  local operand = ARGV[base + 3]
  local value = ARGV[base + 4]
  local old = current[field]
  if old == nil then
    old = distkit_or_zero(redis.call('HGET', KEYS[1], field))
    if not distkit_is_int(old) then
      return redis.error_reply("distkit:not_integer " .. i)
    end
  end
  local new = old
  if distkit_matches(op, old, operand) then
    new = value
    if touched[field] == nil then
      touched[field] = true
      order[#order + 1] = field
    end
  end
  current[field] = new
  reply[#reply + 1] = new
  reply[#reply + 1] = old
end
for _, field in ipairs(order) do
  redis.call('HSET', KEYS[1], field, current[field])
end
return reply
