-- distkit ratelimit: absolute_inc
--
-- Decides one call of the absolute strategy, and records it if admitted.
--
-- KEYS[1]  the window hash of one limited key
--          (distkit:ratelimit:<namespace>:{<key>}:absolute);
--          field <bucket index> -> admitted units in that bucket
-- ARGV[1]  bucket size, ms
-- ARGV[2]  buckets per window (n)
-- ARGV[3]  capacity: units admitted per window at most
-- ARGV[4]  cost of this call (1 <= cost <= capacity)
--
-- Returns  {allowed (1 or 0), admitted units in the window after the call,
--           retry_after_ms (-1 when allowed), reset_after_ms}
--
-- Time is Redis server time. Bucket i covers [i*bucket, (i+1)*bucket) ms; the
-- window is the n buckets ending with the current one. Expired fields are
-- deleted here; the key expires (n+1)*bucket ms after its last admission.
-- Complexity: O(n): reads every field, at most n live ones plus expired ones.
-- Invariants: admitted units in the live buckets never exceed the capacity;
-- counts are integers at most 2^53 (checked by the client), exact as Lua
-- numbers, and only written with HINCRBY.
local bucket_ms = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])

local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local current = math.floor(now_ms / bucket_ms)
local oldest = current - n + 1

local fields = redis.call('HGETALL', KEYS[1])
local live = {}
local counts = {}
local expired = {}
local admitted = 0
local newest = -1
for i = 1, #fields, 2 do
  local index = tonumber(fields[i])
  local count = tonumber(fields[i + 1])
  if index < oldest then
    expired[#expired + 1] = fields[i]
  else
    admitted = admitted + count
    live[#live + 1] = index
    counts[index] = count
    if count > 0 and index > newest then newest = index end
  end
end
if #expired > 0 then
  redis.call('HDEL', KEYS[1], unpack(expired))
end

local allowed = 0
local retry_after = -1
if admitted + cost <= capacity then
  allowed = 1
  redis.call('HINCRBY', KEYS[1], current, cost)
  redis.call('PEXPIRE', KEYS[1], (n + 1) * bucket_ms)
  admitted = admitted + cost
end

if allowed == 1 then
  newest = current
else
  -- Only a refusal needs the buckets in order (at most n of them).
  table.sort(live)
  local need = admitted + cost - capacity
  local freed = 0
  for _, index in ipairs(live) do
    freed = freed + counts[index]
    if freed >= need then
      retry_after = (index + n) * bucket_ms - now_ms
      break
    end
  end
end

local reset_after = 0
if newest >= 0 then
  reset_after = (newest + n) * bucket_ms - now_ms
end

return {allowed, admitted, retry_after, reset_after}
