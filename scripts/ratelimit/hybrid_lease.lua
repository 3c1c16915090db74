-- distkit ratelimit: hybrid_lease
--
-- Hands back the unused part of an instance's previous lease, then leases up
-- to `want` units of the current window's remaining budget to it, recorded
-- as admitted in the current bucket (the instance admits from the lease
-- locally, until the bucket ends).
--
-- KEYS[1]  the window hash of one limited key (the same hash and layout as
--          absolute_inc.lua: field <bucket index> -> admitted/leased units)
-- ARGV[1]  bucket size, ms
-- ARGV[2]  buckets per window (n)
-- ARGV[3]  capacity, units per window
-- ARGV[4]  want: units to lease at most (0: only hand back)
-- ARGV[5]  min: the lease is granted only if at least this many units are
--          free (the cost of the call waiting for it)
-- ARGV[6]  bucket index of the lease handed back (-1: none)
-- ARGV[7]  unused units of that lease
--
-- Returns  {granted units (0 if fewer than min were free), current bucket
--           index, ms until the current bucket ends, admitted units in the
--           window after the call, retry_after_ms for min units (-1 when
--           granted), reset_after_ms}
--
-- Complexity: O(n). Invariants: leased plus admitted units in the live
-- buckets never exceed the capacity; a handed-back amount is subtracted
-- from its own bucket only while that bucket is live, and never below 0.
local bucket_ms = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local min = tonumber(ARGV[5])
local back_bucket = tonumber(ARGV[6])
local back_units = tonumber(ARGV[7])

local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local current = math.floor(now_ms / bucket_ms)
local oldest = current - n + 1

local fields = redis.call('HGETALL', KEYS[1])
local live = {}
local counts = {}
local expired = {}
local admitted = 0
for i = 1, #fields, 2 do
  local index = tonumber(fields[i])
  local count = tonumber(fields[i + 1])
  if index < oldest then
    expired[#expired + 1] = fields[i]
  else
    admitted = admitted + count
    live[#live + 1] = index
    counts[index] = count
  end
end
if #expired > 0 then
  redis.call('HDEL', KEYS[1], unpack(expired))
end

if back_units > 0 and back_bucket >= oldest and counts[back_bucket] ~= nil then
  local back = math.min(back_units, counts[back_bucket])
  if back > 0 then
    redis.call('HINCRBY', KEYS[1], back_bucket, -back)
    counts[back_bucket] = counts[back_bucket] - back
    admitted = admitted - back
  end
end

local granted = 0
local retry_after = -1
local free = capacity - admitted
if want > 0 then
  if free >= min then
    granted = math.min(want, free)
    redis.call('HINCRBY', KEYS[1], current, granted)
    redis.call('PEXPIRE', KEYS[1], (n + 1) * bucket_ms)
    admitted = admitted + granted
    if counts[current] == nil then
      live[#live + 1] = current
      counts[current] = 0
    end
    counts[current] = counts[current] + granted
  end
end

table.sort(live)
if want > 0 and granted == 0 then
  local need = admitted + min - capacity
  local freed = 0
  retry_after = 0
  for _, index in ipairs(live) do
    freed = freed + counts[index]
    if freed >= need then
      retry_after = (index + n) * bucket_ms - now_ms
      break
    end
  end
end

local reset_after = 0
for i = #live, 1, -1 do
  if counts[live[i]] > 0 then
    reset_after = (live[i] + n) * bucket_ms - now_ms
    break
  end
end

return {granted, current, (current + 1) * bucket_ms - now_ms, admitted, retry_after, reset_after}
