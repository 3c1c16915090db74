-- distkit ratelimit: suppressed_inc
--
-- Decides one call of the suppressed strategy and records it: its cost is
-- always counted as observed, and as admitted when admitted.
--
-- KEYS[1]  the window hash of one limited key
--          (distkit:ratelimit:<namespace>:{<key>}:suppressed);
--          field a<bucket index> -> admitted units in that bucket,
--          field o<bucket index> -> observed units (admitted or not)
-- ARGV[1]  bucket size, ms
-- ARGV[2]  buckets per window (n)
-- ARGV[3]  capacity (the soft limit), units per window
-- ARGV[4]  hard limit, units per window (>= capacity)
-- ARGV[5]  cost of this call (1 <= cost <= capacity)
-- ARGV[6]  a uniform draw in [0, 1) made by the client
--
-- Returns  {allowed (1 or 0), admitted units in the window after the call,
--           retry_after_ms (-1 when allowed), reset_after_ms,
--           suppression factor as a decimal string}
--
-- Rule: admitted if admitted + cost <= capacity (factor 0); refused if
-- admitted + cost > hard (factor 1); otherwise factor
-- f = 1 - capacity / (observed + cost), refused iff draw < f.
-- Complexity: O(n). Key TTL (n+1)*bucket ms after its last call.
local bucket_ms = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local hard = tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local draw = tonumber(ARGV[6])

local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local current = math.floor(now_ms / bucket_ms)
local oldest = current - n + 1

local fields = redis.call('HGETALL', KEYS[1])
local live = {}
local counts = {}
local expired = {}
local admitted = 0
local observed = 0
for i = 1, #fields, 2 do
  local kind = string.sub(fields[i], 1, 1)
  local index = tonumber(string.sub(fields[i], 2))
  local count = tonumber(fields[i + 1])
  if index < oldest then
    expired[#expired + 1] = fields[i]
  elseif kind == 'a' then
    admitted = admitted + count
    if counts[index] == nil then
      live[#live + 1] = index
      counts[index] = 0
    end
    counts[index] = counts[index] + count
  else
    observed = observed + count
  end
end
if #expired > 0 then
  redis.call('HDEL', KEYS[1], unpack(expired))
end

local allowed = 0
local factor = 0
local ceiling = capacity
if admitted + cost <= capacity then
  allowed = 1
elseif admitted + cost > hard then
  factor = 1
  ceiling = hard
else
  factor = 1 - capacity / (observed + cost)
  if factor < 0 then factor = 0 end
  if factor > 1 then factor = 1 end
  if draw >= factor then allowed = 1 end
end

redis.call('HINCRBY', KEYS[1], 'o' .. current, cost)
if allowed == 1 then
  redis.call('HINCRBY', KEYS[1], 'a' .. current, cost)
  admitted = admitted + cost
  if counts[current] == nil then
    live[#live + 1] = current
    counts[current] = 0
  end
  counts[current] = counts[current] + cost
end
redis.call('PEXPIRE', KEYS[1], (n + 1) * bucket_ms)

table.sort(live)
local retry_after = -1
if allowed == 0 then
  local need = admitted + cost - ceiling
  if need <= 0 then
    retry_after = (current + 1) * bucket_ms - now_ms
  else
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
end

local reset_after = 0
for i = #live, 1, -1 do
  if counts[live[i]] > 0 then
    reset_after = (live[i] + n) * bucket_ms - now_ms
    break
  end
end

return {allowed, admitted, retry_after, reset_after, string.format('%.17g', factor)}
