-- distkit ratelimit: absolute_inc
-- requires: lib/window.lua
--
-- Decides one call of the absolute strategy, and records it if admitted.
--
-- KEYS[1]  the window hash of one limited key
--          (distkit:ratelimit:<namespace>:{<key>}:absolute): field
--          <bucket index> -> admitted units, t -> running total, h -> pruning
--          cursor (see lib/window.lua)
-- ARGV[1]  bucket size, ms
-- ARGV[2]  buckets per window (n)
-- ARGV[3]  capacity: units admitted per window at most
-- ARGV[4]  cost of this call (1 <= cost <= capacity)
--
-- Returns  {allowed (1 or 0), admitted units in the window after the call,
--           retry_after_ms (-1 when allowed), reset_after_ms}
--
-- Time is Redis server time. Complexity: O(1) commands for an admission
-- (TIME, HMGET, HSET, and PEXPIREAT once per bucket), plus one HMGET of
-- the live buckets for a refusal, plus pruning of the buckets that left
-- the window since the last call (at most n, each pruned once).
-- Invariants: admitted units in the live buckets never exceed the capacity;
-- a refused call writes nothing but pruning.
local bucket_ms = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])

local w = distkit_window_open(KEYS[1], {''}, bucket_ms, n)
local admitted = w.totals[1]

if admitted + cost <= capacity then
  distkit_window_add(w, 1, w.current, cost)
  distkit_window_commit(w)
  return {1, w.totals[1], -1, distkit_window_current_reset_after(w)}
end

distkit_window_commit(w)
local counts = distkit_window_buckets(w, 1)
local retry_after = distkit_window_freed_after(w, counts, admitted + cost - capacity)
return {0, admitted, retry_after, distkit_window_reset_after(w, counts)}
