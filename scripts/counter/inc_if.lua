-- counter/inc_if: conditional increments of one or many counters, all or nothing.
-- requires: lib/int64.lua
--
-- KEYS[1]  the values hash of the prefix (distkit:counter:{<prefix>}:values)
-- ARGV     groups of four, one per update, applied in order:
--          field, comparator code (eq ne lt gt le ge nil), operand, delta
--          (operand and delta as decimal strings)
-- Returns  a flat array new1, old1, new2, old2, ... of decimal strings. When a
--          comparison fails, new == old and the value is unchanged. An update
--          sees the effect of earlier updates of the same field in the call.
-- Errors   "distkit:overflow <n>" when update n (1-based) would leave the i64
--          range; "distkit:not_integer <n>" when the stored value of update n
--          is not a decimal i64. Nothing is left written in either case.
-- Complexity: O(number of updates).
-- Invariants: increments use HINCRBY (exact, refuses overflow); when update n
--          is refused, the updates before it are reverted, exactly, before
--          the script returns, so no client ever sees a partial batch.
--          Values never pass through Lua numbers.

local values = KEYS[1]
local applied = {}

local function negate(delta)
  if string.sub(delta, 1, 1) == "-" then
    return { string.sub(delta, 2) }
  end
  if delta == "0" then
    return {}
  end
  return { "-" .. delta }
end

local function revert()
  for i = #applied, 1, -1 do
    local field, delta = applied[i][1], applied[i][2]
    if delta == "-9223372036854775808" then
      redis.call('HINCRBY', values, field, "9223372036854775807")
      redis.call('HINCRBY', values, field, "1")
    else
      for _, back in ipairs(negate(delta)) do
        redis.call('HINCRBY', values, field, back)
      end
    end
  end
end

local reply = {}
local n = #ARGV / 4
for i = 1, n do
  local base = (i - 1) * 4
  local field = ARGV[base + 1]
  local op = ARGV[base + 2]
  local operand = ARGV[base + 3]
  local delta = ARGV[base + 4]
  local old = distkit_or_zero(redis.call('HGET', values, field))
  if not distkit_is_int(old) then
    revert()
    return redis.error_reply("distkit:not_integer " .. i)
  end
  local new = old
  if distkit_matches(op, old, operand) then
    local result = redis.pcall('HINCRBY', values, field, delta)
    if type(result) == "table" and result.err then
      revert()
      return redis.error_reply("distkit:overflow " .. i)
    end
    applied[#applied + 1] = { field, delta }
    new = redis.call('HGET', values, field)
  end
  reply[#reply + 1] = new
  reply[#reply + 1] = old
end
return reply
