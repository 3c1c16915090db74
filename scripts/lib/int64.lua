-- lib/int64.lua: exact signed 64-bit integer arithmetic on decimal strings.
--
-- Lua numbers in Redis are doubles and lose precision above 2^53, so distkit
-- scripts never turn a counter value into a Lua number. Values travel as
-- canonical decimal strings ("-12", "0", "9223372036854775807") and are
-- compared and added here, digit by digit.
--
-- This file is a library, not a script: the scripts that declare
-- `-- requires: lib/int64.lua` in their header are sent to Redis with this
-- file prepended (library text, a newline, then the script text). It defines
-- only locals, so it never touches Lua globals.
--
-- Functions:
--   distkit_is_int(s)            -> true when s is a canonical decimal integer in i64 range
--   distkit_cmp(a, b)            -> -1, 0 or 1 comparing two canonical integers
--   distkit_checked_add(a, b)    -> canonical a + b, or nil when it leaves the i64 range
--   distkit_matches(op, cur, x)  -> comparator test `cur <op> x`; op is one of
--                                   eq ne lt gt le ge nil (nil: always true)
--   distkit_or_zero(v)           -> v, or "0" when v is false/nil (missing field)
-- Complexity: O(number of digits), at most 20 per operand.

local DISTKIT_I64_MAX_ABS = "9223372036854775807"
local DISTKIT_I64_MIN_ABS = "9223372036854775808"

local function distkit_split(s)
  if string.sub(s, 1, 1) == "-" then
    return -1, string.sub(s, 2)
  end
  return 1, s
end

local function distkit_mag_cmp(a, b)
  if #a ~= #b then
    if #a < #b then return -1 end
    return 1
  end
  if a == b then return 0 end
  if a < b then return -1 end
  return 1
end

local function distkit_strip(digits)
  local first = string.find(digits, "[1-9]")
  if first == nil then return "0" end
  return string.sub(digits, first)
end

local function distkit_mag_add(a, b)
  local out = {}
  local carry = 0
  local i, j = #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local da = 0
    local db = 0
    if i > 0 then da = string.byte(a, i) - 48 end
    if j > 0 then db = string.byte(b, j) - 48 end
    local sum = da + db + carry
    if sum >= 10 then
      carry = 1
      sum = sum - 10
    else
      carry = 0
    end
    out[#out + 1] = string.char(48 + sum)
    i = i - 1
    j = j - 1
  end
  return distkit_strip(string.reverse(table.concat(out)))
end

-- a >= b, both magnitudes
local function distkit_mag_sub(a, b)
  local out = {}
  local borrow = 0
  local i, j = #a, #b
  while i > 0 do
    local da = string.byte(a, i) - 48 - borrow
    local db = 0
    if j > 0 then db = string.byte(b, j) - 48 end
    if da < db then
      da = da + 10
      borrow = 1
    else
      borrow = 0
    end
    out[#out + 1] = string.char(48 + da - db)
    i = i - 1
    j = j - 1
  end
  return distkit_strip(string.reverse(table.concat(out)))
end

local function distkit_is_int(s)
  if type(s) ~= "string" then return false end
  local sign, mag = distkit_split(s)
  if not string.find(mag, "^%d+$") then return false end
  if mag == "0" then return sign == 1 end
  if string.sub(mag, 1, 1) == "0" then return false end
  if sign < 0 then
    return distkit_mag_cmp(mag, DISTKIT_I64_MIN_ABS) <= 0
  end
  return distkit_mag_cmp(mag, DISTKIT_I64_MAX_ABS) <= 0
end

local function distkit_cmp(a, b)
  local sa, ma = distkit_split(a)
  local sb, mb = distkit_split(b)
  if sa ~= sb then
    if sa < sb then return -1 end
    return 1
  end
  local c = distkit_mag_cmp(ma, mb)
  if sa < 0 and c ~= 0 then return -c end
  return c
end

local function distkit_checked_add(a, b)
  local sa, ma = distkit_split(a)
  local sb, mb = distkit_split(b)
  local sign, mag
  if sa == sb then
    sign, mag = sa, distkit_mag_add(ma, mb)
  else
    local c = distkit_mag_cmp(ma, mb)
    if c == 0 then return "0" end
    if c > 0 then
      sign, mag = sa, distkit_mag_sub(ma, mb)
    else
      sign, mag = sb, distkit_mag_sub(mb, ma)
    end
  end
  if sign < 0 then
    if distkit_mag_cmp(mag, DISTKIT_I64_MIN_ABS) > 0 then return nil end
    return "-" .. mag
  end
  if distkit_mag_cmp(mag, DISTKIT_I64_MAX_ABS) > 0 then return nil end
  return mag
end

local function distkit_matches(op, current, operand)
  if op == "nil" then return true end
  local c = distkit_cmp(current, operand)
  if op == "eq" then return c == 0 end
  if op == "ne" then return c ~= 0 end
  if op == "lt" then return c < 0 end
  if op == "gt" then return c > 0 end
  if op == "le" then return c <= 0 end
  if op == "ge" then return c >= 0 end
  error("distkit: unknown comparator " .. tostring(op))
end

local function distkit_or_zero(v)
  if v == false or v == nil then return "0" end
  return v
end
